"""Results that do not depend on the machine: several candidates at once on one device
(``search.concurrency``) and the compute budget (``search.budget_epochs``)."""
from __future__ import annotations

import hashlib
import itertools
import json
import time
from pathlib import Path

import pandas as pd

from nasgep.config import load_config
from nasgep.search.evaluator import CheapEvaluator, SerialExecutor, TrainJob, TrainResult
from nasgep.search.loop import Search, SearchSettings
from nasgep.search.runner import run_search
from nasgep.search.state import SearchState

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


def cheap_factory(device: str) -> CheapEvaluator:
    return CheapEvaluator()


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


def test_three_workers_stop_at_the_same_epoch_budget_as_one(tmp_path):
    budget = ["search.max_generations=null", "search.budget_epochs=60"]
    one = search(tmp_path / "k1", *budget)
    three = search(tmp_path / "k3", *budget, "search.concurrency=3")
    assert_same_result(one, three)
    assert json.loads((three / "search.json").read_text())["stop_reason"] == "budget_epochs"


# --- the epoch budget ------------------------------------------------------------------

def run_clocked(seconds_per_tick: float, *overrides: str, seed: int = 2) -> SearchState:
    """A search whose clock advances ``seconds_per_tick`` each time it is read: a machine
    that is that much slower (no sleeping)."""
    config = load_config(None, SMALL + ["search.max_generations=null", *overrides])
    ticks = itertools.count()
    evaluator = CheapEvaluator()
    return Search(SearchSettings.from_config(config), evaluator, SerialExecutor(evaluator), SearchState(seed=seed),
                  clock=lambda: next(ticks) * seconds_per_tick).run()


def test_an_epoch_budget_gives_the_same_search_on_a_slow_machine():
    # 10 h of wall clock: the fast machine would never reach it, the slow one (200x) nearly
    fast = run_clocked(1.0, "search.budget_hours=10", "search.budget_epochs=90")
    slow = run_clocked(200.0, "search.budget_hours=10", "search.budget_epochs=90")
    assert fast.stop_reason == slow.stop_reason == "budget_epochs"
    assert fast.history == slow.history and fast.best == slow.best
    assert fast.elapsed < slow.elapsed
    used = fast.epochs_trained()
    assert 90 - 2 * 2 * 6 < used <= 90      # stopped before the generation that would pass it
    # without it, the wall-clock budget makes the same seed search differently on each machine
    fast_t = run_clocked(1.0, "search.budget_hours=1", "search.budget_epochs=null")
    slow_t = run_clocked(200.0, "search.budget_hours=1", "search.budget_epochs=null")
    assert fast_t.stop_reason == slow_t.stop_reason == "budget"
    assert fast_t.generation != slow_t.generation


def test_the_wall_clock_stays_a_cap_beside_the_epoch_budget():
    capped = run_clocked(200.0, "search.budget_hours=1", "search.budget_epochs=90")
    assert capped.stop_reason == "budget" and capped.epochs_trained() < 90


def test_a_slowed_search_writes_the_same_results(tmp_path):
    budget = ["search.max_generations=null", "search.budget_epochs=50"]
    fast = search(tmp_path / "fast", *budget, factory=cheap_factory)
    slow = search(tmp_path / "slow", *budget, factory=jittery_factory)
    assert_same_result(fast, slow)
    summary = json.loads((slow / "search.json").read_text())
    assert summary["stop_reason"] == "budget_epochs" and summary["epochs"] <= 50


def test_the_closing_line_says_how_much_of_the_epoch_budget_was_used(tmp_path):
    """It said "search.budget_epochs = 50 spent" while the kept generations had trained
    fewer epochs (the next generation's rounds, which would pass it, are rolled back)."""
    lines: list[str] = []
    config = load_config(None, SMALL + ["search.max_generations=null", "search.budget_epochs=50"])
    run_search(config, dataset="cifar10", seed=3, out_dir=tmp_path / "s", factory=cheap_factory, progress=False,
               log=lines.append)
    epochs = json.loads((tmp_path / "s" / "search.json").read_text())["epochs"]
    assert epochs < 50
    assert (f"search finished (budget_epochs: search.budget_epochs = 50, {epochs} used: the next generation "
            "would pass it)") in lines[-1]


def test_a_search_stopped_by_its_epoch_budget_goes_on_when_it_is_raised_as_its_help_says(tmp_path):
    """`nasgep search --help` said a finished search resumes 'only when its generation or
    time limit was raised'; raising the epoch budget lets it go on too."""
    from nasgep.cli import build_parser

    stopped = search(tmp_path / "s", "search.max_generations=null", "search.budget_epochs=30")
    assert json.loads((stopped / "search.json").read_text())["stop_reason"] == "budget_epochs"
    before = len(pd.read_parquet(stopped / "history.parquet"))
    raised = load_config(None, [*SMALL, "search.max_generations=null", "search.budget_epochs=60"])
    run_search(raised, dataset="cifar10", seed=3, out_dir=stopped, factory=jittery_factory, resume=True,
               progress=False)
    assert len(pd.read_parquet(stopped / "history.parquet")) > before
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["search"]
    text = " ".join(sub.format_help().split())
    assert "search.max_generations, search.budget_epochs or search.budget_hours" in text
