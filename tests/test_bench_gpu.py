"""bench/bench_gpu.py in its tiny CPU mode: it runs every part and prints one JSON line
with each rate beside its bare-loop baseline (the GPU figures come from a GPU machine)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tiny_cpu_run_prints_one_json_line_with_every_part(bench, capsys):
    result = bench.main(["--tiny", "--device", "cpu"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0]) == result
    rates = ["single_bare_eager_img_s", "single_trainer_eager_img_s", "generation_bare_img_s",
             "generation_k1_img_s", "generation_k2_img_s", "full_bare_eager_img_s", "full_trainer_eager_img_s",
             "single_trainer_eager_noaug_img_s", "full_trainer_eager_noaug_img_s"]
    for key in rates:
        assert result[key] > 0, key
    assert not any(k.endswith("_failures") for k in result)
    assert result["skipped"] == [] and result["sizes"] == "tiny"
    assert result["generation_k2_vs_bare"] > 0 and result["full_trainer_eager_vs_bare_eager"] > 0
    assert result["full_trainer_eager_noaug_vs_bare_eager"] > 0
    assert "single_bare_graphed_img_s" not in result        # CUDA graphs: CUDA only
    assert len(result["generation_params"]) == bench.TINY.candidates and result["generation_fp32_batchnorm"] is False
    assert result["single_gflop_per_image"] > 0 and result["full_mb_per_image"] > result["single_mb_per_image"]


def test_time_limit_skips_and_reports_null(bench, capsys):
    result = bench.main(["--tiny", "--device", "cpu", "--parts", "single", "--max-seconds", "0"])
    assert result["single_bare_eager_img_s"] is None and "bare_eager" in result["skipped"]
