"""A study planned in advance and longer than a session: bench/search_phase.py --blind
shows progress without fitness, bench/ledger.py keeps what finished in git and brings it back."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
LEDGER = BENCH / "ledger.py"


def test_blind_log_lines_carry_progress_but_no_fitness():
    sys.path.insert(0, str(BENCH))
    try:
        from search_phase import blind_line
    finally:
        sys.path.remove(str(BENCH))
    from nasgep.config import load_config
    from nasgep.search.loop import GenerationReport, SearchSettings
    from nasgep.search.runner import _generation_line

    settings = SearchSettings.from_config(load_config(str(BENCH.parent / "config" / "demo.yaml")))
    report = GenerationReport(generation=3, best_fitness=51.37, mean_fitness=49.62, best_ever=52.19, t_g=47.08,
                              t_c=44.73, normal_pool=20, reduction_pool=20, reduction_population=4, population=4,
                              trained=4, epochs_trained=32, failures=0, param_rejections=0, seconds=1983.9,
                              elapsed=3000.0, train_seconds=2900.0, best_accuracy=51.37)
    line = blind_line(_generation_line(report, settings))
    assert line == "gen 3 done: trained  4 (32 ep, 0 failed), 1983.9s"
    assert not any(f in line for f in ("51.37", "49.62", "52.19", "47.08", "44.73"))
    done = "search finished (max_generations) after generation 1: best fitness 51.37 -> /x/best.json"
    assert blind_line(done) == "search finished (max_generations) after generation 1"
    assert blind_line("resuming /x after generation 0") == "resuming /x after generation 0"


def _ledger(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(LEDGER), *map(str, args)], capture_output=True, text=True)


def _study(out: Path) -> None:
    for seed, finished in ((1, True), (2, False)):
        folder = out / "search-v" / f"seed{seed}"
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "search.json").write_text(json.dumps({"finished": finished}))
        for name in ("best.json", "history.parquet", "settings.json", "checkpoints/gen-0000.json"):
            (folder / name).write_text(f"{name} of seed {seed}")
    (out / "random").mkdir()
    (out / "random" / "r7.json").write_text("{}")
    (out / "train" / "v-fitness-seed1").mkdir(parents=True)
    (out / "train" / "v-fitness-seed1" / "s0.json").write_text('{"accuracy": 50.0}')


def test_save_keeps_finished_searches_and_every_result_then_restore_fills_only_gaps(tmp_path):
    out, kept = tmp_path / "out", tmp_path / "kept"
    _study(out)
    assert _ledger("save", out, kept).returncode == 0
    files = sorted(str(f.relative_to(kept)) for f in kept.rglob("*") if f.is_file())
    assert files == ["random/r7.json", "search-v/seed1/best.json", "search-v/seed1/history.parquet",
                     "search-v/seed1/search.json", "search-v/seed1/settings.json", "train/v-fitness-seed1/s0.json"]

    fresh = tmp_path / "fresh"                     # a replaced machine: the kept files come back
    assert _ledger("restore", kept, fresh).returncode == 0
    assert (fresh / "search-v" / "seed1" / "best.json").read_text() == "best.json of seed 1"
    assert not (fresh / "search-v" / "seed2").exists()

    (out / "random" / "r7.json").write_text('{"changed": true}')   # restore never overwrites
    assert _ledger("restore", kept, out).returncode == 0
    assert (out / "random" / "r7.json").read_text() == '{"changed": true}'


def test_save_leaves_out_what_another_ledger_keeps(tmp_path):
    out, other, kept = tmp_path / "out", tmp_path / "other", tmp_path / "kept"
    _study(out)
    (other / "train" / "v-fitness-seed1").mkdir(parents=True)      # the reused training
    (other / "train" / "v-fitness-seed1" / "s0.json").write_text('{"accuracy": 50.0}')
    assert _ledger("save", out, kept, "--except-in", other).returncode == 0
    files = sorted(str(f.relative_to(kept)) for f in kept.rglob("*") if f.is_file())
    assert "train/v-fitness-seed1/s0.json" not in files and "random/r7.json" in files


def test_a_missing_folder_is_one_line(tmp_path):
    r = _ledger("save", tmp_path / "nope", tmp_path / "kept")
    assert r.returncode == 2 and "nope: no such folder" in r.stderr and "Traceback" not in r.stderr


def test_the_size_only_baseline_keeps_the_largest_of_its_draws(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        from search_phase import job_sample
    finally:
        sys.path.remove(str(BENCH))
    demo = str(BENCH.parent / "config" / "demo.yaml")
    one = [json.loads(Path(job_sample(demo, [], "cifar10", s, str(tmp_path / f"r{s}.json"))).read_text())
           for s in (21, 22, 23)]
    best = json.loads(Path(job_sample(demo, [], "cifar10", 7, str(tmp_path / "largest.json"), 3)).read_text())
    # the largest of the plain draws with seeds 7*3 ... 7*3+2, the same genome and its size kept
    assert best["drawn_params"] == [r["params"] for r in one] and best["largest_of"] == 3
    top = max(one, key=lambda r: r["params"])
    assert best["params"] == top["params"] == max(best["drawn_params"]) and best["genome"] == top["genome"]


def test_the_report_compares_only_the_random_cells_its_command_drew(tmp_path):
    """A study that restores another study's ledger (bench/size_two_seeds.sh restores the
    powered run's plain random cells beside its largest-of-8 ones) must not pool them."""
    sys.path.insert(0, str(BENCH))
    try:
        from search_phase import report_rows
    finally:
        sys.path.remove(str(BENCH))
    rows = {"v-fitness-seed1": {"group": "searched", "variant": "v", "genome": "seed1"},
            "w-fitness-seed1": {"group": "searched", "variant": "w", "genome": "seed1"},
            **{f"random-r{n}": {"group": "random", "genome": f"r{n}"} for n in (2000, 2001, 4000, 4001)}}
    for name, row in rows.items():
        (tmp_path / "train" / name).mkdir(parents=True)
        for t in (0, 1):
            (tmp_path / "train" / name / f"s{t}.json").write_text(json.dumps({**row, "train_seed": t}))
    chosen = report_rows(tmp_path, "v", {"r4000", "r4001"})
    assert sorted((r["group"], r["genome"]) for r in chosen) == sorted(
        [("searched", "seed1")] * 2 + [("random", "r4000")] * 2 + [("random", "r4001")] * 2)
    assert sum(r["group"] == "random" for r in report_rows(tmp_path, "v")) == 8   # None: every random cell


def test_the_studys_retrain_selection_is_the_searchs_own(tmp_path):
    """bench/search_phase.py re-runs the ``retrain`` selection on a finished search's
    history: it must choose and record exactly what the search would have (same finalists,
    re-trainings, choice and ``ranked_by``), since the study reports it as the setting's."""
    import shutil

    sys.path.insert(0, str(BENCH))
    try:
        from search_phase import job_finalists
    finally:
        sys.path.remove(str(BENCH))
    from nasgep.config import load_config
    from nasgep.search.runner import run_search

    demo = str(BENCH.parent / "config" / "demo.yaml")
    full = ["search.evaluation=full", "search.weight_sharing=false", "search.max_epochs=2", "search.max_generations=2",
            "search.population=2", "search.reduction_population=2", "search.budget_hours=1", "search.channels=4",
            "search.batch_size=128", "search.augment.cutout=false", "datasets.cifar10.max_train=400",
            "tracking.enabled=false"]
    run_search(load_config(demo, [*full, "search.final_selection=retrain", "search.finalists=2"]), dataset="cifar10",
               seed=5, out_dir=tmp_path / "search", progress=False)
    ours = json.loads((tmp_path / "search" / "finalists.json").read_text())
    study = tmp_path / "study"
    study.mkdir()
    shutil.copy(tmp_path / "search" / "history.parquet", study)
    theirs = json.loads(Path(job_finalists(demo, full, "cifar10", 5, str(study), 2)).read_text())
    assert ours["ranked_by"] == theirs["ranked_by"] == "mean of fitness and retrained"
    assert theirs["finalists"] == ours["finalists"] and theirs["chosen"] == ours["chosen"]
    best = json.loads((tmp_path / "search" / "best.json").read_text())
    assert theirs["genome"] == best["genome"] and theirs["fitness"] == best["fitness"]
