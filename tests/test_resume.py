"""A search's folder is never lost: no implicit restart, one run per folder, --resume only
with the same settings, kill -9 at every write point, stale temporaries, missing files."""
from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_search import SMALL, cheap_factory, small_config

from nasgep import outdir
from nasgep.cli import main
from nasgep.config import load_config
from nasgep.search import checkpoint
from nasgep.search import evaluator as evaluator_module
from nasgep.search.evaluator import CheapEvaluator
from nasgep.search.runner import SearchExists, result_settings, run_search
from nasgep.search.state import Individual, SearchState

ROOT = Path(__file__).resolve().parents[1]


def search(out: Path, *extra: str, **kwargs) -> SearchState:
    config = small_config("search.max_generations=4", *extra)
    return run_search(config, dataset="cifar10", seed=3, out_dir=out, factory=cheap_factory,
                      progress=False, log=lambda msg: None, **kwargs)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != outdir.LOCK}


# --- point 1: never restarted implicitly ----------------------------------------------------

def test_unreadable_checkpoints_stop_the_search_and_keep_everything(tmp_path):
    search(tmp_path)
    for path in checkpoint.list_checkpoints(tmp_path / "checkpoints"):
        os.truncate(path, 100)
    before = snapshot(tmp_path)
    for resume in (True, False):
        with pytest.raises(SearchExists, match="--restart") as err:
            search(tmp_path, resume=resume)
        assert snapshot(tmp_path) == before
    assert "no readable checkpoint" in str(err.value) or "--resume" in str(err.value)
    with pytest.raises(SearchExists, match=r"gen-00003.json: not JSON \(truncated\?\); gen-00002.json"):
        search(tmp_path, resume=True)
    search(tmp_path / "b")
    for path in checkpoint.list_checkpoints(tmp_path / "b" / "checkpoints"):
        path.write_text(path.read_text().replace('"seed":3', '"seed":4'))   # JSON, wrong checksum
    with pytest.raises(SearchExists, match="gen-00003.json: checksum mismatch"):
        search(tmp_path / "b", resume=True)


def test_the_cli_says_what_is_damaged_and_exits_2(tmp_path, capsys):
    run = tmp_path / "run"
    search(run)
    for path in checkpoint.list_checkpoints(run / "checkpoints"):
        path.write_bytes(b"\xff\xfe not text")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(small_config("search.max_generations=4")))
    code = main(["search", "--config", str(config), "--seed", "3", "--out", str(run), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err        # the error names every damaged checkpoint: no warnings
    assert err[0].startswith("nasgep search: error:") and "not UTF-8" in err[0] and "--restart" in err[0]


def test_undecodable_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    straight = search(tmp_path / "a")
    search(tmp_path / "base", "search.max_generations=3")
    for n, damage in enumerate([b"\xff\xfe\x00binary", b"not json", b"[1, 2]", b'{"sha256": 1}']):
        folder = tmp_path / f"b{n}"
        shutil.copytree(tmp_path / "base", folder)
        checkpoint.list_checkpoints(folder / "checkpoints")[0].write_bytes(damage)
        resumed = search(folder, resume=True)
        assert resumed.history == straight.history and resumed.best == straight.best


def test_files_nested_past_the_json_parsers_depth_are_damaged_files_not_a_traceback(tmp_path):
    """Damage can nest a JSON file deeper than the parser goes: settings.json, a checkpoint
    and a sample's best.json so damaged ended the verb in a RecursionError traceback; each
    is now the damaged file it is (io.load_json, the one place that says so)."""
    from nasgep.commands.sample import _damage

    deep = b"[" * 100_000 + b"]" * 100_000
    straight = search(tmp_path / "a")
    search(tmp_path / "b", "search.max_generations=3")
    checkpoint.list_checkpoints(tmp_path / "b" / "checkpoints")[0].write_bytes(deep)
    resumed = search(tmp_path / "b", resume=True)                   # the previous checkpoint
    assert resumed.history == straight.history and resumed.best == straight.best
    (tmp_path / "b" / outdir.SETTINGS).write_bytes(deep)
    with pytest.raises(SearchExists, match="settings.json is damaged"):
        search(tmp_path / "b", resume=True)
    (tmp_path / "best.json").write_bytes(deep)
    assert _damage(tmp_path / "best.json") == "not JSON: JSONDecodeError"


def test_damaged_newer_files_do_not_push_good_checkpoints_out(tmp_path):
    search(tmp_path, "search.max_generations=2")
    ckpt = tmp_path / "checkpoints"
    for gen in (8, 9):
        (ckpt / f"gen-{gen:05d}.json").write_bytes(b"garbage")
    search(tmp_path, resume=True)              # generations 2 and 3
    names = [p.name for p in checkpoint.list_checkpoints(ckpt)]
    assert names[:2] == ["gen-00009.json", "gen-00008.json"]          # untouched
    assert [p.name for p in checkpoint.list_checkpoints(ckpt)[2:]] == ["gen-00003.json", "gen-00002.json"]
    assert len(checkpoint.loadable_states(ckpt)) == checkpoint.KEEP


def test_a_folder_without_a_checkpoint_yet_starts_the_search(tmp_path):
    (tmp_path / "checkpoints").mkdir()       # killed before the first checkpoint was written
    (tmp_path / "weights").mkdir()
    assert search(tmp_path, resume=True).generation == 3
    assert not any(p.name.startswith(outdir.PREVIOUS) for p in tmp_path.iterdir())


def test_restart_moves_the_old_search_aside(tmp_path):
    search(tmp_path)
    (tmp_path / outdir.SETTINGS).write_bytes(b"\x00damaged")
    with pytest.raises(SearchExists, match="settings.json is damaged"):
        search(tmp_path, resume=True)
    before = snapshot(tmp_path)
    again = search(tmp_path, restart=True)
    assert again.generation == 3
    previous = [p for p in tmp_path.iterdir() if p.name.startswith(outdir.PREVIOUS)]
    assert len(previous) == 1 and snapshot(previous[0]) == before


# --- point 2: one run per folder, same settings ------------------------------------------------

def test_a_second_run_on_a_locked_folder_names_the_holder(tmp_path):
    with outdir.locked(tmp_path):
        with pytest.raises(SearchExists, match=f"in use by another nasgep run \\(PID {os.getpid()}\\)"):
            search(tmp_path, resume=True)
    assert not (tmp_path / "checkpoints").exists()
    search(tmp_path, resume=True)           # released


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    code = ("import sys, time; from pathlib import Path; from nasgep import outdir\n"
            "with outdir.locked(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
    assert p.stdout.readline() == b"locked\n"
    with pytest.raises(SearchExists, match=f"PID {p.pid}"):
        search(tmp_path, resume=True)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert search(tmp_path, resume=True).generation == 3


def test_the_lock_ends_with_its_run_not_with_the_processes_it_forked(tmp_path):
    """A training's DataLoader workers are forked while the run holds OUT/.lock: after a
    `kill -9` of the run they lived on for seconds with a copy of the lock, and the next
    run was refused, naming the dead run's PID."""
    code = ("import os, sys, time; from pathlib import Path; from nasgep import outdir\n"
            "with outdir.locked(Path(sys.argv[1])):\n"
            "    child = os.fork()\n"
            "    if child == 0:\n        time.sleep(600); os._exit(0)\n"
            "    print(child, flush=True); time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
    child = int(p.stdout.readline())
    try:
        with pytest.raises(SearchExists, match=f"PID {p.pid}"):
            search(tmp_path, resume=True)
        p.send_signal(signal.SIGKILL)
        p.wait()
        os.kill(child, 0)                    # the forked process still lives
        assert search(tmp_path, resume=True).generation == 3
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        if p.poll() is None:
            p.kill()
            p.wait()


def test_resume_with_other_settings_names_the_keys(tmp_path):
    search(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(SearchExists, match=r"search\.max_epochs, search\.population differ"):
        search(tmp_path, "search.population=5", "search.max_epochs=3", resume=True)
    with pytest.raises(SearchExists, match="gep.cell_mutations differ"):
        search(tmp_path, "gep.cell_mutations=3", resume=True)
    assert snapshot(tmp_path) == before
    # limits are not settings of the result
    search(tmp_path, "search.budget_hours=50", "search.devices=[cpu,cpu]", resume=True)
    record = json.loads((tmp_path / outdir.SETTINGS).read_text())
    assert record["settings"]["seed"] == 3 and "max_generations" not in record["settings"]["search"]


def test_the_dataset_definition_and_seed_are_result_settings():
    config = small_config()
    other = copy.deepcopy(config)
    other["datasets"]["cifar10"]["val_size"] = 4000
    other["search"]["max_generations"] = 99
    assert outdir.differing_keys(result_settings(config, "cifar10", 0),
                                 result_settings(other, "cifar10", 1)) == ["data.val_size", "seed"]


def test_a_search_recorded_before_a_setting_existed_still_resumes(tmp_path):
    """Settings added to the fingerprint after searches were recorded (search.fitness,
    final_selection, finalists, evaluation): a record without them resumes when the
    config asks for the value every older search had, is refused naming the key when it
    asks for another, and its record gains the key once it goes on."""
    search(tmp_path, "search.max_generations=2")
    path = tmp_path / outdir.SETTINGS
    doc = json.loads(path.read_text())
    added = [k.split(".")[1] for k in outdir.RECORDED_LATER if k.startswith("search.")]
    assert {"fitness", "final_selection", "finalists", "evaluation"} <= set(added)
    old = copy.deepcopy(doc["settings"])
    for key in added:
        del old["search"][key]
    path.write_text(json.dumps({**outdir.fingerprint(old), "kind": "search"}))   # as an older nasgep wrote it
    before = snapshot(tmp_path)
    for setting in ("search.fitness=cohort", "search.evaluation=full", "search.final_selection=retrain"):
        with pytest.raises(SearchExists, match=rf"{setting.split('=')[0]} differs"):
            search(tmp_path, setting, resume=True)
        assert snapshot(tmp_path) == before
    state = search(tmp_path, resume=True)          # max_generations 4: it goes on
    assert state.generation == 3
    assert json.loads(path.read_text())["settings"] == doc["settings"]


def test_evaluate_accepts_a_search_recorded_before_a_setting_existed(tmp_path):
    from nasgep.commands.evaluate import check_one_method
    from nasgep.errors import UserError

    config = small_config()
    search(tmp_path, "search.max_generations=1")
    path = tmp_path / outdir.SETTINGS
    doc = json.loads(path.read_text())
    del doc["settings"]["search"]["fitness"]
    path.write_text(json.dumps(doc))
    check_one_method([tmp_path], config)
    with pytest.raises(UserError, match="search.fitness differs"):
        check_one_method([tmp_path], small_config("search.fitness=cohort"))


def test_speed_switches_are_not_result_settings(tmp_path):
    """Where and how fast a search trains (devices, K, CUDA graphs, fp32 BatchNorm, whose
    default changed after searches were recorded) is not part of its fingerprint: a search
    goes on after any of them changes."""
    base = result_settings(small_config(), "cifar10", 0)
    fast = result_settings(small_config("search.fp32_batchnorm=false", "search.cuda_graphs=false",
                                        "search.concurrency=2"), "cifar10", 0)
    assert base == fast and "fp32_batchnorm" not in base["search"]
    search(tmp_path, "search.max_generations=2", "search.fp32_batchnorm=false")
    resumed = search(tmp_path, "search.max_generations=3", resume=True)
    assert resumed.finished and resumed.generation == 2
    # nor do they make the workflow rerun a search, a training or an evaluation
    from nasgep import study

    slow = small_config("search.fp32_batchnorm=false", "search.cuda_graphs=false", "train.cuda_graphs=false",
                        "train.fp32_batchnorm=true", "train.num_workers=0")
    for inputs in (lambda c: study.search_inputs(c, "cifar10"), lambda c: study.searchphase_inputs(c, "cifar10"),
                   lambda c: study.train_inputs(c, "cifar10", "cutout")):
        assert inputs(small_config()) == inputs(slow)
    assert study.train_inputs(small_config(), "cifar10", "cutout") != study.train_inputs(
        small_config("train.amp=false"), "cifar10", "cutout")      # bf16 or fp32 arithmetic: a result setting


def test_restart_if_changed_redoes_only_a_changed_search(tmp_path):
    first = search(tmp_path)
    same = search(tmp_path, resume=True, restart_if_changed=True)       # finished, same: nothing to do
    assert same.history == first.history
    # --restart-if-changed alone goes on too, as its --help says (it was refused, asking for --resume)
    assert search(tmp_path, restart_if_changed=True).history == first.history
    assert not any(p.name.startswith(outdir.PREVIOUS) for p in tmp_path.iterdir())
    other = search(tmp_path, "search.population=5", resume=True, restart_if_changed=True)
    assert other.history != first.history
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(outdir.PREVIOUS)]) == 1


def _search_argv(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(small_config("search.max_generations=4")))
    return ["search", "--config", str(config), "--seed", "3", "--out", str(out), *extra]


def test_a_search_that_lost_its_settings_json_is_refused_not_given_the_current_settings(tmp_path, capsys):
    """Adopting the current settings would record wrong ones (lr 0.05), turn the right
    ones away and let --restart-if-changed (the workflow) move the finished search aside."""
    run = tmp_path / "run"
    search(run)
    (run / outdir.SETTINGS).unlink()
    before = snapshot(run)
    for extra in (["--resume", "--set", "search.lr=0.05"], ["--resume", "--restart-if-changed"],
                  ["--resume", "--restart-if-changed", "--set", "search.lr=0.05"]):
        assert main(_search_argv(tmp_path, run, *extra)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("nasgep search: error:"), err
        assert f"{run} holds a search but no settings.json" in err[0] and "--restart" in err[0]
        assert snapshot(run) == before
    assert not any(p.name.startswith(outdir.PREVIOUS) for p in run.iterdir())


def test_a_users_folder_with_nasgeps_names_is_not_taken_for_a_run(tmp_path):
    """Entries named like a run's (weights/, individuals/, runs/) prove nothing: a search's
    clean-up would delete weights/pretrained/resnet50.pt and individuals/<x>/, and --restart
    would move the user's runs/ aside. Refused, with or without --restart; empty folders
    of those names (a run killed before it recorded its settings) are still taken."""
    out = tmp_path / "out"
    for rel in ("weights/pretrained/resnet50.pt", "individuals/alice/notes.txt", "runs/2024/log.csv"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("a user's file\n")
    before = snapshot(out)
    for kwargs in ({}, {"resume": True}, {"restart": True}, {"resume": True, "restart_if_changed": True}):
        with pytest.raises(SearchExists, match=r"out is not empty and holds no nasgep run "
                                               r"\(individuals/, runs/, weights/\)"):
            search(out, **kwargs)
        assert snapshot(out) == before
    empty = tmp_path / "empty"
    for name in ("weights", "individuals", "checkpoints"):
        (empty / name / "sub").mkdir(parents=True)
    (empty / "weights" / ".x.pt.tmp123").write_text("")      # a temporary: hidden, not the user's
    assert search(empty).generation == 3


def test_a_search_killed_in_generation_0_is_not_overwritten_by_another(tmp_path):
    """Killed before its first checkpoint, a search has settings.json and trained states
    only: a search with other settings (here another seed) is refused, not run over it;
    the same search starts afresh, and --restart-if-changed moves the other one aside."""
    search(tmp_path)
    for name in ("checkpoints", "best.json", "history.parquet", "search.json"):
        path = tmp_path / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    (tmp_path / "individuals" / "i1").mkdir(parents=True)
    (tmp_path / "individuals" / "i1" / "e1.pt").write_bytes(b"trained in generation 0")
    before = snapshot(tmp_path)
    config = small_config("search.max_generations=4")
    for kwargs in ({}, {"resume": True}):
        with pytest.raises(SearchExists, match=r"belongs to another search \(seed differs\)"):
            run_search(config, dataset="cifar10", seed=4, out_dir=tmp_path, factory=cheap_factory,
                       progress=False, log=lambda msg: None, **kwargs)
        with pytest.raises(SearchExists, match=r"belongs to another search \(search.lr differs\)"):
            search(tmp_path, "search.lr=0.05", **kwargs)
        assert snapshot(tmp_path) == before
    assert search(tmp_path, resume=True).generation == 3
    state = search(tmp_path, "search.lr=0.05", resume=True, restart_if_changed=True)
    assert state.generation == 3
    moved = [p for p in tmp_path.iterdir() if p.name.startswith(outdir.PREVIOUS)]
    assert len(moved) == 1 and (moved[0] / "settings.json").exists()


def test_a_refused_resume_leaves_settings_json_as_it_was(tmp_path):
    search(tmp_path, "search.max_generations=2")
    for path in checkpoint.list_checkpoints(tmp_path / "checkpoints"):
        os.truncate(path, 100)
    legacy = json.loads((tmp_path / outdir.SETTINGS).read_text())
    del legacy["kind"]                        # as an older nasgep wrote it
    (tmp_path / outdir.SETTINGS).write_text(json.dumps(legacy))
    before = snapshot(tmp_path)
    with pytest.raises(SearchExists, match="no readable checkpoint"):
        search(tmp_path, resume=True)
    assert snapshot(tmp_path) == before


def test_settings_fingerprint_is_canonical():
    a = outdir.fingerprint({"b": 1, "a": {"y": [1, 2], "x": 0.5}})
    b = outdir.fingerprint({"a": {"x": 0.5, "y": (1, 2)}, "b": 1})
    assert a == b and len(a["sha256"]) == 64
    assert outdir.differing_keys({"a": {"x": 1}, "b": 2}, {"a": {"x": 2}, "c": 2}) == ["a.x", "b", "c"]


# --- point 6: nothing left behind, nothing silently missing ----------------------------------

def test_stale_temporary_files_are_removed_on_resume(tmp_path):
    search(tmp_path, "search.max_generations=2")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = [tmp_path / "checkpoints" / f".gen-00002.json.tmp{dead}", tmp_path / f".best.json.tmp.{dead}"]
    for path in stale:
        path.write_bytes(b"half")
    search(tmp_path, resume=True)
    assert not any(p.exists() for p in stale)


class ForgetfulEvaluator(CheapEvaluator):
    def unusable_files(self, state):
        return [f"weights/{entry['file']} (missing)" for entry in state.store_index.values()]


def test_resume_stops_when_files_the_checkpoint_needs_are_missing(tmp_path):
    search(tmp_path, "search.max_generations=2")
    config = small_config("search.max_generations=4")
    with pytest.raises(SearchExists, match=r"file\(s\) that the checkpoint of generation 1 needs are missing or "
                                           r"damaged \(weights/.* \(missing\)"):
        run_search(config, dataset="cifar10", seed=3, out_dir=tmp_path, resume=True,
                   factory=lambda device: ForgetfulEvaluator(), progress=False, log=lambda m: None)


def test_torch_evaluator_names_missing_and_damaged_store_and_state_files(tmp_path):
    import torch

    from nasgep.search.torch_evaluator import TorchEvaluator

    config = load_config(ROOT / "config" / "demo.yaml", ["tracking.enabled=false"])
    ev = TorchEvaluator(config, "cifar10", tmp_path, seed=0)
    state = SearchState(seed=0, store_index={"k": {"file": "ab/g1-i2.pt", "fitness": 1.0}})
    state.population = [Individual("i7", None, "r1", born=0, epochs=2)]
    assert ev.unusable_files(state) == ["weights/ab/g1-i2.pt (missing)", "individuals/i7/e2.pt (missing)"]
    (tmp_path / "weights" / "ab").mkdir(parents=True)
    (tmp_path / "weights" / "ab" / "g1-i2.pt").write_bytes(b"PK\x03\x04 truncated")
    assert ev.unusable_files(state) == ["weights/ab/g1-i2.pt (damaged)", "individuals/i7/e2.pt (missing)"]
    torch.save({"key": "k", "state": {"w": torch.zeros(2)}}, tmp_path / "weights" / "ab" / "g1-i2.pt")
    assert ev.unusable_files(state) == ["individuals/i7/e2.pt (missing)"]
    # with the digests written beside them, a readable file that is not the one written
    # there (another individual's state, an older store file) is named too
    state.store_index["k"]["sha256"] = "0" * 64
    (tmp_path / "individuals" / "i7").mkdir(parents=True)
    torch.save({"format": "other"}, tmp_path / "individuals" / "i7" / "e2.pt")
    (tmp_path / "individuals" / "i7" / "e2.json").write_text(json.dumps({"state_sha256": "1" * 64}))
    assert ev.unusable_files(state) == ["weights/ab/g1-i2.pt (damaged, or not the file written there)",
                                        "individuals/i7/e2.pt (damaged, or not the file written there)"]


# --- kill -9 at each write point of a generation -----------------------------------------------

KILLER = textwrap.dedent("""
    import os, signal, sys
    from nasgep.config import load_config
    from nasgep.search.evaluator import CheapEvaluator
    from nasgep.search.runner import run_search

    target, nth = os.environ["KILL_AT"].split(":")
    real_replace, seen = os.replace, [0]

    def replace(src, dst, *args, **kwargs):     # die between writing a file and publishing it
        if os.path.basename(str(dst)).startswith(target):
            seen[0] += 1
            if seen[0] == int(nth):
                os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace
    config = load_config(None, sys.argv[2:])
    run_search(config, dataset="cifar10", seed=5, out_dir=sys.argv[1], resume=True,
               factory=lambda device: CheapEvaluator(), progress=False)
""")


def _killed_run(script: Path, out: Path, kill_at: str) -> int:
    env = dict(os.environ, KILL_AT=kill_at)
    return subprocess.run([sys.executable, str(script), str(out), *SMALL, "search.max_generations=6"],
                          env=env, capture_output=True, timeout=120).returncode


@pytest.fixture(scope="module")
def killer(tmp_path_factory) -> tuple[Path, Path]:
    """The script, and the folder of an uninterrupted run of it."""
    folder = tmp_path_factory.mktemp("killer")
    script = folder / "killer.py"
    script.write_text(KILLER)
    assert _killed_run(script, folder / "straight", "never:1") == 0
    return script, folder / "straight"


@pytest.mark.parametrize("target", ["gen-", "best.json", "history.parquet", "search.json", "settings.json"])
def test_kill_at_a_write_point_then_resume_gives_the_same_result(tmp_path, killer, target):
    script, straight = killer
    killed = tmp_path / "killed"
    nth = 1 if target == "settings.json" else 3
    assert _killed_run(script, killed, f"{target}:{nth}") == -signal.SIGKILL
    assert list(killed.rglob(".*.tmp*")), "the kill left a temporary file"
    assert _killed_run(script, killed, "never:1") == 0
    assert not list(killed.rglob(".*.tmp*"))
    a, b = straight, killed
    assert json.loads((a / "best.json").read_text()) == json.loads((b / "best.json").read_text())
    pd.testing.assert_frame_equal(pd.read_parquet(a / "history.parquet").drop(columns="seconds"),
                                  pd.read_parquet(b / "history.parquet").drop(columns="seconds"))


def test_a_search_going_on_drops_the_workflows_mark(tmp_path):
    """Snakemake marks a search job done (.workflow-done); resumed by hand with a raised
    limit, the search is no longer that one, and the workflow must run its job again."""
    from nasgep.study import DONE

    search(tmp_path)
    (tmp_path / DONE).touch()
    search(tmp_path, resume=True)                                  # finished, same limits: unchanged
    assert (tmp_path / DONE).exists()
    search(tmp_path, "search.max_generations=5", resume=True)     # goes on
    assert not (tmp_path / DONE).exists()


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    """Disk full at the flush, or a path that turned out to be a folder: the old content
    stays whole and no hidden temporary is left beside it."""
    import errno

    from nasgep import io

    target, folder = tmp_path / "best.json", tmp_path / "cells"
    target.write_text("the old result\n")
    folder.mkdir()
    with pytest.raises(OSError):
        io.atomic_write_text(folder, "new")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left") as refused:
        io.atomic_write_text(target, "the new result\n")
    assert refused.value.filename == str(target)        # the CLI's one line names the file
    assert target.read_text() == "the old result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "cells"]


def test_a_write_into_a_read_only_folder_names_the_file_not_its_temporary(tmp_path, monkeypatch):
    """A read-only filesystem refuses the temporary's open and then its clean-up unlink too
    (EROFS, even for a file that is not there): the error still names the file asked for."""
    import builtins
    import errno
    from pathlib import Path

    from nasgep import io

    def read_only(error_path):
        raise OSError(errno.EROFS, "Read-only file system", str(error_path))

    real_open = builtins.open
    monkeypatch.setattr(io, "open", lambda file, *a, **k: read_only(file) if ".tmp." in str(file)
                        else real_open(file, *a, **k), raising=False)
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: read_only(self))
    with pytest.raises(OSError, match="Read-only") as refused:
        io.atomic_write_text(tmp_path / "summary.json", "{}")
    assert refused.value.filename == str(tmp_path / "summary.json")


def test_a_limit_lowered_below_what_an_interrupted_search_ran_stops_it_and_says_so(tmp_path):
    """An interrupted search that ran 5 generations, resumed with search.max_generations = 3:
    it keeps all 5 (nothing is thrown away) and the lines say the limit was lowered, instead
    of a closing line that claims 3 generations."""
    search(tmp_path, "search.max_generations=5")
    state = checkpoint.newest_good(tmp_path / "checkpoints")[0]
    assert state.generation == 4
    state.finished, state.stop_reason = False, None        # as if killed after generation 4
    checkpoint.save(tmp_path / "checkpoints", state)
    history = pd.read_parquet(tmp_path / "history.parquet")
    lines = []
    config = small_config("search.max_generations=3")
    _Inspected.made, _Inspected.asked = [], []
    done = run_search(config, dataset="cifar10", seed=3, out_dir=tmp_path, resume=True, factory=_Inspected,
                      progress=False, log=lines.append)
    assert done.finished and done.generation == 4
    assert _Inspected.asked == []       # it trains nothing: the data is not loaded
    lowered = "search.max_generations = 3, lowered after the search had run 5 generations"
    assert f"note: {lowered}: it stops here and keeps all of them" in "\n".join(lines)
    assert f"search finished (max_generations: {lowered}) after generation 4" in lines[-1]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "history.parquet"), history)


def test_one_limit_raised_and_another_lowered_leaves_a_finished_search_as_it_was(tmp_path):
    """Found by review: a finished search resumed with max_generations raised and
    budget_epochs lowered below what it had trained said it would go on, dropped the
    workflow's mark, and stopped at once with another stop reason."""
    from nasgep.study import DONE

    search(tmp_path, "search.max_generations=5")
    (tmp_path / DONE).touch()
    before = snapshot(tmp_path)
    trained = checkpoint.newest_good(tmp_path / "checkpoints")[0].epochs_trained()
    lines = []
    config = small_config("search.max_generations=7", f"search.budget_epochs={trained - 10}")
    done = run_search(config, dataset="cifar10", seed=3, out_dir=tmp_path, resume=True, factory=cheap_factory,
                      progress=False, log=lines.append)
    assert done.stop_reason == "max_generations" and done.generation == 4
    assert not any("let it go on" in line for line in lines)
    assert f"note: search.budget_epochs = {trained - 10}, lowered after the search had trained {trained}" \
        in "\n".join(lines)
    assert (tmp_path / DONE).exists()
    after = snapshot(tmp_path)
    for name in ("best.json", "history.parquet", "search.json"):
        assert after[name] == before[name], name


def _failing_factory(device: str) -> CheapEvaluator:
    return CheapEvaluator(fail_if=lambda genome: "out of memory")


def test_the_closing_line_says_what_stopped_the_search(tmp_path):
    """Every candidate failed: no individual is left to breed; the line says so, naming
    the setting, instead of a bare 'extinct'. (E_max = 1, which used to age every
    individual out after generation 0, is refused by the config: test_bad_config.py.)"""
    from nasgep.errors import RunFailed

    lines = []
    config = small_config("search.max_generations=4")
    with pytest.raises(RunFailed, match=r"the search ended \(extinct: no individual left to breed: each failed or "
                                        r"reached search.max_epochs = 4 epochs\) after generation 0"):
        run_search(config, dataset="cifar10", seed=3, out_dir=tmp_path / "a", factory=_failing_factory,
                   progress=False, log=lines.append)
    run_search(small_config("search.max_generations=4"), dataset="cifar10", seed=3, out_dir=tmp_path / "b",
               factory=cheap_factory, progress=False, log=lines.append)
    assert "search finished (max_generations: search.max_generations = 4) after generation 3" in lines[-1]


def test_devices_all_without_a_gpu_says_it_trains_on_the_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: 'all' lists it")
    lines = []
    run_search(small_config("search.max_generations=1", "search.devices=[all]"), dataset="cifar10", seed=3,
               out_dir=tmp_path, factory=cheap_factory, progress=False, log=lines.append)
    assert "devices: search.devices lists 'all' but this machine has no GPU; training on the CPU" in lines



class _Inspected(CheapEvaluator):
    """A stand-in that records what a run asked of it: the devices it was made for, its
    input checks and its data."""

    made: list[str] = []
    asked: list[str] = []

    def __init__(self, device: str):
        super().__init__()
        _Inspected.made.append(device)

    def check_inputs(self) -> None:
        _Inspected.asked.append("check_inputs")

    @property
    def data(self):
        _Inspected.asked.append("data")


def test_resuming_a_finished_search_loads_no_data_and_starts_no_workers(tmp_path, monkeypatch):
    """A finished search resumed with the same limits only rewrites its result files: on a
    large image folder, loading the data for that took minutes (and concurrency started
    worker processes). With final_selection: retrain the same holds once the finalists
    are recorded; finalists recorded for an older generation are re-trained."""
    for selection in ("fitness", "retrain"):
        out = tmp_path / selection
        config = small_config("search.max_generations=3", f"search.final_selection={selection}",
                              "search.concurrency=2")
        first = run_search(config, dataset="cifar10", seed=3, out_dir=out, factory=cheap_factory,
                           progress=False, log=lambda m: None)
        before = json.loads((out / "best.json").read_text())
        _Inspected.made, _Inspected.asked = [], []
        lines: list[str] = []
        with monkeypatch.context() as m:
            m.setattr(evaluator_module, "ProcessExecutor", None)    # a worker process would fail
            again = run_search(config, dataset="cifar10", seed=3, out_dir=out, resume=True, factory=_Inspected,
                               progress=False, log=lines.append)
        assert (_Inspected.made, _Inspected.asked) == (["cpu"], [])
        assert again.best == first.best and json.loads((out / "best.json").read_text()) == before
        assert lines[-1].startswith("search finished (max_generations")
    finalists = json.loads((out / "finalists.json").read_text())
    (out / "finalists.json").write_text(json.dumps({**finalists, "generation": 1}))
    _Inspected.made, _Inspected.asked = [], []
    config["search"]["concurrency"] = 1
    again = run_search(config, dataset="cifar10", seed=3, out_dir=out, resume=True, factory=_Inspected,
                       progress=False, log=lambda m: None)
    assert _Inspected.asked == ["check_inputs", "data"] and again.best == first.best
    assert json.loads((out / "finalists.json").read_text())["generation"] == first.generation



def test_a_finished_full_search_keeps_the_fitness_its_finalists_were_chosen_by(tmp_path):
    """Under search.evaluation: full the retrain choice ranks the mean of the search fitness
    and the re-training (since 2026-12-07). A finished search whose finalists.json was made
    before chose by the re-training alone, and its best.json reported that; resuming it
    (which only rewrites the result files) turned best.json's fitness into the mean of a
    pick the mean never made. A record says what it ranked by; one without, the re-training."""
    config = small_config("search.evaluation=full", "search.max_epochs=3", "search.max_generations=2",
                          "search.final_selection=retrain")
    out = tmp_path / "s"
    run_search(config, dataset="cifar10", seed=3, out_dir=out, factory=cheap_factory, progress=False,
               log=lambda m: None)
    made = json.loads((out / "finalists.json").read_text())
    best = json.loads((out / "best.json").read_text())
    chosen = next(f for f in made["finalists"] if f["id"] == made["chosen"])
    assert best["fitness"] == pytest.approx((chosen["fitness"] + chosen["retrained"]) / 2)
    run_search(config, dataset="cifar10", seed=3, out_dir=out, resume=True, factory=cheap_factory,
               progress=False, log=lambda m: None)
    assert json.loads((out / "best.json").read_text()) == best        # as made: unchanged
    # as an older version wrote it: other re-trainings, the best of them chosen, no ranked_by
    old = [{**f, "retrained": round(f["fitness"] / 2 + j, 4)} for j, f in enumerate(made["finalists"])]
    pick = max(old, key=lambda f: f["retrained"])
    record = {k: v for k, v in made.items() if k != "ranked_by"}
    (out / "finalists.json").write_text(json.dumps({**record, "finalists": old, "chosen": pick["id"]}))
    again = run_search(config, dataset="cifar10", seed=3, out_dir=out, resume=True, factory=cheap_factory,
                       progress=False, log=lambda m: None)
    best = json.loads((out / "best.json").read_text())
    assert best["individual"] == pick["id"] == again.best.individual
    assert best["fitness"] == best["accuracy"] == pick["retrained"] != (pick["fitness"] + pick["retrained"]) / 2


def test_a_search_resumed_on_jobs_trained_before_it_was_killed_is_not_taken_for_damaged(tmp_path):
    """A search killed in generation 0 (no checkpoint yet) starts again and takes the jobs
    trained before the kill from their records (TorchEvaluator.recorded), with the seconds
    they took then; its elapsed_seconds counts only the run that finished. read_history
    refused such a history: 'an individual trained 600 s, longer than the ... s the
    search.json beside it records the search ran (damaged ...)', so no table or figure
    of the study could be made. No search.json number bounds a candidate's time."""
    import dataclasses

    from nasgep.study import read_history

    class TrainedBeforeTheKill(CheapEvaluator):
        def train(self, job):
            return dataclasses.replace(super().train(job), seconds=600.0)

    config = small_config("search.max_generations=2")
    out = tmp_path / "s"
    run_search(config, dataset="cifar10", seed=3, out_dir=out, factory=lambda device: TrainedBeforeTheKill(),
               progress=False, log=lambda m: None)
    assert json.loads((out / "search.json").read_text())["elapsed_seconds"] < 600
    history = read_history(out / "history.parquet", ["id", "seconds"])
    assert history["seconds"].max() >= 600

MOVE_KILLER = textwrap.dedent("""
    import os, signal, sys
    from nasgep.config import load_config
    from nasgep.search.evaluator import CheapEvaluator
    from nasgep.search.runner import run_search

    real_replace, seen = os.replace, [0]

    def replace(src, dst, *args, **kwargs):     # die after the second file moved aside
        if ".previous-" in str(dst) and not os.path.basename(str(dst)).startswith(".moving"):
            seen[0] += 1
            if seen[0] == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace
    config = load_config(None, sys.argv[2:])
    run_search(config, dataset="cifar10", seed=3, out_dir=sys.argv[1], restart=True,
               factory=lambda device: CheapEvaluator(), progress=False, log=lambda msg: None)
""")


def test_a_restart_killed_while_it_moves_the_old_files_aside_is_finished_by_the_next_run(tmp_path):
    """`--restart` killed among its renames left the old run split: part in .previous-A/,
    part still in the folder (a --resume then found a search without its settings.json or
    checkpoints, and the next --restart moved the rest into a second .previous-B/). The
    next run finishes the move into the same folder, so the old run stays whole in one place."""
    out = tmp_path / "run"
    search(out)
    before = snapshot(out)
    script = tmp_path / "move_killer.py"
    script.write_text(MOVE_KILLER)
    config = small_config("search.max_generations=4")
    killed = subprocess.run([sys.executable, str(script), str(out), *SMALL, "search.max_generations=4"],
                            capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    aside = [p for p in out.iterdir() if p.name.startswith(outdir.PREVIOUS)]
    assert len(aside) == 1 and any(p.name != outdir.MOVING for p in aside[0].iterdir())    # split
    assert any(p.name != outdir.LOCK for p in out.iterdir() if p not in aside)
    logged = []
    run_search(config, dataset="cifar10", seed=3, out_dir=out, resume=True, factory=cheap_factory,
               progress=False, log=logged.append)
    aside = [p for p in out.iterdir() if p.name.startswith(outdir.PREVIOUS)]
    assert len(aside) == 1 and snapshot(aside[0]) == before, logged
    assert any("an earlier move was interrupted" in line for line in logged)


def test_a_run_put_back_by_hand_but_its_hidden_files_is_taken_as_it_is(tmp_path):
    """After a --restart was killed half-way, or simply undone, a user's `mv .previous-X/* .`
    puts back the visible files and leaves the hidden ones (the record of the move, the
    workflow's mark). The next --resume took the move as half-done and moved the restored
    run aside again, starting a new search. The run's settings move first, so settings
    back in the folder say the user put the run back: it resumes, and a line says what
    stayed behind."""
    out = tmp_path / "run"
    first = search(out)
    (out / ".workflow-done").touch()
    script = tmp_path / "move_killer.py"
    script.write_text(MOVE_KILLER.replace("seen[0] == 3", "seen[0] == 10**9"))    # the --restart runs through
    subprocess.run([sys.executable, str(script), str(out), *SMALL, "search.max_generations=4"],
                   capture_output=True, timeout=120, check=True)
    aside = next(p for p in out.iterdir() if p.name.startswith(outdir.PREVIOUS))
    assert (aside / outdir.SETTINGS).exists()
    for p in out.iterdir():     # the new search's files go, then `mv .previous-X/* .`
        if p != aside:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in aside.iterdir():
        if not p.name.startswith("."):
            os.replace(p, out / p.name)
    (aside / outdir.MOVING).write_text(json.dumps(sorted(p.name for p in out.iterdir() if p != aside)
                                                  + [".workflow-done"]) + "\n")      # as if killed half-way
    logged = []
    again = run_search(small_config("search.max_generations=4"), dataset="cifar10", seed=3, out_dir=out,
                       resume=True, factory=cheap_factory, progress=False, log=logged.append)
    assert again.history == first.history and again.generation == first.generation
    assert not any("interrupted" in line or "starting afresh" in line for line in logged), logged
    assert any("not put back" in line for line in logged), logged
    assert (aside / ".workflow-done").exists() and not (aside / outdir.MOVING).exists()
    assert not (aside / outdir.SETTINGS).exists()       # the restored run stayed where it was put back


def test_a_run_without_settings_put_back_by_hand_is_taken_as_it_is(tmp_path):
    """A run made before settings.json existed (a training resumes without one) put back by
    hand with `mv .previous-X/* .`: every visible file is back, the hidden ones (the record,
    the workflow's mark) stayed. With no settings to tell, it was taken for a half-done move
    and moved aside again. Hidden files now move last, so a move killed half-way never
    leaves all visible files in the folder while a hidden one moved: it stays put. The
    boundary: visible files moved and a hidden one left behind is still a move to finish."""
    out = tmp_path / "train"
    aside = out / f"{outdir.PREVIOUS}20261207T000000.000000Z"
    aside.mkdir(parents=True)
    for name in ("checkpoint.pt", "metrics.json", "model.pt"):
        (out / name).write_text(name)
    (aside / ".workflow-done").touch()
    (aside / outdir.MOVING).write_text(json.dumps(["checkpoint.pt", "metrics.json", "model.pt", ".workflow-done"]))
    logged = []
    outdir.finish_interrupted_moves(out, logged.append)
    assert sorted(p.name for p in out.iterdir()) == [aside.name, "checkpoint.pt", "metrics.json", "model.pt"]
    assert not (aside / outdir.MOVING).exists() and (aside / ".workflow-done").exists()
    assert any("not put back" in line for line in logged), logged
    # killed after the visible files, before the hidden mark: finished into the same folder
    half = out / f"{outdir.PREVIOUS}20261207T000001.000000Z"
    half.mkdir()
    for name in ("checkpoint.pt", "metrics.json", "model.pt"):
        os.replace(out / name, half / name)
    (out / ".workflow-done").touch()
    (half / outdir.MOVING).write_text(json.dumps(["checkpoint.pt", "metrics.json", "model.pt", ".workflow-done"]))
    outdir.finish_interrupted_moves(out, logged.append)
    assert sorted(p.name for p in half.iterdir()) == [".workflow-done", "checkpoint.pt", "metrics.json", "model.pt"]
    assert not (out / ".workflow-done").exists()


def test_move_aside_moves_settings_first_and_hidden_files_last(tmp_path, monkeypatch):
    """The order finish_interrupted_moves relies on, as the record lists it before the
    first rename (the record is the move's plan: it is removed once the move is done)."""
    out = tmp_path / "run"
    out.mkdir()
    for name in (".mark", "a.json", outdir.SETTINGS, ".b", "z.pt"):
        (out / name).write_text(name)
    planned = []
    real = outdir.atomic_write_text

    def spy(path, text):
        planned.append(json.loads(text))
        return real(path, text)

    monkeypatch.setattr(outdir, "atomic_write_text", spy)
    target = outdir.move_aside(out)
    assert planned[0][0] == outdir.SETTINGS and sorted(planned[0][-2:]) == [".b", ".mark"]
    assert sorted(p.name for p in target.iterdir()) == [".b", ".mark", "a.json", outdir.SETTINGS, "z.pt"]


def test_a_restart_killed_before_its_first_move_leaves_the_run_to_resume(tmp_path):
    """Killed after it recorded what it would move but before the first rename (or every
    file put back by hand with `mv .previous-X/* .`, which leaves the hidden record): the
    folder holds the whole old run, and the record of a move no file of which was made is
    no move to finish. The next --resume moved the whole run aside all the same and
    started a new search (saying an earlier move was interrupted); it resumes the run."""
    out = tmp_path / "run"
    first = search(out)
    before = snapshot(out)
    script = tmp_path / "move_killer.py"
    script.write_text(MOVE_KILLER.replace("seen[0] == 3", "seen[0] == 1"))
    killed = subprocess.run([sys.executable, str(script), str(out), *SMALL, "search.max_generations=4"],
                            capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    aside = [p for p in out.iterdir() if p.name.startswith(outdir.PREVIOUS)]
    assert [p.name for p in aside[0].iterdir()] == [outdir.MOVING]       # nothing moved yet
    logged = []
    again = run_search(
        small_config("search.max_generations=4"), dataset="cifar10", seed=3, out_dir=out, resume=True,
        factory=cheap_factory, progress=False, log=logged.append)
    assert again.history == first.history and again.generation == first.generation
    assert not any("starting afresh" in line or "interrupted" in line for line in logged), logged
    assert not any(p.name.startswith(outdir.PREVIOUS) for p in out.iterdir())
    kept = {k: v for k, v in before.items() if not k.endswith(".svg")}    # drawn again: new ids
    assert {k: v for k, v in snapshot(out).items() if k in kept} == kept
