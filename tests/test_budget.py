"""Results that do not depend on the machine: several candidates at once on one device
(``search.concurrency``) and the compute budget (``search.budget_epochs``)."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pandas as pd

from nasgep.config import load_config
from nasgep.search.evaluator import CheapEvaluator, TrainJob, TrainResult
from nasgep.search.runner import run_search

SMALL = [
    "search.population=6", "search.reduction_population=4", "search.gene_pool=10",
    "search.gene_pool_max=14", "search.genes_min=2", "search.genes_max=4", "search.max_epochs=4",
    "search.max_generations=5", "search.budget_hours=100", "tracking.enabled=false",
    "search.devices=[cpu]",
]


class JitteryEvaluator(CheapEvaluator):
    """The cheap evaluator, sleeping 0-20 ms per job: concurrent workers finish out of order."""

    def train(self, job: TrainJob) -> TrainResult:
        time.sleep(hashlib.sha256(f"{job.individual}@{job.epoch}".encode()).digest()[0] / 255 * 0.02)
        return super().train(job)


def jittery_factory(device: str) -> CheapEvaluator:
    return JitteryEvaluator()


def search(out: Path, *overrides: str, seed: int = 3, factory=jittery_factory) -> Path:
    config = load_config(None, SMALL + list(overrides))
    run_search(config, dataset="cifar10", seed=seed, out_dir=out, factory=factory, progress=False)
    return out


def assert_same_result(a: Path, b: Path) -> None:
    assert json.loads((a / "best.json").read_text()) == json.loads((b / "best.json").read_text())
    ha = pd.read_parquet(a / "history.parquet").drop(columns="seconds")   # wall-clock column
    hb = pd.read_parquet(b / "history.parquet").drop(columns="seconds")
    pd.testing.assert_frame_equal(ha, hb)


def test_three_candidates_at_once_give_the_same_search_as_one(tmp_path):
    one = search(tmp_path / "k1", "search.concurrency=1")
    three = search(tmp_path / "k3", "search.concurrency=3")
    assert_same_result(one, three)
    assert len(pd.read_parquet(one / "history.parquet")) > 20
