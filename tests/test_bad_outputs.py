"""Outputs that would overwrite or misreport a result are refused in one line (a probe of
`nasgep evaluate` and `nasgep tables`): an evaluation keeps its files in a folder of its
own and evaluates searches of its dataset only; tables count a metrics.json only at its
own place; 'tables best' picks among one dataset's searches with finite fitness and never
writes over a run's file; a file named where a folder is expected, or the reverse, is said
to be one."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from test_bad_input import DEMO, ROOT, TINY, cheap_search, one_line_error  # noqa: F401 - cheap_search: a fixture
from test_report import make_study, metrics
from test_resume import search, snapshot
from test_searchphase import trainings  # noqa: F401 - a fixture

from nasgep import outdir
from nasgep.cli import main
from nasgep.search.runner import SearchExists

SETS = [a for s in TINY for a in ("--set", s)]


def evaluate(*args: str) -> list[str]:
    return ["evaluate", "--config", DEMO, *SETS, *args]


@pytest.fixture
def searched(cheap_search, tmp_path):  # noqa: F811
    """A copy of a finished cheap search on cifar10 (seed 0)."""
    shutil.copytree(cheap_search, tmp_path / "s0")
    return tmp_path / "s0"


# --------------------------------------------------------------------------- nasgep evaluate

def test_evaluate_refuses_a_search_of_another_dataset(capsys, tmp_path, searched, trainings):  # noqa: F811
    argv = evaluate("--dataset", "cifar100", "--search", str(searched), "--out", str(tmp_path / "ev"))
    match = rf"--search {searched} is a search of dataset 'cifar10', not 'cifar100'"
    one_line_error(capsys, argv, match)
    (searched / outdir.SETTINGS).unlink()          # no record: its best.json says it too
    one_line_error(capsys, argv, match)
    assert not trainings and not (tmp_path / "ev").exists()


def test_evaluate_refuses_searches_of_other_settings_than_the_config(capsys, tmp_path, searched,
                                                                     trainings):  # noqa: F811
    """A cohort-fitness search beside accuracy-fitness ones mixed two fitness scales in one
    Kendall tau, without a word; the searches of an evaluation are seeds of one method."""
    ev = tmp_path / "ev"
    one_line_error(capsys, evaluate("--set", "search.fitness=cohort", "--search", str(searched), "--out", str(ev)),
                   rf"--search {searched} was made with other settings than the config's \(search.fitness "
                   r"differs\); evaluate it with the config it was searched with")
    one_line_error(capsys, evaluate("--set", "gep.cell_head=3", "--search", str(searched), "--out", str(ev)),
                   r"\(gep.cell_head differs\)")
    assert not trainings and not ev.exists()


def test_evaluate_refuses_a_search_made_on_other_data_files(capsys, tmp_path, trainings):  # noqa: F811
    """Same dataset name, other images (the .npz rewritten): a resume refuses it, and so
    does the evaluation, naming what differs."""
    from test_bad_input import npz_config, npz_dataset

    from nasgep.config import load_config
    from nasgep.search.evaluator import CheapEvaluator
    from nasgep.search.runner import run_search

    config = npz_config(tmp_path, npz_dataset(tmp_path))
    run_search(load_config([DEMO, config], [*TINY, "search.dataset=d"]), dataset="d", seed=0,
               out_dir=tmp_path / "s0", progress=False, factory=lambda device: CheapEvaluator())
    argv = evaluate("--config", config, "--dataset", "d", "--search", str(tmp_path / "s0"),
                    "--out", str(tmp_path / "ev"))
    from nasgep.commands.evaluate import check_search
    from nasgep.datafiles import files_fingerprint

    entry = load_config([DEMO, config])["datasets"]["d"]
    check_search(tmp_path / "s0", "d", entry, files_fingerprint(entry))   # the same files: accepted
    npz_dataset(tmp_path, classes=3)                       # the same path, other content
    capsys.readouterr()
    one_line_error(capsys, argv, r"s0 was made on other data than dataset 'd' of the config "
                                 r"\(data_files differ\)")
    assert not trainings and not (tmp_path / "ev").exists()


def test_evaluate_names_a_dataset_file_that_is_not_there(capsys, tmp_path, trainings):  # noqa: F811
    """The .npz moved away after the search: the evaluation said the search 'was made on
    other data' (the fingerprint of no file differs from any); it names the missing file,
    as a search and a training do (datafiles.required_fingerprints)."""
    from test_bad_input import npz_config, npz_dataset

    from nasgep.config import load_config
    from nasgep.search.evaluator import CheapEvaluator
    from nasgep.search.runner import run_search

    data = npz_dataset(tmp_path)
    config = npz_config(tmp_path, data)
    run_search(load_config([DEMO, config], [*TINY, "search.dataset=d"]), dataset="d", seed=0,
               out_dir=tmp_path / "s0", progress=False, factory=lambda device: CheapEvaluator())
    data.rename(tmp_path / "moved.npz")
    capsys.readouterr()
    one_line_error(capsys, evaluate("--config", config, "--dataset", "d", "--search", str(tmp_path / "s0"),
                                    "--out", str(tmp_path / "ev")), rf"{data}: no such .npz file")
    assert not trainings and not (tmp_path / "ev").exists()


def test_evaluate_keeps_its_files_in_a_folder_of_its_own(capsys, tmp_path, searched, trainings):  # noqa: F811
    """A folder of the user's files, or a search's, is refused and left as it was; the
    evaluation's own folder is taken again (its cache), and other verbs refuse it."""
    user = tmp_path / "notes"
    user.mkdir()
    (user / "notes.txt").write_text("a user's notes\n")
    run = tmp_path / "run"
    shutil.copytree(searched, run)
    before = {folder: snapshot(folder) for folder in (user, run)}
    one_line_error(capsys, evaluate("--search", str(searched), "--out", str(user)),
                   r"notes is not empty and holds no nasgep run \(notes.txt\); a search-phase evaluation keeps "
                   r"its files in a folder of its own")
    one_line_error(capsys, evaluate("--search", str(searched), "--out", str(run)),
                   r"run holds a search \(checkpoints/, best.json, history.parquet\), not a search-phase evaluation")
    assert {folder: snapshot(folder) for folder in (user, run)} == before and not trainings
    ev = tmp_path / "ev"
    assert main(evaluate("--search", str(searched), "--out", str(ev))) == 0
    done = len(trainings)
    assert main(evaluate("--search", str(searched), "--out", str(ev))) == 0 and len(trainings) == done  # cached
    capsys.readouterr()
    results = snapshot(ev)
    for verb in ("search", "sample"):
        one_line_error(capsys, [verb, "--config", DEMO, *SETS, "--out", str(ev)],
                       rf"ev holds a search-phase evaluation \(searchphase.json, runs/\), not a {verb}")
    with pytest.raises(SearchExists, match="holds a search-phase evaluation"):
        search(ev, restart=True)
    with outdir.locked(ev):                           # another evaluation running there
        one_line_error(capsys, evaluate("--search", str(searched), "--out", str(ev)),
                       r"ev is in use by another nasgep run \(PID \d+\)")
    assert snapshot(ev) == results


def _sample(folder: Path) -> None:
    assert main(["sample", "--config", DEMO, *SETS, "--out", str(folder)]) == 0


def _training(folder: Path) -> None:
    folder.mkdir()
    outdir.record(folder, {"genome": {}, "train": {}}, "training")
    (folder / "metrics.json").write_text(json.dumps(metrics(3.0, 1000, "cifar10", "none", 0)))


def _results(folder: Path) -> None:
    """A study's results folder: searches two levels below it."""
    for seed in (0, 1):
        (folder / "search" / "cifar10" / "search" / f"seed{seed}").mkdir(parents=True)
        outdir.record(folder / "search" / "cifar10" / "search" / f"seed{seed}", {"search": {}, "gep": {}}, "search")


@pytest.mark.parametrize("case, make, match", [
    ("nope", None, r"--search NOPE: no such folder$"),
    # both said "NOPE/search.json: missing (is the search finished?)"
    ("results", _results, r"--search NOPE is not a search folder \(no search.json, best.json, history.parquet\); the "
                          r"searches are in its sub-folders \(search/cifar10/search/seed0/, "
                          r"search/cifar10/search/seed1/\): give each one's folder$"),
    ("empty", lambda p: p.mkdir(), r"--search NOPE is not a search folder \(no search.json, best.json, "
                                   r"history.parquet\)$"),
    ("file.json", lambda p: p.write_text("{}"), r"--search NOPE: a file, not a search folder$"),
    ("sampled", _sample, r"--search NOPE holds a sample \(best.json\), not a search$"),
    ("trained", _training, r"--search NOPE holds a training \(metrics.json\), not a search$"),
])
def test_evaluate_says_what_a_search_folder_is_instead(capsys, tmp_path, trainings, case, make, match):  # noqa: F811
    folder = tmp_path / case
    if make is not None:
        make(folder)
    capsys.readouterr()
    one_line_error(capsys, evaluate("--search", str(folder), "--out", str(tmp_path / "ev")),
                   match.replace("NOPE", str(folder)))
    assert not trainings and not (tmp_path / "ev").exists()


def test_evaluate_out_naming_an_existing_file_is_refused(capsys, tmp_path, searched, trainings):  # noqa: F811
    existing = tmp_path / "results.txt"
    existing.write_text("a user's file\n")
    with pytest.raises(SystemExit) as exit_:
        main(evaluate("--search", str(searched), "--out", str(existing)))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert f"{existing} is an existing file, not a folder" in err.strip().splitlines()[-1]
    assert existing.read_text() == "a user's file\n" and not trainings


# --------------------------------------------------------------------------- nasgep tables

@pytest.mark.parametrize("verb", ["tables", "figures"])
def test_a_metrics_json_is_counted_only_at_its_own_place(capsys, tmp_path, verb):
    from nasgep.report import Study

    cfg, config = make_study(tmp_path)
    path = Study(config).train_dir("cifar10", "cutout_aa", 0) / "metrics.json"
    path.write_text(json.dumps(metrics(1.0, 5, "cifar100", "cutout", 7)))
    line = one_line_error(capsys, [verb, "--config", str(cfg), "--out", str(tmp_path / "o")],
                          r"metrics.json: records dataset 'cifar100', variant 'cutout', seed 7, but its folder is "
                          r"that of dataset 'cifar10', variant 'cutout_aa', seed 0")
    assert str(path) in line
    # only what it records is checked: a metrics.json without these keys is counted
    path.write_text(json.dumps({"test_error": 2.8, "params": 3_600_000}))
    assert main([verb, "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0


@pytest.mark.parametrize("verb", ["tables", "figures"])
def test_a_search_is_counted_only_at_its_own_place(capsys, tmp_path, verb):
    """A cifar10 search copied into cifar100's folder was drawn as cifar100's search curve and
    counted in Table II's cost (found by a CLI fuzz)."""
    from nasgep.report import Study

    cfg, config = make_study(tmp_path)
    summary = Study(config).search_dir("cifar100", "search", 1) / "search.json"
    summary.write_text(json.dumps({"dataset": "cifar10", "seed": 1, "method": "search", "finished": True}))
    one_line_error(capsys, [verb, "--config", str(cfg), "--out", str(tmp_path / "o")],
                   r"search/cifar100/search/seed1/search.json: records dataset 'cifar10', but its folder is that of "
                   r"dataset 'cifar100', method 'search', seed 1; move it to its own folder, or search this one there")
    summary.write_text(json.dumps({"dataset": "cifar100", "seed": 1, "method": "search", "finished": True}))
    assert main([verb, "--config", str(cfg), "--out", str(tmp_path / "o")]) == 0


def test_table3_checks_the_transfers_dataset(capsys, tmp_path):
    from nasgep.report import Study

    cfg, config = make_study(tmp_path)
    cfg.write_text(cfg.read_text() + "  imagenet: {kind: cifar10, label: ImageNet}\n"
                   "transfer: {dataset: imagenet}\n")
    path = Study(config).transfer_dir("imagenet") / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(metrics(25.0, 5, "cifar10", "cutout_aa", 0)))
    one_line_error(capsys, ["tables", "--config", str(cfg), "--out", str(tmp_path / "o")],
                   r"transfer/imagenet/metrics.json: records dataset 'cifar10', but its folder is that of "
                   r"dataset 'imagenet'")


def _best(tmp_path: Path, name: str, text: str | dict) -> str:
    path = tmp_path / name / "best.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if isinstance(text, str) else json.dumps(text))
    return str(path)


CELL = {"cell": "add | g1 g1", "genes": {"g1": "add | pw(h1) pw(h2)"}}
GOOD = {"genome": {"normal": CELL, "reduction": CELL}, "fitness": 50.0, "dataset": "cifar10", "seed": 1,
        "method": "search"}


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_tables_best_refuses_a_fitness_that_is_no_finite_number(capsys, tmp_path, value):
    bad = _best(tmp_path, "a", json.dumps({**GOOD, "seed": 0}).replace("50.0", value))
    good = _best(tmp_path, "b", GOOD)
    out = tmp_path / "best.json"
    line = one_line_error(capsys, ["tables", "best", "--inputs", bad, good, "--out", str(out)],
                          rf"a/best.json: fitness {value.lower().replace('infinity', 'inf')} is not a finite number")
    assert bad in line and not out.exists()


@pytest.mark.parametrize("genome, match", [
    (None, r"b/best.json: no 'genome'"),
    ({"normal": CELL}, r"b/best.json: genome: missing key 'reduction'"),
    ({"normal": {"cell": "zz | q", "genes": {}}, "reduction": CELL}, r"b/best.json: genome: normal.cell"),
])
def test_tables_best_refuses_a_broken_genome_before_choosing(capsys, tmp_path, genome, match):
    """The chosen file is trained next: a genome that cannot be trained is named here, even
    when its fitness is the highest."""
    broken = {key: value for key, value in GOOD.items() if key != "genome"}
    if genome is not None:
        broken["genome"] = genome
    a, b = _best(tmp_path, "a", GOOD), _best(tmp_path, "b", {**broken, "fitness": 99.0})
    out = tmp_path / "best.json"
    one_line_error(capsys, ["tables", "best", "--inputs", a, b, "--out", str(out)], match)
    assert not out.exists()


def test_tables_best_refuses_an_unfinished_search(capsys, tmp_path):
    """A search killed in generation 1 was chosen by its best-so-far fitness, without a word
    (found by a CLI fuzz); `nasgep evaluate` already refused it."""
    good, early = _best(tmp_path, "a", GOOD), _best(tmp_path, "b", {**GOOD, "seed": 2, "fitness": 60.0})
    (tmp_path / "b" / "search.json").write_text(json.dumps({"dataset": "cifar10", "seed": 2, "finished": False}))
    one_line_error(capsys, ["tables", "best", "--inputs", good, early, "--out", str(tmp_path / "s.json")],
                   r"/b: the search is not finished \(its best.json is the best so far\); resume it first .*, or leave "
                   r".*b/best.json out$")
    (tmp_path / "b" / "search.json").write_text("{")       # damaged: named as the summary, not as a best.json
    one_line_error(capsys, ["tables", "best", "--inputs", good, early, "--out", str(tmp_path / "s.json")],
                   r"b/search.json: damaged.*, or leave .*b/best.json out$")
    (tmp_path / "b" / "search.json").write_text(json.dumps({"dataset": "cifar10", "seed": 2, "finished": True}))
    assert main(["tables", "best", "--inputs", good, early, "--out", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["fitness"] == 60.0


def test_tables_best_refuses_searches_of_different_datasets(capsys, tmp_path):
    a = _best(tmp_path, "a", GOOD)
    b = _best(tmp_path, "b", {**GOOD, "fitness": 60.0, "dataset": "cifar100"})
    out = tmp_path / "best.json"
    line = one_line_error(capsys, ["tables", "best", "--inputs", a, b, "--out", str(out)],
                          r"\(dataset 'cifar10'\) and .* \(dataset 'cifar100'\) are searches of different datasets")
    assert a in line and b in line and not out.exists()
    c = _best(tmp_path, "c", {**GOOD, "seed": 2, "method": "search_nws"})   # without weight sharing
    one_line_error(capsys, ["tables", "best", "--inputs", a, c, "--out", str(out)],
                   r"\(method 'search'\) and .* \(method 'search_nws'\) are searches of different methods")
    assert not out.exists()


def test_tables_best_refuses_two_searches_of_one_seed(capsys, tmp_path):
    """As evaluate does: a file given twice, or a copy of a search, counts once."""
    a = _best(tmp_path, "a", GOOD)
    b = _best(tmp_path, "b", {**GOOD, "fitness": 60.0})
    out = tmp_path / "best.json"
    for inputs in ([a, b], [a, a]):
        line = one_line_error(capsys, ["tables", "best", "--inputs", *inputs, "--out", str(out)],
                              r"best.json: search seed 1 again \(also .*a/best.json\); give one search per seed")
        assert not out.exists() and line.count(a) == (1 if inputs[1] == b else 2)
    assert main(["tables", "best", "--inputs", a, _best(tmp_path, "c", {**GOOD, "seed": 2}), "--out", str(out)]) == 0
    damaged = _best(tmp_path, "d", {**GOOD, "seed": True})      # no seed 1 (True == 1 in Python)
    assert main(["tables", "best", "--inputs", a, damaged, "--out", str(out)]) == 0


def test_tables_best_reads_a_config_it_is_given(capsys, tmp_path):
    """A mistyped --config was ignored without a word."""
    good = _best(tmp_path, "b", GOOD)
    one_line_error(capsys, ["tables", "best", "--config", str(tmp_path / "nope.yaml"), "--inputs", good, "--out",
                            str(tmp_path / "best.json")], r"nope.yaml: no such config file")
    assert not (tmp_path / "best.json").exists()


def test_tables_best_says_a_samples_best_json_is_no_search_result(capsys, tmp_path):
    sampled = tmp_path / "sampled"
    _sample(sampled)
    capsys.readouterr()
    one_line_error(capsys, ["tables", "best", "--inputs", str(sampled / "best.json"), "--out",
                            str(tmp_path / "best.json")],
                   r"sampled/best.json: a random sample's genome \(method 'random', no fitness\), not a search's "
                   r"result")


def test_tables_best_never_writes_over_a_runs_file(capsys, tmp_path):
    """--out one of the inputs (however spelt), or in a search's, training's, sample's or
    evaluation's folder: refused, nothing changes; a selection's own file is rewritten."""
    run = tmp_path / "run"
    search(run)
    sampled = tmp_path / "sampled"
    _sample(sampled)
    capsys.readouterr()
    good = _best(tmp_path, "b", GOOD)
    before = {folder: snapshot(folder) for folder in (run, sampled, tmp_path / "b")}
    for inputs, out, match in [
        ([good], good, r"--out .* is one of the --inputs"),
        ([good], str(tmp_path / "b" / ".." / "b" / "best.json"), r"--out .* is one of the --inputs"),
        ([str(run / "best.json")], str(run / "best.json"), r"is one of the --inputs"),
        ([good], str(run / "best.json"), r"run, which holds a search \(checkpoints/, best.json, history.parquet\); "
                                         r"write the selection outside a run's folder"),
        ([good], str(run / "selected.json"), r"run, which holds a search"),
        ([good], str(run / "checkpoints" / "gen-00003.json"), r"lies in .*run, which holds a search"),
        ([good], str(sampled / "best.json"), r"sampled, which holds a sample \(best.json\)"),
    ]:
        one_line_error(capsys, ["tables", "best", "--inputs", *inputs, "--out", out], match)
    # nor prepare's summary, anywhere under the run's folder
    one_line_error(capsys, ["prepare", "--config", DEMO, "--dataset", "cifar10", "--out",
                            str(run / "checkpoints" / "gen-00003.json")],
                   r"lies in .*run, which holds a search \(.*\); write the data summary outside a run's folder")
    assert {folder: snapshot(folder) for folder in (run, sampled, tmp_path / "b")} == before
    selected = tmp_path / "search" / "cifar10" / "best.json"    # the workflow's: written again
    for _ in range(2):
        assert main(["tables", "best", "--inputs", good, "--out", str(selected)]) == 0
    assert json.loads(selected.read_text())["selection"]["chosen"] == good


def test_a_file_written_where_a_folder_is_is_refused_naming_it(capsys, tmp_path):
    from nasgep.io import atomic_write_text

    folder = tmp_path / "taken"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(IsADirectoryError) as err:
        atomic_write_text(folder, "text")
    assert err.value.filename == str(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]      # no temporary left
    good = _best(tmp_path, "b", GOOD)
    for argv in (["tables", "best", "--inputs", good, "--out", str(folder)],
                 ["prepare", "--config", DEMO, "--dataset", "cifar10", "--out", str(folder)]):
        line = one_line_error(capsys, argv, r"taken: is a folder, not a file$")
        assert f"error: {folder}: is a folder" in line
    assert sorted(p.name for p in folder.iterdir()) == ["inside"]


def test_a_file_out_that_ends_in_a_slash_is_refused_as_a_folder(capsys, tmp_path):
    """``--out results/mydata/`` (a folder, by its slash) wrote the summary to a file named
    ``results/mydata``: Path drops the slash."""
    good = _best(tmp_path, "b", GOOD)
    folder = tmp_path / "new"
    for argv, example in ((["tables", "best", "--inputs", good, "--out", f"{folder}/"], "best.json"),
                          (["prepare", "--config", DEMO, "--dataset", "cifar10", "--out", f"{folder}/"],
                           "cifar10.json")):
        one_line_error(capsys, argv, rf"--out {folder}/ names a folder; --out is the file to write .* to, e\.g\. "
                                     rf"{folder}/{example}$")
        assert not folder.exists()


def test_tables_say_a_file_is_no_folder_and_a_folder_no_file(capsys, tmp_path):
    cfg, _ = make_study(tmp_path)
    existing = tmp_path / "tables.txt"
    existing.write_text("a user's file\n")
    one_line_error(capsys, ["tables", "--config", str(cfg), "--out", str(existing)],
                   r"--out .*tables.txt is a file, not a folder")
    assert existing.read_text() == "a user's file\n"
    one_line_error(capsys, ["tables", "best", "--inputs", str(tmp_path / "results"), "--out",
                            str(tmp_path / "best.json")], r"--inputs .*results is a folder, not a file")
    run = tmp_path / "run"
    search(run)
    before = snapshot(run)
    one_line_error(capsys, ["tables", "--config", str(cfg), "--out", str(run)],
                   r"run holds a search .*; write the tables outside a run's folder")
    one_line_error(capsys, ["tables", "--config", str(cfg), "--out", str(run / "tables")],
                   r"lies in .*run, which holds a search .*; write the tables outside a run's folder")
    one_line_error(capsys, ["figures", "--config", str(cfg), "--out", str(run / "individuals")],
                   r"lies in .*run, which holds a search .*; write the figures outside a run's folder")
    assert snapshot(run) == before


def test_a_missing_data_file_is_no_changed_setting(tmp_path):
    """The workflow's `--resume --restart-if-changed` on a search whose .npz is away for a
    moment: refused naming the file, the finished search left where it is."""
    from test_bad_input import npz_config, npz_dataset

    from nasgep.config import load_config
    from nasgep.data import DataError
    from nasgep.search.evaluator import CheapEvaluator
    from nasgep.search.runner import run_search

    data = npz_dataset(tmp_path)
    config = load_config([DEMO, npz_config(tmp_path, data)], [*TINY, "search.dataset=d"])
    run = dict(dataset="d", seed=0, out_dir=tmp_path / "s0", progress=False, factory=lambda device: CheapEvaluator())
    run_search(config, **run)
    before = snapshot(tmp_path / "s0")
    data.rename(tmp_path / "away.npz")
    with pytest.raises(DataError, match=r"data\.npz: no such \.npz file"):
        run_search(config, **run, resume=True, restart_if_changed=True)
    assert snapshot(tmp_path / "s0") == before and not list((tmp_path / "s0").glob(".previous-*"))


def test_an_out_beside_a_run_or_under_a_users_model_pt_is_written(capsys, tmp_path, monkeypatch):
    """`--out ../tables` from inside a run's folder is beside the run, not in it; a project
    folder two levels up holding a model.pt of the user's own is no training; a link into a
    run's folder is that folder."""
    cfg, _ = make_study(tmp_path)
    run = tmp_path / "run"
    search(run)
    before = snapshot(run)
    monkeypatch.chdir(run)
    assert main(["tables", "--config", str(cfg), "--out", "../tables"]) == 0
    assert (tmp_path / "tables").is_dir() and snapshot(run) == before
    project = tmp_path / "project"
    project.mkdir()
    (project / "model.pt").write_bytes(b"a user's own weights")
    assert main(["tables", "--config", str(cfg), "--out", str(project / "results" / "tables")]) == 0
    assert (project / "results" / "tables").is_dir()
    (project / "metrics.json").write_text('{"loss": 1}\n')          # DVC's metrics file beside it
    monkeypatch.chdir(project)
    assert main(["sample", "--config", DEMO, *SETS, "--out", "s1"]) == 0      # runs in its own sub-folder
    assert (project / "s1" / "best.json").is_file()
    (tmp_path / "link").symlink_to(run)
    capsys.readouterr()
    one_line_error(capsys, ["tables", "--config", str(cfg), "--out", str(tmp_path / "link" / "tables")],
                   r"lies in .*run, which holds a search")
    assert snapshot(run) == before


def test_a_full_disk_is_one_line_naming_the_file_with_exit_1(capsys, tmp_path, monkeypatch):
    """Not the input's fault: exit 1, not 2; the line names the file that could not be written."""
    import errno

    from nasgep import io

    good = _best(tmp_path, "b", GOOD)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", disk_full)
    one_line_error(capsys, ["tables", "best", "--inputs", good, "--out", str(tmp_path / "selected.json")],
                   r"selected.json: No space left on device$", code=1)
    assert not (tmp_path / "selected.json").exists()


def test_no_run_and_no_drawing_starts_inside_another_runs_folder(capsys, tmp_path):
    """A run started in another's folder would be moved aside with it by a --restart, and
    `draw --out RUN/cells` replaced a search's own drawings: both refused, nothing written."""
    run, sampled = tmp_path / "run", tmp_path / "sampled"
    search(run)
    _sample(sampled)
    genome = _best(tmp_path, "g", GOOD)
    before = {folder: snapshot(folder) for folder in (run, sampled)}
    capsys.readouterr()
    one_line_error(capsys, ["draw", genome, "--out", str(run / "cells")],
                   r"lies in .*run, which holds a search .*; write the drawings outside a run's folder")
    one_line_error(capsys, ["sample", "--config", DEMO, *SETS, "--out", str(sampled / "inner")],
                   r"lies in .*sampled, which holds a sample .*; write a sample outside a run's folder")
    one_line_error(capsys, ["search", "--config", DEMO, *SETS, "--out", str(run / "deeper" / "seed0")],
                   r"lies in .*run, which holds a search .*; write a search outside a run's folder")
    one_line_error(capsys, ["train", "--genome", genome, "--config", DEMO, *SETS, "--out", str(sampled / "t")],
                   r"lies in .*sampled, which holds a sample .*; write a training outside a run's folder")
    assert {folder: snapshot(folder) for folder in (run, sampled)} == before
    assert main(["draw", genome, "--out", str(tmp_path / "cells")]) == 0      # beside the runs: drawn


def test_no_run_starts_in_the_folder_of_the_studys_mlflow_store(capsys, tmp_path, searched):
    """`nasgep search --out results/mydata` (the README's results_dir) made the study's MLflow
    store and mlartifacts/ inside the search's own folder: every other run's --out below it
    was refused as lying in a search's folder, and the search's --restart moved the store of
    all the study's runs aside with it. Refused at once, nothing made; a folder below it runs."""
    study = tmp_path / "study"
    tracked = [*SETS, "--set", "tracking.enabled=true", "--set", f"results_dir={study}"]
    genome = _best(tmp_path, "g", GOOD)
    store = r"would hold the study's MLflow store \(.*study/mlflow.db.*\), which all its runs log to; {} keeps"
    for verb, what in [(["search", "--seed", "0"], "a search"), (["sample"], "a sample"),
                       (["train", "--genome", genome], "a training")]:
        for out in (study, tmp_path):       # the store's folder, or one above it
            one_line_error(capsys, [*verb, "--config", DEMO, *tracked, "--out", str(out)], store.format(what))
    one_line_error(capsys, evaluate("--search", str(searched), *tracked[len(SETS):], "--out", str(study)),
                   store.format("an evaluation"))
    assert not study.exists()
    assert main(["sample", "--config", DEMO, *tracked, "--out", str(study / "random0")]) == 0
    assert (study / "mlflow.db").is_file() and (study / "random0" / "best.json").is_file()


def test_a_file_out_replaces_only_an_earlier_output_of_its_kind(capsys, tmp_path):
    """`prepare --out my.yaml` wrote its summary over the config it had just read, and an
    --out of the study's mlflow.db replaced the database: a file that is no earlier output
    of the verb is left alone, and so is a device or a pipe (a rename would put a plain
    file where /dev/null was)."""
    import os

    config = tmp_path / "my.yaml"
    shutil.copyfile(DEMO, config)
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"SQLite format 3\x00 a user's store")
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    good = _best(tmp_path, "b", GOOD)
    for target in (config, db):
        before = target.read_bytes()
        one_line_error(capsys, ["prepare", "--config", str(config), "--dataset", "cifar10", "--out", str(target)],
                       r"--out .* exists and is not a data summary written by nasgep; it is left as it is")
        one_line_error(capsys, ["tables", "best", "--inputs", good, "--out", str(target)],
                       r"--out .* exists and is not a selection of 'tables best' written by nasgep")
        assert target.read_bytes() == before
    one_line_error(capsys, ["tables", "best", "--inputs", good, "--out", str(pipe)],
                   r"--out .*pipe is not a plain file \(a device, a pipe or a socket\)")
    assert pipe.is_fifo()
    earlier = tmp_path / "cache" / "selection.json"   # a link to an earlier output (a DVC cache link):
    earlier.parent.mkdir()                           # the link is replaced, its target left as it is
    assert main(["tables", "best", "--inputs", good, "--out", str(earlier)]) == 0
    cached = earlier.read_bytes()
    link = tmp_path / "best.json"
    link.symlink_to(earlier)
    assert main(["tables", "best", "--inputs", good, "--out", str(link)]) == 0
    assert not link.is_symlink() and earlier.read_bytes() == cached
    summary = tmp_path / "summary.json"            # its own earlier output: written again
    for _ in range(2):
        assert main(["prepare", "--config", str(config), "--dataset", "cifar10", "--out", str(summary)]) == 0
    assert json.loads(summary.read_text())["dataset"] == "cifar10"


def test_a_file_out_that_is_a_link_to_nothing_is_refused_naming_its_target(capsys, tmp_path):
    """A dangling link (or a loop of links) as `prepare --out` or `tables best --out` was
    replaced by a plain file: it is no earlier output of nasgep (only a link to one, a DVC
    cache link, is replaced), so it is left as it is and the line names where it points."""
    good = _best(tmp_path, "b", GOOD)
    dangling = tmp_path / "summary.json"
    dangling.symlink_to(tmp_path / "gone" / "summary.json")
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    for verb, what in ((["prepare", "--config", DEMO, "--dataset", "cifar10"], "a data summary"),
                       (["tables", "best", "--inputs", good], "a selection of 'tables best'")):
        one_line_error(capsys, [*verb, "--out", str(dangling)],
                       rf"--out {dangling} is a link to {tmp_path}/gone/summary.json, which does not exist, not "
                       rf"{what} written by nasgep; the link is left as it is")
        one_line_error(capsys, [*verb, "--out", str(loop)],
                       rf"--out {loop} is a link to {loop}, which runs into a loop of links")
        assert os.readlink(dangling) == str(tmp_path / "gone" / "summary.json")
        assert os.readlink(loop) == str(loop)
    assert not (tmp_path / "gone").exists()


def test_a_loop_of_links_is_said_to_be_one(capsys, tmp_path):
    """An --out (or a folder above it) that is a loop of links was said to be a link to
    "a file which does not exist", or "cannot write the drawings there (File exists)";
    `evaluate --search LOOP` was a RuntimeError traceback."""
    from test_bad_input import GENOME, write_genome

    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    genome = write_genome(tmp_path, GENOME)
    said = rf"{loop} is a link to {loop}, which runs into a loop of links \(it leads to no file\)"
    for out in (loop, loop / "sub"):
        for argv in (["sample", "--config", DEMO, *SETS], ["draw", genome],
                     ["tables", "--config", DEMO, "--set", f"results_dir={tmp_path}"]):
            one_line_error(capsys, [*argv, "--out", str(out)], said + "; remove the link or name another path")
    one_line_error(capsys, ["prepare", "--config", DEMO, "--dataset", "cifar10", "--out", str(loop / "d.json")],
                   said)
    one_line_error(capsys, evaluate("--search", str(loop), "--out", str(tmp_path / "ev")), "--search " + said)
    assert os.readlink(loop) == str(loop)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc")
def test_a_folder_no_file_can_be_made_in_is_said_to_be_one(capsys, tmp_path):
    """`--out /proc/self` (a folder that exists, in which no file can be made) said
    "/proc/self/.lock: No such file or directory", a file the user never named."""
    for argv in (["sample", "--config", DEMO, *SETS], ["train", "--genome", _best(tmp_path, "g", GOOD),
                                                        "--config", DEMO, *SETS]):
        one_line_error(capsys, [*argv, "--out", "/proc/self"],
                       r"--out /proc/self: the folder cannot be written \(making a file in it: No such file or "
                       r"directory\); choose another --out$")


def test_a_lock_that_is_no_file_is_named_not_the_folder(capsys, tmp_path):
    """An --out whose `.lock` is a folder (made by hand, or by a tool that copied a run
    oddly) is a writable folder: the line names the lock, as before 2026-12-07, and does
    not say the folder cannot be written."""
    out = tmp_path / "out"
    (out / ".lock").mkdir(parents=True)
    for argv in (["sample", "--config", DEMO, *SETS], ["train", "--genome", _best(tmp_path, "g", GOOD),
                                                        "--config", DEMO, *SETS]):
        err = one_line_error(capsys, [*argv, "--out", str(out)],
                             rf"{out}/\.lock is a folder, not a run's lock file; remove it, or choose another "
                             r"--out$")
        assert "cannot be written" not in err
    assert (out / ".lock").is_dir()


def test_a_restart_never_moves_runs_in_sub_folders_aside(capsys, tmp_path):
    """`sample --restart --out results/search/cifar10/search` (the folder of the workflow's
    selection, whose seed folders hold the searches) moved every search into .previous-*:
    a folder with runs below it is no run's folder, --restart included."""
    study = tmp_path / "search"
    search(study / "seed0")
    _best(tmp_path, "search", GOOD)                # the selection 'tables best' writes there
    capsys.readouterr()
    before = snapshot(study)
    for verb in (["sample"], ["search"]):
        for flags in ([], ["--restart"]):
            one_line_error(capsys, [*verb, "--config", DEMO, *SETS, "--out", str(study), *flags],
                           r"search holds other runs in its sub-folders \(seed0/\); a (sample|search) keeps its "
                           r"files in a folder of its own")
    assert snapshot(study) == before


def test_a_lock_that_is_a_link_is_never_written_through(capsys, tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_text("a user's notes\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").symlink_to(victim)
    one_line_error(capsys, ["sample", "--config", DEMO, *SETS, "--out", str(out)],
                   r"out/.lock is a link, not a run's lock file; remove the link")
    assert victim.read_text() == "a user's notes\n"


def test_a_folder_where_a_run_writes_its_result_is_refused_before_any_work(capsys, tmp_path):
    """A folder named best.json in a search's folder stopped `search --resume` only when the
    generation's results were written, after its training, with the checkpoint ahead of
    search.json and history.parquet."""
    run = tmp_path / "run"
    search(run)
    (run / "best.json").unlink()
    (run / "best.json").mkdir()
    capsys.readouterr()
    before = snapshot(run)
    one_line_error(capsys, ["search", "--config", DEMO, *SETS, "--set", "search.max_generations=3", "--out",
                            str(run), "--resume"], r"run/best.json is a folder where the search writes its file")
    assert snapshot(run) == before
    (run / "best.json").rmdir()
    (run / "settings.json").rename(tmp_path / "kept.json")   # its record a folder: one line, not IsADirectoryError
    (run / "settings.json").mkdir()
    one_line_error(capsys, ["search", "--config", DEMO, *SETS, "--out", str(run), "--resume"],
                   r"run/settings.json cannot be read \(Is a directory\); restore it")
    genome = _best(tmp_path, "g", GOOD)
    (tmp_path / "t" / "metrics.json").mkdir(parents=True)
    one_line_error(capsys, ["train", "--genome", genome, "--config", DEMO, *SETS, "--out", str(tmp_path / "t")],
                   r"t/metrics.json is a folder where the training writes its file")


def test_prepare_out_dash_prints_the_summary(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["prepare", "--config", DEMO, "--dataset", "cifar10", "--out", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"] == "cifar10"
    assert list(tmp_path.iterdir()) == []       # no file named '-'


def _not_writable(monkeypatch, module, *denied: Path) -> None:
    """``os.access`` in ``module`` answers no for writing ``denied`` (this suite runs as root
    on CI, where a chmod would not stop a write)."""
    real = module.os.access

    def access(path, mode, *args, **kwargs):
        if mode & module.os.W_OK and Path(path) in denied:
            return False
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(module.os, "access", access)


@pytest.mark.parametrize("argv", [["track", "init"],
                                  ["search", *SETS, "--set", "tracking.enabled=true", "--out", "OUT"]])
def test_a_tracking_store_this_user_cannot_write_is_one_line_at_once(capsys, tmp_path, monkeypatch, argv):
    """A shared, read-only results folder: MLflow retried the store for close to two minutes,
    printing warnings, before a search or `track init` failed; now nothing starts."""
    from nasgep import tracking

    results = tmp_path / "results"
    results.mkdir()
    _not_writable(monkeypatch, tracking, results)
    argv = [a.replace("OUT", str(tmp_path / "s0")) for a in argv]
    argv[len(argv) if argv[0] == "track" else 1:1] = ["--config", DEMO, "--set", f"results_dir={results}"]
    one_line_error(capsys, argv, rf"tracking.uri 'sqlite:///.*': cannot write {re.escape(str(results))} "
                                 r"\(read-only, or not yours\)")
    assert list(results.iterdir()) == [] and not (tmp_path / "s0").exists()


def test_a_folder_this_user_cannot_write_is_named_not_the_hidden_temporary(capsys, tmp_path, monkeypatch):
    import errno

    from nasgep import io

    def refused(path, *args, **kwargs):       # what open() says in a read-only folder
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(io, "open", refused, raising=False)
    one_line_error(capsys, ["prepare", "--config", DEMO, "--dataset", "cifar10", "--out", str(tmp_path / "p.json")],
                   r"p.json: Permission denied$")


@pytest.mark.parametrize("verb", ["draw", "tables", "figures"])
def test_tables_figures_and_drawings_replace_only_files_nasgep_wrote(capsys, tmp_path, verb):
    """`draw`, `tables` and `figures` wrote over a user's normal.png, table1.md or
    search_curves_cifar10.svg in their --out without a word (found by a CLI fuzz)."""
    cfg, _ = make_study(tmp_path)
    argv = {"draw": ["draw", str(ROOT / "examples" / "hand_genome.json")],
            "tables": ["tables", "--config", str(cfg)], "figures": ["figures", "--config", str(cfg)]}[verb]
    mine = {"draw": "normal.png", "tables": "table1.md", "figures": "search_curves_cifar10.svg"}[verb]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / mine).write_text("the user's own\n")
    (docs / "notes.txt").write_text("not in the way\n")
    one_line_error(capsys, [*argv, "--out", str(docs)], rf"holds files nasgep did not write there.*\({mine}\)")
    assert (docs / mine).read_text() == "the user's own\n" and sorted(os.listdir(docs)) == sorted([mine, "notes.txt"])
    # a file of another name is left alone, and is not in the way
    (docs / mine).unlink()
    assert main([*argv, "--out", str(docs)]) == 0
    assert (docs / "notes.txt").read_text() == "not in the way\n" and (docs / mine).exists()
    assert not [p for p in docs.iterdir() if p.name.startswith(".nasgep-writing")]
    # its own earlier outputs it replaces (a second run, a DVC cache link to one), and says
    # so of an output the user edited since
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert mine in written
    cached = tmp_path / "cache"
    (out / mine).rename(cached)
    (out / mine).symlink_to(cached)
    assert main([*argv, "--out", str(out)]) == 0
    capsys.readouterr()
    with (out / mine).open("a") as f:
        f.write("my note\n")
    one_line_error(capsys, [*argv, "--out", str(out)], rf"or that changed since \({mine}\)")
    assert (out / mine).read_bytes().endswith(b"my note\n")


def test_figures_refuse_a_users_file_before_drawing_anything(monkeypatch, capsys, tmp_path):
    """The names of the figures are known from the study: a user's file of one of them is
    refused at once, not after minutes of drawing every figure."""
    from nasgep.report import figures

    cfg, _ = make_study(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ablation.png").write_text("the user's own\n")

    def drawn(*args, **kwargs):
        raise AssertionError("drew before checking the names")

    monkeypatch.setattr(figures, "write_figures", drawn)
    one_line_error(capsys, ["figures", "--config", str(cfg), "--out", str(docs)],
                   r"holds files nasgep did not write there.*\(ablation.png\)")
    assert (docs / "ablation.png").read_text() == "the user's own\n"


def _write_abc(version: str):
    """A verb's write callback: a.md, b.md and c.md holding ``version``."""
    def write(folder: Path) -> list[Path]:
        for name in ("a.md", "b.md", "c.md"):
            (folder / name).write_text(version)
        return [folder / n for n in ("a.md", "b.md", "c.md")]
    return write


def test_outputs_interrupted_between_moves_stay_nasgeps(tmp_path, monkeypatch):
    """Found by review: an interruption after the first of three moves left a new a.md
    that was not in the record, and every later run refused the folder as the user's."""
    out = tmp_path / "o"
    outdir.write_outputs(out, "the tables", _write_abc("v1"))
    real, moves = os.replace, []

    def replace(src, dst):
        moves.append(dst)
        if len(moves) == 3:         # the record (both contents), a.md, then b.md
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(outdir.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        outdir.write_outputs(out, "the tables", _write_abc("v2"))
    monkeypatch.setattr(outdir.os, "replace", real)
    assert {n: (out / n).read_text() for n in ("a.md", "b.md", "c.md")} == {"a.md": "v2", "b.md": "v1", "c.md": "v1"}
    assert not [p for p in out.iterdir() if p.name.startswith(".nasgep-writing")]
    outdir.write_outputs(out, "the tables", _write_abc("v3"))          # not refused: each file is nasgep's
    assert {(out / n).read_text() for n in ("a.md", "b.md", "c.md")} == {"v3"}
    record = json.loads((out / outdir.OUTPUTS_RECORD).read_text())["files"]
    assert sorted(record) == ["a.md", "b.md", "c.md"] and all(isinstance(d, str) for d in record.values())


def test_outputs_are_not_moved_when_the_record_cannot_be_written(tmp_path):
    out = tmp_path / "o"
    (out / outdir.OUTPUTS_RECORD).mkdir(parents=True)
    with pytest.raises(outdir.FolderError, match=r"\.nasgep-outputs\.json: not a file"):
        outdir.write_outputs(out, "the tables", _write_abc("v2"))
    assert sorted(os.listdir(out)) == [outdir.OUTPUTS_RECORD]      # no output moved in, none recorded


def test_a_pipe_or_device_named_like_an_output_is_refused_not_read(tmp_path):
    """A FIFO named normal.svg (or a link to /dev/zero) made `nasgep draw` hang reading it."""
    import subprocess
    import sys

    out = tmp_path / "d"
    out.mkdir()
    (tmp_path / "s").mkdir()
    os.mkfifo(out / "normal.svg")
    (out / "table1.md").symlink_to("/dev/zero")
    (out / outdir.OUTPUTS_RECORD).write_text(json.dumps({"files": {"/dev/zero": "x", "../x": "y"}}))
    for argv in (["draw", str(ROOT / "examples" / "hand_genome.json")],
                 ["tables", "--config", str(make_study(tmp_path / "s")[0])]):
        run = subprocess.run([sys.executable, "-m", "nasgep", *argv, "--out", str(out)], capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
        assert "holds files nasgep did not write there" in run.stderr.strip().splitlines()[-1]


def test_a_refused_verb_leaves_no_new_folder_and_killed_writers_leave_nothing_for_long(tmp_path):
    """A refused `tables` into new/deep/t2 left the empty folders behind; a killed writer's
    staging folder stayed for ever (and DVC, tracking the study, would have cached it)."""
    out = tmp_path / "new" / "deep" / "t"

    def fail(folder: Path):
        raise outdir.FolderError("refused")

    with pytest.raises(outdir.FolderError):
        outdir.write_outputs(out, "the tables", fail)
    assert not (tmp_path / "new").exists()
    out.mkdir(parents=True)
    dead = out / ".nasgep-writing-999999999-abc"        # no such PID
    alive = out / f".nasgep-writing-{os.getppid()}-abc"
    for stage in (dead, alive):
        stage.mkdir()
        (stage / "a.md").write_text("half")
    outdir.write_outputs(out, "the tables", _write_abc("v1"))
    assert not dead.exists() and alive.exists()        # another live writer's is left alone


def test_two_writers_into_one_folder_take_turns(tmp_path):
    """Two `nasgep tables` into one --out could each rewrite the record from what they
    read, and one output was then refused for ever."""
    import fcntl
    import threading

    out = tmp_path / "o"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)                       # another writer holds the folder
    writer = threading.Thread(target=outdir.write_outputs, args=(out, "the tables", _write_abc("v1")))
    writer.start()
    writer.join(0.5)
    assert writer.is_alive() and not (out / "a.md").exists()
    os.close(fd)
    writer.join(30)
    assert not writer.is_alive() and (out / "a.md").read_text() == "v1"


def test_a_restart_that_cannot_move_a_file_moves_nothing(tmp_path, monkeypatch):
    """An immutable history.parquet (chattr +i) stopped --restart halfway: settings.json was
    in .previous-<time>/, the rest not, and --resume then asked for a settings.json."""
    from nasgep import outdir

    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    for name in ("settings.json", "best.json", "checkpoints/gen0.json", "history.parquet"):
        (out / name).write_text(name)
    before = snapshot(out)
    real = os.replace

    def replace(src, dst):
        if Path(src).name == "history.parquet":
            raise PermissionError(1, "Operation not permitted", str(src))
        real(src, dst)

    monkeypatch.setattr(outdir.os, "replace", replace)
    with pytest.raises(outdir.FolderError, match=r"history.parquet: cannot be moved aside \(Operation not "
                                                 r"permitted\); nothing was moved"):
        outdir.move_aside(out, [out / n for n in ("settings.json", "checkpoints", "best.json", "history.parquet")])
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == sorted(
        ["settings.json", "best.json", "checkpoints", "history.parquet"])
