"""Tables I-III and figures from synthetic results written in the documented formats
(docs/architecture.md: best.json, history.parquet, metrics.json)."""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest

from nasgep.cli import main
from nasgep.config import load_config
from nasgep.report import LAYOUT, TABLE_FORMATS, ResultFileError, Study, select_best
from nasgep.report import reference as ref
from nasgep.report.tables import build_tables, fmt, relative_improvement

SEEDS = [0, 1, 2]
# test error (%) per ablation and seed; params per ablation
ERRORS = {
    "cutout": [3.5, 3.7, 3.6],
    "cutout_aa": [2.8, 2.9, 3.0],
    "cutout_dp": [3.2, 3.3, 3.1],
    "cutout_dp_aa": [3.0, 2.9, 3.1],
    "cutout_aa_nws": [2.9, 3.1, 3.0],
    "cutout_aa_random": [3.1, 3.4, 3.2],
}
PARAMS = {name: [3_600_000 + 10_000 * s for s in SEEDS] for name in ERRORS}
CIFAR100_ERRORS = [18.5, 19.0, 18.9]


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def metrics(error: float, params: int, dataset: str, variant: str, seed: int,
            top5: float | None = None) -> dict:
    return {"test_error": error, "test_top5_error": top5, "test_accuracy": 100.0 - error,
            "params": params, "epochs": 3, "seconds": 1.0, "dataset": dataset,
            "variant": variant, "seed": seed}


def history(seed: int, generations: int = 4) -> pd.DataFrame:
    rows = []
    for g in range(generations):
        for i in range(3):
            failed = i == 2 and g == 1
            rows.append({"generation": g, "id": f"n{g}-{i}", "parents": "", "normal": "add | g1 g2",
                         "reduction": "cat | g1 g2", "reduction_id": "r0", "epochs": g + 1,
                         "epochs_this_generation": 1, "fitness": 0.0 if failed else 50.0 + 5 * g + i + seed,
                         "params": 100_000, "inherited": 0, "seconds": 3600.0,
                         "failure": "oom" if failed else None})
    return pd.DataFrame(rows)


@pytest.fixture
def study_dir(tmp_path: Path) -> tuple[Path, dict]:
    return make_study(tmp_path)


def make_study(tmp_path: Path) -> tuple[Path, dict]:
    """A results folder with every Table I/II training for three seeds, histories, and a
    config (the paper's defaults, three seeds, transfer off)."""
    root = tmp_path / "results"
    cfg = tmp_path / "study.yaml"
    cfg.write_text(f"name: synth\nresults_dir: {root}\nseeds: {SEEDS}\n"
                   "datasets:\n  cifar10: {kind: cifar10, label: CIFAR-10}\n"
                   "  cifar100: {kind: cifar100, label: CIFAR-100}\n")
    config = load_config(cfg)
    study = Study(config)
    for variant, errors in ERRORS.items():
        for seed, error in zip(SEEDS, errors):
            write_json(study.train_dir("cifar10", variant, seed) / "metrics.json",
                       metrics(error, PARAMS[variant][seed], "cifar10", variant, seed))
    for seed, error in zip(SEEDS, CIFAR100_ERRORS):
        write_json(study.train_dir("cifar100", "cutout_aa", seed) / "metrics.json",
                   metrics(error, 3_500_000, "cifar100", "cutout_aa", seed))
    for dataset in ("cifar10", "cifar100"):
        for seed in SEEDS:
            d = study.search_dir(dataset, "search", seed)
            d.mkdir(parents=True, exist_ok=True)
            history(seed).to_parquet(d / "history.parquet")
    for seed in SEEDS[:2]:   # the no-weight-sharing search has only two seeds so far
        d = study.search_dir("cifar10", "search_nws", seed)
        d.mkdir(parents=True, exist_ok=True)
        history(seed, 3).to_parquet(d / "history.parquet")
    return cfg, config


def by_source(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rows of a data (``source``) or display (``Source``) frame with that source."""
    column = "source" if "source" in frame.columns else "Source"
    return frame[frame[column] == source]


def test_table1_mean_std_and_ri(study_dir):
    _, config = study_dir
    t1 = build_tables(Study(config))[0]
    measured = by_source(t1.data, "measured").set_index("ablation")
    for variant, errors in ERRORS.items():
        assert measured.loc[variant, "test_error"] == pytest.approx(statistics.mean(errors))
        assert measured.loc[variant, "test_error_std"] == pytest.approx(statistics.stdev(errors))
        assert measured.loc[variant, "params"] == pytest.approx(statistics.mean(PARAMS[variant]))
        assert measured.loc[variant, "runs"] == 3
    acc_searched = statistics.mean(100 - e for e in ERRORS["cutout_aa"])
    acc_random = statistics.mean(100 - e for e in ERRORS["cutout_aa_random"])
    expected_ri = 100 * (acc_searched - acc_random) / acc_random
    assert measured.loc["cutout_aa_random", "ri"] == pytest.approx(expected_ri)
    assert measured.loc["cutout_aa_random", "ri_versus"] == "cutout_aa"
    assert math.isnan(measured.loc["cutout", "ri"])
    # the formatted table shows mean ± std with the paper's precision
    shown = t1.display.set_index(["Configuration", "Source"])
    cell = shown.loc[("CutOut + AA", "measured"), "Test error (%)"]
    assert cell == fmt(statistics.mean(ERRORS["cutout_aa"]), statistics.stdev(ERRORS["cutout_aa"]))
    assert cell == "2.90 ± 0.10"
    assert shown.loc[("CutOut + AA", "measured"), "Params"] == "3.61M ± 0.01"
    assert shown.loc[("CutOut + AA + Random Sampling", "measured"), "RI"] == f"{expected_ri:.4f}"
    # beside RI: its 95 % bootstrap interval and the one-sided permutation p over the seeds
    from nasgep.report.searchphase import permutation_p, ri_interval

    searched = [100 - e for e in ERRORS["cutout_aa"]]
    random = [100 - e for e in ERRORS["cutout_aa_random"]]
    _, low, high = ri_interval(searched, random)
    row = measured.loc["cutout_aa_random"]
    assert (row["ri_ci_low"], row["ri_ci_high"]) == pytest.approx((low, high))
    assert row["ri_ci_low"] <= expected_ri <= row["ri_ci_high"]
    assert row["ri_p"] == pytest.approx(permutation_p(searched, random))
    assert shown.loc[("CutOut + AA + Random Sampling", "measured"), "RI 95% CI"] == f"[{low:.2f}, {high:.2f}]"
    assert shown.loc[("CutOut + AA", "measured"), "p"] == ""


def test_relative_improvement_matches_the_paper():
    # paper: CutOut + AA 2.82 % vs random 3.12 % -> RI = 0.3098 (section IV-B1)
    assert relative_improvement(100 - 2.82, 100 - 3.12) == pytest.approx(0.3097, abs=1e-3)


def test_reference_rows_are_labelled_and_never_measured(study_dir):
    _, config = study_dir
    t1, t2, t3 = build_tables(Study(config))
    for table in (t1, t2, t3):
        assert set(table.data["source"]) <= {"measured", ref.LABEL}
        assert set(table.display["Source"]) <= {"measured", ref.LABEL}
    published = by_source(t1.data, ref.LABEL).set_index("ablation")
    assert len(published) == 6
    assert published.loc["cutout_aa", "test_error"] == pytest.approx(2.82)
    assert published.loc["cutout_aa", "test_error_std"] == pytest.approx(0.13)
    assert published.loc["cutout_aa_nws", "params"] == pytest.approx(3.48e6)
    assert published.loc["cutout_aa_random", "ri"] == pytest.approx(0.3098)
    # Table II: the paper's rows (NASGEP 2.82 ± 0.13 / 18.83 ± 0.39) beside the measured one
    rows2 = t2.display.set_index(["Method", "Source"])
    assert rows2.loc[("NASGEP", ref.LABEL), "CIFAR-10 test error (%)"] == "2.82 ± 0.13"
    assert rows2.loc[("NASGEP", ref.LABEL), "CIFAR-100 test error (%)"] == "18.83 ± 0.39"
    assert rows2.loc[("DARTS [5]", ref.LABEL), "CIFAR-10 params"] == "3.3M"
    measured2 = rows2.loc[("NASGEP (this study)", "measured")]
    assert measured2["CIFAR-10 test error (%)"] == fmt(statistics.mean(ERRORS["cutout_aa"]),
                                                       statistics.stdev(ERRORS["cutout_aa"]))
    assert measured2["CIFAR-100 test error (%)"] == fmt(statistics.mean(CIFAR100_ERRORS),
                                                        statistics.stdev(CIFAR100_ERRORS))
    # GPU days: 4 generations x 3 candidates x 3600 s = 0.5 day per search, all seeds alike,
    # beside the candidate epochs: 4 generations x 3 candidates x 1 epoch
    assert measured2["GPU days"] == "0.50 ± 0.00 (12 ± 0 epochs)"
    row2 = by_source(t2.data, "measured").set_index("method").loc["NASGEP (this study)"]
    assert row2["search_epochs"] == 12 and row2["gpu_days"] == pytest.approx(0.5)
    assert len(by_source(t2.data, ref.LABEL)) == len(ref.TABLE2)
    assert len(by_source(t3.data, ref.LABEL)) == len(ref.TABLE3)


def test_table2_counts_a_survivors_training_time_once(study_dir):
    """A history row's seconds is the individual's training time so far: a survivor's row in
    each generation repeats its earlier time. Table II summed the rows, counting a survivor's
    first epochs once a generation (a real 2-generation demo search: 58.0 s against 44.7 s)."""
    _, config = study_dir
    study = Study(config)
    for dataset in ("cifar10", "cifar100"):
        for seed in SEEDS:
            frame = history(seed)          # 4 generations x 3 individuals, 3600 s each
            survivor = frame["id"] == "n1-0"
            again = frame[survivor].assign(generation=2, epochs=3, seconds=7200.0)    # one more hour
            frame = pd.concat([frame, again], ignore_index=True)
            frame.to_parquet(study.search_dir(dataset, "search", seed) / "history.parquet")
    row = by_source(build_tables(study)[1].data, "measured").set_index("method").loc["NASGEP (this study)"]
    assert row["gpu_days"] == pytest.approx(13 * 3600 / 86400)     # 12 individuals + the survivor's second hour
    assert row["search_epochs"] == 13


def test_a_search_that_trained_nothing_costs_nothing_in_table2(study_dir):
    # a search that stopped before its first candidate writes an empty history; it was
    # averaged in as "0.00 (0 epochs)", halving the cost shown for the others
    # (2026-12-07) only when its search.json says it trained nothing: else the file is damaged
    _, config = study_dir
    study = Study(config)
    for dataset in ("cifar10", "cifar100"):
        folder = study.search_dir(dataset, "search", 0)
        history(0).iloc[:0].to_parquet(folder / "history.parquet")
        write_json(folder / "search.json", {"dataset": dataset, "seed": 0, "method": "search", "finished": True,
                                            "generations": 0, "epochs": 0, "stop_reason": "budget"})
    measured = build_tables(study)[1].display.set_index(["Method", "Source"]).loc[("NASGEP (this study)", "measured")]
    assert measured["GPU days"] == "0.50 ± 0.00 (12 ± 0 epochs)"
    assert by_source(build_tables(study)[1].data, "measured").set_index("method").loc[
        "NASGEP (this study)", "search_epochs"] == 12
    write_json(folder / "search.json", {"dataset": "cifar100", "seed": 0, "method": "search", "finished": True,
                                        "generations": 4, "epochs": 12, "stop_reason": "max_generations"})
    with pytest.raises(ResultFileError, match=r"seed0/history.parquet: no rows, but .*seed0/search.json records 12 "
                                              r"epochs trained \(damaged"):
        build_tables(study)



def _absurd_epochs(frame: pd.DataFrame) -> None:
    frame.loc[[0, 1], "epochs_this_generation"] = 2 ** 62     # 12 - 2 + 2^63: int64 wraps to a negative sum


@pytest.mark.parametrize("change, match", [
    (lambda f: f.__setitem__("generation", f["generation"].where(f.index != 5, 10 ** 15)),
     r"generation 1000000000000000, but the search.json beside it records 4 generations \(0 to 3\) \(damaged"),
    (_absurd_epochs, r"its epochs_this_generation add up to 9,223,372,036,854,775,818, but the search.json beside it "
                     r"records 12 epochs trained \(damaged"),
    (lambda f: f.__setitem__("epochs", f["epochs"].where(f.index != 5, 10 ** 15)),
     r"an individual of 1,000,000,000,000,000 epochs, more than the 12 the search.json beside it records"),
])
def test_a_history_holding_what_its_search_never_ran_is_refused(study_dir, change, match):
    """Finite numbers a search cannot have written, against its search.json: a generation
    of 10^15 stretched the figure's axis, two rows of 2^62 epochs made Table II's cost
    negative; all accepted without a word (2026-12-07). (An individual's seconds have no
    bound there: test_resume's search resumed on jobs trained before it was killed.)"""
    _, config = study_dir
    study = Study(config)
    for seed in SEEDS:        # history(): 4 generations of 3 candidates, an epoch each, 3600 s each at most
        write_json(study.search_dir("cifar10", "search", seed) / "search.json",
                   {"dataset": "cifar10", "seed": seed, "method": "search", "finished": True, "generations": 4,
                    "epochs": 12, "elapsed_seconds": 15000.0, "stop_reason": "max_generations"})
    build_tables(study)       # as written: accepted
    path = study.search_dir("cifar10", "search", SEEDS[1]) / "history.parquet"
    frame = pd.read_parquet(path)
    change(frame)
    frame.to_parquet(path)
    with pytest.raises(ResultFileError, match=match):
        build_tables(study)


def test_table3_marks_the_transfer_not_run_when_unconfigured(study_dir):
    _, config = study_dir
    t3 = build_tables(Study(config))[2]
    row = by_source(t3.display, "measured").iloc[0]
    assert row["Top-1 error (%)"] == "not run"
    assert "transfer.dataset is null" in row["Note"]
    assert by_source(t3.data, "measured").iloc[0]["status"] == "not run"
    published = by_source(t3.display, ref.LABEL).set_index("Method")
    assert published.loc["NASGEP", "Top-1 error (%)"] == "29.51"
    assert published.loc["NASGEP", "Top-5 error (%)"] == "10.37"


def test_table3_measured_transfer(tmp_path, study_dir):
    cfg, _ = study_dir
    extra = tmp_path / "transfer.yaml"
    extra.write_text("datasets:\n  imagenet: {kind: folder, label: ImageNet, path: /nowhere}\n"
                     "transfer: {dataset: imagenet}\n")
    config = load_config([cfg, extra])
    study = Study(config)
    write_json(study.transfer_dir("imagenet") / "metrics.json",
               metrics(30.25, 4_200_000, "imagenet", "cutout_aa", 0, top5=11.5))
    t3 = build_tables(study)[2]
    row = by_source(t3.display, "measured").iloc[0]
    assert (row["Top-1 error (%)"], row["Top-5 error (%)"], row["Params"]) == ("30.25", "11.50", "4.20M")
    assert by_source(t3.data, "measured").iloc[0]["top5_error"] == pytest.approx(11.5)


def test_missing_runs_are_marked_not_invented(tmp_path, study_dir):
    cfg, config = study_dir
    study = Study(config)
    (study.train_dir("cifar10", "cutout_dp", 2) / "metrics.json").unlink()
    for seed in SEEDS:
        (study.train_dir("cifar10", "cutout", seed) / "metrics.json").unlink()
    t1 = build_tables(study)[0]
    measured = by_source(t1.data, "measured").set_index("ablation")
    assert measured.loc["cutout_dp", "runs"] == 2
    assert measured.loc["cutout_dp", "test_error"] == pytest.approx(statistics.mean(ERRORS["cutout_dp"][:2]))
    assert measured.loc["cutout", "runs"] == 0 and math.isnan(measured.loc["cutout", "test_error"])
    shown = by_source(t1.display, "measured").set_index("Configuration")
    assert shown.loc["CutOut only", "Test error (%)"] == "-"
    assert shown.loc["CutOut only", "Note"] == "not run yet"
    assert shown.loc["CutOut + Drop-Path", "Note"] == "2 of 3 runs"


def test_tables_command_writes_every_format(tmp_path, study_dir, capsys):
    cfg, _ = study_dir
    out = tmp_path / "tables"
    assert main(["tables", "--config", str(cfg), "--out", str(out)]) == 0
    for name in ("table1", "table2", "table3"):
        for ext in TABLE_FORMATS:
            assert (out / f"{name}.{ext}").stat().st_size > 0
    md = (out / "table1.md").read_text()
    assert "2.90 ± 0.10" in md and ref.LABEL in md
    tex = (out / "table1.tex").read_text()
    assert r"2.90 $\pm$ 0.10" in tex and r"\begin{table}" in tex and r"\toprule" in tex
    assert "2.90 ± 0.10" in (out / "table1.html").read_text()
    csv = pd.read_csv(out / "table1.csv")
    assert {"measured", ref.LABEL} == set(csv["source"])
    assert "not run" in (out / "table3.md").read_text()


def test_tables_and_figures_refuse_an_unfinished_search(tmp_path, study_dir, capsys):
    """Table II would count part of a search's cost, and the curves part of its run, as the
    whole; found when `snakemake --touch` marked a killed search done (it no longer can)."""
    cfg, config = study_dir
    folder = Study(config).search_dir("cifar100", "search", SEEDS[1])
    write_json(folder / "search.json", {"dataset": "cifar100", "method": "search", "seed": SEEDS[1],
                                        "finished": False})
    for verb in ("tables", "figures"):
        assert main([verb, "--config", str(cfg), "--out", str(tmp_path / verb)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines == [f"nasgep {verb}: error: {folder}: the search is not finished (its best.json is the best so "
                         "far); resume it first ('nasgep search' with the same config and --out)"]
        assert not (tmp_path / verb).exists()
    write_json(folder / "search.json", {"dataset": "cifar100", "method": "search", "seed": SEEDS[1],
                                        "finished": True})
    assert main(["tables", "--config", str(cfg), "--out", str(tmp_path / "tables")]) == 0


def test_tables_command_needs_the_results_folder(tmp_path, capsys):
    cfg = tmp_path / "empty.yaml"
    cfg.write_text(f"results_dir: {tmp_path / 'nothing'}\n")
    assert main(["tables", "--config", str(cfg), "--out", str(tmp_path / "t")]) == 2
    assert "does not exist" in capsys.readouterr().err


GENOME = json.loads((Path(__file__).parents[1] / "examples" / "hand_genome.json").read_text())


def test_select_best_by_search_fitness(tmp_path, capsys):
    paths = []
    for seed, fitness in zip(SEEDS, (71.0, 74.5, 74.5)):
        p = tmp_path / f"seed{seed}" / "best.json"
        write_json(p, {"genome": GENOME, "fitness": fitness, "params": 1,
                       "dataset": "cifar10", "seed": seed, "method": "search"})
        paths.append(p)
    best = select_best(paths)
    assert best["seed"] == 1 and best["selection"]["chosen"] == str(paths[1])   # first of the tie
    out = tmp_path / "best.json"
    assert main(["tables", "best", "--inputs", *map(str, paths), "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["seed"] == 1 and written["genome"] == GENOME
    assert len(written["selection"]["candidates"]) == 3
    assert main(["tables", "best", "--inputs", str(tmp_path / "missing.json"), "--out", str(out)]) == 2


def record_search(config: dict, folder: Path, dataset: str, seed: int, *overrides: str) -> None:
    """The settings.json a search of ``config`` (with ``overrides``) records in ``folder``."""
    from nasgep import outdir
    from nasgep.config import deep_merge, parse_override, validate
    from nasgep.search.runner import result_settings

    for text in overrides:
        config = validate(deep_merge(config, parse_override(text)), "test")
    folder.mkdir(parents=True, exist_ok=True)
    outdir.record(folder, result_settings(config, dataset, seed), "search")


def test_runs_made_under_other_settings_are_refused_without_snakemakes_records(tmp_path, study_dir, capsys):
    """Snakemake reruns a search or training when the config changes only while its job
    records are there. With them lost (another working directory, --cleanup-metadata), a
    search.lr change left the old searches in place, a seed added under the new lr was
    chosen from beside them, and the tables averaged them as one method, without a word."""
    cfg, config = study_dir
    study = Study(config)
    for seed in SEEDS:
        record_search(config, study.search_dir("cifar10", "search", seed), "cifar10", seed)
        record_search(config, study.search_dir("cifar100", "search", seed), "cifar100", seed)
    for seed in SEEDS[:2]:
        record_search(config, study.search_dir("cifar10", "search_nws", seed), "cifar10", seed,
                      "search.weight_sharing=false")
    out = tmp_path / "tables"
    assert main(["tables", "--config", str(cfg), "--out", str(out)]) == 0    # the records agree with the config
    changed = tmp_path / "lr.yaml"
    changed.write_text("search: {lr: 0.05}\n")
    for verb in ("tables", "figures"):
        assert main([verb, "--config", str(cfg), "--config", str(changed), "--out", str(tmp_path / verb)]) == 2
        err = capsys.readouterr().err
        assert ("seed0 was searched with other settings than the config's (search.lr differs); rerun it with "
                "this config") in err
    # a seed searched under the new lr beside the old ones: never chosen from with them
    record_search(config, study.search_dir("cifar10", "search", 2), "cifar10", 2, "search.lr=0.05")
    paths = []
    for seed in SEEDS:
        path = study.search_dir("cifar10", "search", seed) / "best.json"
        write_json(path, {"genome": GENOME, "fitness": 70.0 + seed, "params": 1, "dataset": "cifar10",
                          "seed": seed, "method": "search"})
        paths.append(str(path))
    assert main(["tables", "best", "--inputs", *paths, "--out", str(tmp_path / "best.json")]) == 2
    assert "seed2 and " in (err := capsys.readouterr().err) and "are searches with different settings " \
        "(search.lr differs)" in err
    assert not (tmp_path / "best.json").exists()
    # trainings: a seed trained with another schedule is not averaged into the row
    for seed in SEEDS:
        lr = 0.05 if seed == 2 else 0.025
        (study.train_dir("cifar10", "cutout", seed) / "settings.json").write_text(json.dumps(
            {"kind": "training", "settings": {"seed": seed, "genome": {"seed": seed}, "train": {"lr": lr}}}))
    with pytest.raises(ResultFileError, match=r"seed2 was trained with other settings than .*seed0 "
                                              r"\(train.lr differs\)"):
        list(study.metrics("cifar10", "cutout"))


def test_trainings_made_under_another_schedule_are_refused_by_the_tables(tmp_path, study_dir, capsys):
    """As for searches: with Snakemake's records lost, a train.lr change left every training
    in place, and Table I showed the old trainings under the new config without a word."""
    from nasgep import outdir
    from nasgep.fulltrain import expected_settings

    cfg, config = study_dir
    study = Study(config)
    for dataset, variant in study.trainings():
        for seed in SEEDS:
            settings = {"genome": {"seed": seed}, **expected_settings(config, dataset, variant, seed)}
            outdir.record(study.train_dir(dataset, variant, seed), settings, "training")
    out = tmp_path / "tables"
    assert main(["tables", "--config", str(cfg), "--out", str(out)]) == 0    # the records agree with the config
    changed = tmp_path / "lr.yaml"
    changed.write_text("train: {lr: 0.05}\n")
    assert main(["tables", "--config", str(cfg), "--config", str(changed), "--out", str(tmp_path / "t2")]) == 2
    err = capsys.readouterr().err
    assert "seed0 was trained with other settings than the config's (train.lr differs); rerun it" in err, err
    # tested on other test images (a training goes on after such a change, and tests again;
    # here the data moved to new test images while Snakemake's records were lost): its
    # metrics are not those of the config's test set
    dataset, variant = next(iter(study.trainings()))
    study = Study(config)
    study._train_files[dataset] = ({"sha256": "new"}, {"sha256": "t"})    # the files listed now
    for seed in SEEDS:
        old = ({"sha256": "old"}, {"sha256": "t"})                                  # the files it was tested on
        outdir.record(study.train_dir(dataset, variant, seed),
                      {"genome": {"seed": seed}, **expected_settings(config, dataset, variant, seed, files=old)},
                      "training")
    with pytest.raises(ResultFileError, match=r"seed0 was tested on other test images than the dataset now "
                                              r"holds; test it again, its weights kept: delete .*seed0/"
                                              r"\.workflow-done and rerun the workflow"):
        list(study.metrics(dataset, variant))


def test_seeds_recorded_by_two_nasgep_versions_are_alike(tmp_path):
    """A seed trained before 2026-12-07 records data.path and no train_files; one trained
    after records train_files and no path. That is no difference between them."""
    from nasgep import outdir

    old = {"seed": 0, "data": {"kind": "folder", "path": "/data/a"}, "data_files": {"sha256": "x"},
           "train": {"lr": 0.025}}
    new = {"seed": 1, "data": {"kind": "folder"}, "data_files": {"sha256": "x"}, "train_files": {"sha256": "y"},
           "train": {"lr": 0.025}}
    for k, settings in enumerate((old, new, {**new, "seed": 2, "train": {"lr": 0.05}})):
        outdir.record(tmp_path / f"s{k}", settings, "training")
    assert outdir.unlike_runs([tmp_path / "s0", tmp_path / "s1"]) is None
    assert outdir.unlike_runs([tmp_path / "s1", tmp_path / "s0"]) is None
    assert outdir.unlike_runs([tmp_path / "s0", tmp_path / "s1", tmp_path / "s2"]) == \
        (tmp_path / "s0", tmp_path / "s2", ["train.lr"])
    # a seed tested on other test images (its training images the same) is no seed of that row
    outdir.record(tmp_path / "s3", {**new, "seed": 3, "data_files": {"sha256": "z"}}, "training")
    assert outdir.unlike_runs([tmp_path / "s1", tmp_path / "s3"]) == \
        (tmp_path / "s1", tmp_path / "s3", ["data_files (the test images)"])


def test_table2_notes_searches_that_ran_past_a_lowered_limit(tmp_path, study_dir):
    """A search keeps the generations it ran when max_generations is lowered after it;
    Table II then averaged costs of other budgets without a mark."""
    cfg, config = study_dir
    study = Study(config)
    for seed, generations in zip(SEEDS, (2, 2, 1)):
        folder = study.search_dir("cifar10", "search", seed)
        history(seed, generations).to_parquet(folder / "history.parquet")     # 3 candidate epochs a generation
        write_json(folder / "search.json",
                   {"dataset": "cifar10", "seed": seed, "method": "search", "generations": generations,
                    "epochs": 3 * generations, "finished": True, "stop_reason": "max_generations"})
    lowered = load_config([cfg], ["search.max_generations=1"])
    (row,) = [r for r in build_tables(Study(lowered))[1].display.to_dict("records")
              if r["Source"] != ref.LABEL and "Evolution" in r["Search strategy"]]
    assert ("past the config's limits (search.max_generations = 1, budget_epochs = 2450; lowered after they ran): "
            "CIFAR-10 seed 0 ran 2 generations, CIFAR-10 seed 1 ran 2 generations") in row["Note"]
    (row,) = [r for r in build_tables(study)[1].display.to_dict("records")
              if r["Source"] != ref.LABEL and "Evolution" in r["Search strategy"]]
    assert "past the config's limits" not in row["Note"]


def test_figures_command_writes_png_and_svg(tmp_path, study_dir):
    cfg, config = study_dir
    out = tmp_path / "figures"
    assert main(["figures", "--config", str(cfg), "--out", str(out)]) == 0
    names = Study(config).figure_names()
    assert names == ["search_curves_cifar10", "search_curves_cifar100", "ablation"]
    for name in names:
        for ext in ("png", "svg"):
            assert (out / f"{name}.{ext}").stat().st_size > 1000
    assert (out / "search_curves_cifar10.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_draw_labels_with_dollar_signs_as_written(tmp_path, study_dir):
    cfg, _ = study_dir
    label = tmp_path / "label.yaml"
    label.write_text("datasets: {cifar10: {kind: cifar10, label: '$x^$ 5$'}}\n")
    out = tmp_path / "figures"
    assert main(["figures", "--config", str(cfg), "--config", str(label), "--out", str(out)]) == 0
    assert "$x^$ 5$" in (out / "search_curves_cifar10.svg").read_text()


def test_figures_without_results_still_draw(tmp_path):
    cfg = tmp_path / "empty.yaml"
    root = tmp_path / "results"
    root.mkdir()
    cfg.write_text(f"results_dir: {root}\n")
    assert main(["figures", "--config", str(cfg), "--out", str(tmp_path / "f")]) == 0
    names = Study(load_config(str(cfg))).figure_names()
    assert "ablation" in names and any(n.startswith("search_curves_") for n in names)
    for name in names:                       # every figure the workflow expects, saying why it is empty
        svg = (tmp_path / "f" / f"{name}.svg").read_text()
        assert (tmp_path / "f" / f"{name}.png").stat().st_size > 1000
        assert ("no search history yet" if name.startswith("search_curves_") else "not run") in svg


def test_a_one_generation_search_is_drawn_as_points(tmp_path, study_dir, monkeypatch):
    """A search of one generation drew its curves as lines of one point: invisible."""
    import matplotlib.pyplot as plt

    from nasgep.report.figures import search_curves

    cfg, config = study_dir
    study = Study(config)
    for seed in SEEDS:
        history(seed, 1).to_parquet(study.search_dir("cifar10", "search", seed) / "history.parquet")
    drawn = []
    monkeypatch.setattr(plt, "close", drawn.append)
    search_curves(study, "cifar10", tmp_path / "f")
    (fig,) = drawn
    lines = fig.axes[0].lines
    assert len(lines) == 2 * len(SEEDS) and all(line.get_marker() == "o" for line in lines)
    assert len(lines[0].get_xdata()) == 1


def test_curve_best_and_mean_per_generation():
    from nasgep.report.figures import curve

    data = curve(history(seed=0))
    assert list(data.index) == [0, 1, 2, 3]
    assert data.loc[0, "best"] == 52.0 and data.loc[0, "mean"] == 51.0
    assert data.loc[1, "best"] == 56.0 and data.loc[1, "mean"] == 55.5   # the failure left out


def test_reference_parse():
    assert ref.parse("3.62M ± 0.18") == pytest.approx((3.62e6, 0.18e6))
    mean, std = ref.parse("2.65")
    assert mean == 2.65 and math.isnan(std)
    assert all(math.isnan(x) for x in ref.parse("-") + ref.parse("N/A") + ref.parse("> 1"))


def test_layout_matches_results_readme():
    readme = (Path(__file__).resolve().parents[1] / "results" / "README.md").read_text()
    for key in ("search", "train", "transfer", "tables", "figures", "logs", "tracking", "searchphase"):
        top = LAYOUT[key].replace("{dataset}", "<dataset>").replace("{method}", "<method>") \
            .replace("{variant}", "<variant>").replace("seed{seed}", "seed<N>")
        assert f"`{top}" in readme, top
