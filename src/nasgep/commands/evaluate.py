"""Search-phase evaluation: do the searched cells beat random cells, and does
the search's fitness rank candidates the way full training does?

  nasgep evaluate --config config/paper.yaml --dataset cifar10 \\
      --search results/paper/search/cifar10/search/seed0 ... --out results/paper/searchphase/cifar10

Trains, with the config's ``train`` settings and ``search_phase.train_seeds`` training
seeds each: every search's result (``best.json``) and ``search_phase.random_cells``
random genomes (``nasgep sample``'s draw); and, with one training seed, a fidelity sample
of each search's ``history.parquet`` (``search_phase.fidelity_best`` fittest individuals
and ``fidelity_spread`` more across the fitness range). Then writes OUT/searchphase.json
(percentile ranks, RI with its 95 % bootstrap interval, one-sided permutation p,
training-seed noise, the gain at equal size, Kendall's tau), OUT/searchphase.md (and
.html), OUT/fidelity.png and OUT/trainings.csv. Every training is cached in OUT/runs/
with the key of what its result depends on (running the command again resumes; nothing
finished is redone). A cached training whose key no longer matches (other ``train``
settings or data, a search whose ``best.json`` changed) is never reused nor overwritten:
it is refused (use another --out), or with --restart-if-changed moved into
OUT/.previous-<time>/ and trained again.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from ..cli import add_config_arguments, check_run_start, load_args_config, output_dir

NAME = "evaluate"
HELP = "search-phase evaluation: searched vs random cells, fitness fidelity (statistics + plot)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--dataset", help="dataset name in the config (default: search.dataset)")
    p.add_argument("--search", nargs="+", required=True, metavar="DIR",
                   help="finished search folders (best.json, history.parquet, search.json), one per search seed")
    p.add_argument("--out", type=output_dir, required=True, metavar="DIR",
                   help="the evaluation's own folder (a new or empty one, or an earlier evaluation's)")
    p.add_argument("--restart-if-changed", action="store_true",
                   help="train again the cached trainings in DIR/runs/ made for another genome or with other "
                        "settings, moving the old files into DIR/.previous-<time>/ (what the workflow does); "
                        "else they are refused")


def train_genome(config: dict, dataset: str, genome, seed: int) -> dict:
    """Full training (config ``train``) of ``genome``, set up as by ``nasgep train``
    (:func:`nasgep.fulltrain.build_trainer`); test accuracy and parameters."""
    from ..fulltrain import build_trainer
    from ..nn import count_parameters

    trainer, _, _ = build_trainer(config, genome, dataset, seed, progress=False)
    trainer.fit()
    return {"accuracy": trainer.evaluate("eval")["top1"], "params": count_parameters(trainer.model)}


#: Columns of a search's history.parquet the evaluation reads.
HISTORY_COLUMNS = ("genome", "id", "fitness", "epochs", "failure")


#: the kind of run (a key of nasgep.outdir.RUNS) whose files an evaluation's folder holds
WHAT = "search-phase evaluation"


def check_search(folder: Path, dataset: str, entry: dict | None = None, files: dict | None = None) -> None:
    """Refuse, in one line, a ``--search`` that is no finished search of ``dataset``: no
    such folder, a file, another kind of run, a file of a search missing, a search not
    finished or one of another dataset (its settings.json's record, else its best.json's),
    or, with the config's dataset ``entry``, one made on other data (its kind, or where
    recorded the fingerprint of its files, ``files`` = ``datafiles.files_fingerprint(entry)``,
    computed once by the caller for every search, differs)."""
    from .. import outdir
    from ..errors import UserError
    from ..io import broken_link
    from ..study import check_search_finished, read_json

    if not folder.exists():
        broken = broken_link(folder)
        raise UserError(f"--search {broken}" if broken else f"--search {folder}: no such folder")
    if not folder.is_dir():
        raise UserError(f"--search {folder}: a file, not a search folder")
    other = outdir.another_run(folder, "search")
    if other is not None:
        kind, found = other
        raise UserError(f"--search {folder} holds a {kind} ({outdir.shown_files(found)}), not a search")
    results = ("search.json", "best.json", "history.parquet")
    if not any(os.path.lexists(folder / name) for name in (*results, outdir.SETTINGS, "checkpoints")):
        # nothing of a search at all: a study's results folder, or a search's parent folder
        below = [r for r in outdir.nested_runs(folder) if outdir.recorded_kind(folder / r) == "search"]
        inside = (f"; the searches are in its sub-folders ({', '.join(below[:3])}"
                  f"{f' and {len(below) - 3} more' if len(below) > 3 else ''}): give each one's folder"
                  if below else "")
        raise UserError(f"--search {folder} is not a search folder (no {', '.join(results)}){inside}")
    for name in results:
        if not (folder / name).exists():
            raise UserError(f"{folder / name}: missing (is the search finished?)")
    check_search_finished(folder)
    try:
        record = outdir.recorded(folder) or {}
    except outdir.FolderError:     # damaged: best.json says it too
        record = {}
    searched = record.get("settings", {}).get("dataset")
    if searched is None:
        searched = read_json(folder / "best.json").get("dataset")
    if isinstance(searched, str) and searched != dataset:
        raise UserError(f"--search {folder} is a search of dataset {searched!r}, not {dataset!r} (the dataset "
                        f"evaluated: --dataset, else search.dataset); give its --dataset, or searches of {dataset!r}")
    if entry is not None and record:
        old = record["settings"]
        data = old.get("data") if isinstance(old.get("data"), dict) else {}
        keys = ["data.kind"] if "kind" in data and data["kind"] != entry.get("kind") else []
        if "data_files" in old and not keys and outdir.changed_keys({"data_files": old["data_files"]},
                                                                    {"data_files": files}):
            keys.append("data_files")     # the files' content: a path spelt otherwise is no difference
        if keys:
            raise UserError(f"--search {folder} was made on other data than dataset {dataset!r} of the config "
                            f"({', '.join(keys)} differ); evaluate it with the data it searched")


def check_one_method(searches: list[Path], config: dict) -> None:
    """Refuse, in one line, a search made with other search or GEP settings than the config's
    (the seed, limits and devices aside): the searches of one evaluation are seeds of one
    method, compared with random cells drawn under the config's limits, and their fitnesses
    must be on one scale (``search.fitness: cohort`` is a percentile, ``accuracy`` is not).
    A search recorded before settings.json existed is not checked."""
    from .. import outdir
    from ..errors import UserError
    from ..search.runner import method_settings

    expected = method_settings(config)
    for folder in searches:
        try:
            record = (outdir.recorded(folder) or {}).get("settings")
        except outdir.FolderError:
            record = None
        if not isinstance(record, dict):
            continue
        keys = outdir.changed_keys({k: record.get(k, {}) for k in expected}, expected)
        if keys:
            shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
            raise UserError(f"--search {folder} was made with other settings than the config's ({shown} "
                            f"{'differs' if len(keys) == 1 else 'differ'}); evaluate it with the config it "
                            "was searched with, and searches of one method together")


def _move_aside_a_changed_report(out: Path, new: dict, previous: Path | None) -> None:
    """An earlier report in ``out`` of other searches or settings (its searchphase.json
    holds other results, or is gone while trainings were moved aside) goes into
    ``out/.previous-<time>/`` (``previous``, where this run moved trainings aside already)
    with its plot, pages and trainings.csv: never overwritten."""
    import json

    from .. import outdir
    from ..io import load_json
    from ..study import SEARCHPHASE_FILES

    old = out / "searchphase.json"
    try:
        same = load_json(old.read_bytes()) == json.loads(json.dumps(new))
    except FileNotFoundError:
        # Snakemake deletes a job's outputs (searchphase.json) before it runs: with
        # trainings moved aside, the rest of the old report (trainings.csv ...) goes with them
        same = previous is None
    except (OSError, ValueError):
        same = False
    if not same:
        files = [out / name for name in (*SEARCHPHASE_FILES, "trainings.csv") if (out / name).exists()]
        moved = outdir.move_aside(out, files, previous)
        print(f"the previous report (other searches or settings) moved to {moved}", file=sys.stderr, flush=True)


def read_best(folder: Path) -> dict:
    """A search's ``best.json``, its genome in canonical form; one line naming the file
    when it is damaged or lacks what the evaluation needs."""
    from ..errors import UserError
    from ..space import Genome
    from ..study import ResultFileError, check_fitness, is_number, read_json

    path = folder / "best.json"
    best = read_json(path)
    seed = best.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ResultFileError(f"{path}: no search 'seed' (a non-negative integer; not a best.json of 'nasgep search')")
    if not is_number(best.get("fitness")) or not math.isfinite(best["fitness"]):
        raise ResultFileError(f"{path}: no numeric 'fitness' (a finite number; not a best.json of 'nasgep search')")
    check_fitness(path, best["fitness"])
    try:
        genome = Genome.from_dict(best.get("genome"))
    except UserError as e:
        raise ResultFileError(f"{path}: genome: {e}") from None
    return {**best, "genome": genome.to_dict()}


def histories(searches: list[Path]) -> dict[Path, list[dict]]:
    """Each search folder's ``history.parquet`` as rows (``failure`` None where none);
    one line naming the file when it is damaged or not a search history."""
    from ..errors import UserError
    from ..study import ResultFileError, read_history

    out = {}
    for folder in searches:
        path = folder / "history.parquet"
        frame = read_history(path, None)
        if len(frame) and "genome" not in frame.columns:
            raise UserError(f"{path}: no 'genome' column (a search from an older "
                            "version); run the search again to evaluate its fidelity")
        missing = [c for c in HISTORY_COLUMNS if c not in frame.columns]
        if missing:
            raise ResultFileError(f"{path}: not a search history (no column {', '.join(map(repr, missing))})")
        rows = frame.to_dict("records")
        for r in rows:
            r["failure"] = r["failure"] if isinstance(r.get("failure"), str) else None
        out[folder] = rows
    return out


def check_history_holds_best(folder: Path, best: dict, history: list[dict]) -> None:
    """One line when ``history.parquet`` holds no row of ``best.json``'s individual with
    its genome: files of two searches mixed (another seed's history copied in), and the
    fidelity sample would come from the wrong search. A best.json without ``individual``
    (an older version) is not checked."""
    from ..space import Genome
    from ..study import ResultFileError

    individual = best.get("individual")
    if not isinstance(individual, str):
        return
    for row in history:
        if row["id"] == individual and isinstance(row.get("genome"), str):
            try:
                if Genome.from_json(row["genome"]).to_dict() == best["genome"]:
                    return
            except Exception:  # noqa: BLE001 - a damaged row is no match
                pass
    raise ResultFileError(f"{folder / 'history.parquet'}: no individual {individual} with the genome of "
                          f"{folder / 'best.json'}: the files of two searches are mixed (another seed's "
                          "history?); restore the search's own files")


def candidates(history_of: dict[Path, list[dict]]) -> int:
    """Distinct genomes the searches trained without failure, rounded mean per search."""
    counts = [len({r["genome"] for r in rows if r["failure"] is None}) for rows in history_of.values()]
    return round(sum(counts) / len(counts)) if counts else 0


def plan(config: dict, dataset: str, history_of: dict[Path, list[dict]]) -> list[dict]:
    """Every training the evaluation needs: name, genome, training seed, and the row
    fields of nasgep.report.searchphase. ``history_of``: :func:`histories` of the searches."""
    from ..errors import UserError, clip
    from ..report.searchphase import fidelity_sample
    from ..search.sample import sample_genome
    from ..search.settings import SearchSettings
    from ..search.torch_evaluator import search_param_counter
    from ..space import Genome
    from ..study import ResultFileError

    sp = config["search_phase"]
    jobs = []
    seen: dict[int, Path] = {}
    for folder, history in history_of.items():
        best = read_best(folder)
        check_history_holds_best(folder, best, history)
        seed = best["seed"]
        if seed in seen:     # their trainings would share names in OUT/runs
            raise UserError(f"{folder / 'best.json'}: search seed {seed} again (also {seen[seed]}); "
                            "give one search per seed")
        seen[seed] = folder
        for t in range(sp["train_seeds"]):
            jobs.append({"name": f"searched-seed{seed}-t{t}", "genome": best["genome"], "train_seed": t,
                         "group": "searched", "search_seed": seed, "fitness": best.get("fitness"),
                         "label": f"seed{seed}"})
        for r in fidelity_sample(history, sp["fidelity_best"], sp["fidelity_spread"]):
            try:
                genome = Genome.from_json(r["genome"])
            except (ValueError, TypeError, RecursionError) as e:   # GenomeError is a ValueError
                raise ResultFileError(f"{folder / 'history.parquet'}: individual {clip(str(r['id']))}: "
                                      f"genome: {clip(str(e))}") from None
            jobs.append({"name": f"fidelity-seed{seed}-{r['id']}", "genome": genome.to_dict(),
                         "train_seed": 0, "group": "fidelity", "search_seed": seed, "fitness": r["fitness"],
                         "epochs": int(r["epochs"]), "label": f"seed{seed}-{r['id']}"})
    settings = SearchSettings.from_config(config)
    counter = search_param_counter(config, dataset)
    for r in range(sp["random_cells"]):
        genome, _, _ = sample_genome(settings, 1000 + r, counter)     # 1000+: apart from `nasgep sample`'s seeds
        for t in range(sp["train_seeds"]):
            jobs.append({"name": f"random-r{r}-t{t}", "genome": genome.to_dict(), "train_seed": t,
                         "group": "random", "search_seed": None, "label": f"r{r}"})
    return jobs


def run_key(config: dict, dataset: str, job: dict, speed: dict | None = None, whole_entry: bool = False) -> str:
    """What a training's result depends on: genome, training seed, the config's ``train``
    section (its speed switches left out) and the data keys that shape its weights
    (``nasgep.study.evaluation_run_inputs``)."""
    import hashlib

    from ..study import evaluation_run_inputs

    text = evaluation_run_inputs(config, dataset, job["genome"], job["train_seed"], speed, whole_entry)
    return hashlib.sha256(text.encode()).hexdigest()


def accepted_keys(config: dict, dataset: str, job: dict) -> set[str]:
    """The key of this training now, and those older versions wrote for the same training:
    they counted the speed switches ``cuda_graphs`` and ``fp32_batchnorm`` (at any value,
    or before the switch existed), so a default changed there does not disown the cache,
    and, before 2026-12-07, the whole dataset entry (its path included: such a cache is
    still this training's while the path is the same)."""
    import itertools

    keys = set()
    for whole_entry in (False, True):
        for graphs, bn in itertools.product((None, False, True), repeat=2):
            speed = {name: v for name, v in (("cuda_graphs", graphs), ("fp32_batchnorm", bn)) if v is not None}
            keys.add(run_key(config, dataset, job, speed or None, whole_entry))
    return keys


def cached(path: Path, keys: set[str], dataset: str) -> dict | str | None:
    """The cached training at ``path`` when it was trained with one of ``keys``; None when
    there is none, or it is damaged (the verb's own cache, holding no result: trained again);
    else why it is not this training (a line to show)."""
    from ..errors import clip
    from ..study import ResultFileError, is_number, read_json

    if not path.exists():
        return None
    try:
        data = read_json(path)
    except ResultFileError as e:
        print(f"{e}; training it again", file=sys.stderr, flush=True)
        return None
    if not (is_number(data.get("accuracy")) and math.isfinite(data["accuracy"]) and is_number(data.get("params"))):
        print(f"{path}: damaged (no finite 'accuracy' and numeric 'params'); training it again", file=sys.stderr,
              flush=True)
        return None
    if "key" not in data:
        return "has no record of what it was trained with (an older version)"
    if data["key"] not in keys:
        return (f"was trained for another genome or with other settings (config 'train' or "
                f"'datasets.{clip(dataset)}', or a search's best.json changed)")
    return data


def run(args: argparse.Namespace) -> int:
    import csv
    import io

    from .. import outdir
    from ..config import dataset_name
    from ..datafiles import required_fingerprints
    from ..errors import RunFailed, UserError
    from ..io import atomic_write_json, atomic_write_text
    from ..report import searchphase as sp
    from ..search.fitness import FITNESSES
    from ..space import Genome
    from ..train import CandidateFailure, resolve_device

    config = load_args_config(args)
    dataset = dataset_name(config, args.dataset)
    searches = [Path(s) for s in args.search]
    where = [os.path.realpath(s) for s in searches]      # not Path.resolve: it raises on a loop of links
    twice = [s for k, s in enumerate(searches) if where[k] in where[:k]]
    if twice:        # it counted once, silently: fewer seeds than the user meant
        raise UserError(f"--search {twice[0]} given twice; give each search seed's folder once")
    entry = config["datasets"][dataset]
    # a folder dataset is listed once, not once a search; a missing file is named, not taken for other data
    files = required_fingerprints(entry)[0]
    for s in searches:
        check_search(s, dataset, entry, files)
    check_one_method(searches, config)
    out = args.out
    check_run_start(config, out, "an evaluation", tracked=False)    # it logs no MLflow run
    resolve_device(config["device"])        # a device this machine lacks: before anything is moved aside
    rows = []
    history_of = histories(searches)
    jobs = plan(config, dataset, history_of)
    keys = [run_key(config, dataset, job) for job in jobs]
    with outdir.locked(out):        # one evaluation at a time in OUT
        outdir.finish_interrupted_moves(out, lambda msg: print(msg, file=sys.stderr, flush=True))
        # OUT is the evaluation's own: not a folder of the user's files, nor a search's,
        # training's or sample's (whose files its trainings and report would lie among)
        outdir.refuse_others(out, WHAT)
        outdir.refuse_blocked_writes(out, WHAT)
        # Every cached training is checked before any is trained. One of another genome or
        # other settings is never reused (old accuracies reported as new) nor overwritten (a
        # finished, often hours long training an earlier evaluation was made of): refused,
        # or with --restart-if-changed moved aside and trained again.
        paths = [out / "runs" / f"{job['name']}.json" for job in jobs]
        done = [cached(path, accepted_keys(config, dataset, job), dataset) for path, job in zip(paths, jobs)]
        changed = [(path, why) for path, why in zip(paths, done) if isinstance(why, str)]
        if changed and not args.restart_if_changed:
            path, why = changed[0]
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            raise UserError(f"{path}{more}: {why}; use another --out, or --restart-if-changed to train "
                            "them again (the old files are moved aside)")
        moved = None
        if changed:
            moved = outdir.move_aside(out, [path for path, _ in changed])
            print(f"{len(changed)} trainings of other settings moved to {moved}; training them again",
                  file=sys.stderr, flush=True)
            done = [None if isinstance(d, str) else d for d in done]
        # one training per key: a search's best genome is also the fittest of its fidelity
        # sample, trained with the same seed (it was trained twice)
        by_key = {key: result for key, result in zip(keys, done) if isinstance(result, dict)}
        for i, (job, key, result) in enumerate(zip(jobs, keys, done)):
            if result is None:
                result = by_key.get(key)
                if result is None:
                    try:
                        result = train_genome(config, dataset, Genome.from_dict(job["genome"]), job["train_seed"])
                    except CandidateFailure as e:    # a NaN loss, out of memory: one line, exit 1
                        raise RunFailed(f"the training of {job['name']} (training seed {job['train_seed']}) "
                                        f"failed: {e.reason}; the trainings done so far are kept in "
                                        f"{out / 'runs'}") from None
                    result = {**result, "key": key, "genome": job["genome"], "train_seed": job["train_seed"]}
                    by_key[key] = result
                atomic_write_json(out / "runs" / f"{job['name']}.json", result)
            print(f"[{i + 1}/{len(jobs)}] {job['name']}: {result['accuracy']:.2f} %", file=sys.stderr, flush=True)
            rows.append({"group": job["group"], "genome": job["label"], "search_seed": job["search_seed"],
                         "train_seed": job["train_seed"], "accuracy": result["accuracy"], "params": result["params"],
                         "fitness": job.get("fitness"), "epochs": job.get("epochs")})
        result = sp.evaluate(rows, dataset=config["datasets"][dataset].get("label") or dataset,
                             n_resamples=config["search_phase"]["resamples"], candidates=candidates(history_of))
        _move_aside_a_changed_report(out, result.to_dict(), moved)
        atomic_write_json(out / "searchphase.json", result.to_dict())
        atomic_write_text(out / "searchphase.md", sp.markdown(result))
        atomic_write_text(out / "searchphase.html", sp.html(result))
        sp.scatter(result, out / "fidelity.png", fitness_label=FITNESSES[config["search"]["fitness"]])
        table = io.StringIO(newline="")
        w = csv.DictWriter(table, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(out / "trainings.csv", table.getvalue())
        print(sp.markdown(result))
        return 0
