"""The study plan: what a configuration asks for and where each result lies.

:data:`LAYOUT` is the one place that says where each CLI verb's output lies under a
study's ``results_dir`` (``results/README.md`` describes it). :class:`Study` says which
jobs a configuration asks for (searches, samplings, trainings, the transfer) and reads
results; the module functions below list a study's target files and the settings each
job's result depends on, for the Snakemake workflow (``workflow/rules/common.smk``), so
the workflow and ``nasgep tables`` / ``figures`` cannot drift apart.
No torch here (the workflow imports it).
"""
from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import UserError, clip

#: Paths relative to ``results_dir``; ``{...}`` are Snakemake wildcards.
LAYOUT: dict[str, str] = {
    "prepare": "data/{dataset}.json",
    "tracking": "mlflow.db",
    "search": "search/{dataset}/{method}/seed{seed}",
    "selected": "search/{dataset}/best.json",
    "train": "train/{dataset}/{variant}/seed{seed}",
    "transfer": "transfer/{dataset}",
    "cells": "figures/cells/{dataset}",
    "searchphase": "searchphase/{dataset}",
    "tables": "tables",
    "figures": "figures",
    "logs": "logs",
}

#: Search method (its folder and ``best.json`` ``method`` field) -> ``search.weight_sharing``.
#: The one table that maps the weight-sharing switch to a method name.
WEIGHT_SHARING: dict[str, bool] = {"search": True, "search_nws": False}
SEARCH_METHODS: tuple[str, ...] = tuple(WEIGHT_SHARING)
METHODS: tuple[str, ...] = SEARCH_METHODS + ("random",)

#: The workflow's mark that a job succeeded: the one output of a run's rule (a search,
#: sample, training, the transfer), which Snakemake creates (``touch()``) after the job
#: succeeded and deletes before it runs the job again. Snakemake deletes, backs up and
#: restores the outputs of the jobs it runs, so it must own none of a run's results: the
#: verbs own them (docs/decisions.md). A verb that changes a run's results removes the
#: mark first (:func:`nasgep.outdir.drop_workflow_mark`); none writes it.
DONE = ".workflow-done"

#: Files the search-phase evaluation (``nasgep evaluate``) writes for a dataset.
SEARCHPHASE_FILES: tuple[str, ...] = ("searchphase.json", "searchphase.md", "searchphase.html", "fidelity.png")

#: Base names of the table files (``.csv``, ``.md``, ``.tex``, ``.html`` each).
TABLES: tuple[str, ...] = ("table1", "table2", "table3")
TABLE_FORMATS: tuple[str, ...] = ("csv", "md", "tex", "html")
FIGURE_FORMATS: tuple[str, ...] = ("png", "svg")


class ResultFileError(UserError):
    """A results file (metrics.json, best.json, history.parquet) that cannot be read."""


def read_json(path: str | Path) -> dict[str, Any]:
    """A results file's JSON object; :class:`ResultFileError` naming it when damaged."""
    _require_file(path, "JSON results file")
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ResultFileError(f"{path}: cannot read it ({e.strerror})") from None
    if not raw.strip():
        raise ResultFileError(f"{path}: empty, not a JSON results file")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ResultFileError(f"{path}: damaged, not a JSON results file ({type(e).__name__})") from None
    except ValueError:      # json reads whole numbers of at most sys.get_int_max_str_digits() digits
        raise ResultFileError(f"{path}: damaged, not a JSON results file (a number of more than "
                              f"{sys.get_int_max_str_digits()} digits)") from None
    if not isinstance(data, dict):
        raise ResultFileError(f"{path}: damaged, not a JSON object")
    return data


#: What each number of a metrics.json may be: key, lowest, highest, kind (null: not measured).
_METRIC_RANGES = (("test_error", 0, 100, "percentage"), ("test_accuracy", 0, 100, "percentage"),
                  ("test_top5_error", 0, 100, "percentage"), ("params", 0, 1e12, "count"))


def check_search_finished(folder: str | Path) -> None:
    """Refuse, in one line, a search folder whose ``search.json`` says it is not finished
    (its ``best.json`` is only the best so far) or is no search's summary."""
    path = Path(folder) / "search.json"
    finished = read_json(path).get("finished")
    if not isinstance(finished, bool):
        raise ResultFileError(f"{path}: no true/false 'finished' (not a search.json of 'nasgep search')")
    if not finished:
        raise ResultFileError(f"{folder}: the search is not finished (its best.json is the best so far); resume "
                              "it first ('nasgep search' with the same config and --out)")


def present(path: Path) -> bool:
    """A results file is there, or a link stands in its place (a dangling one is named by
    the reader, not shown as "not run yet")."""
    return path.exists() or path.is_symlink()


def _require_file(path: str | Path, what: str) -> None:
    """:class:`ResultFileError` for a folder, or a link to nothing, where a file is read."""
    if Path(path).is_dir():
        raise ResultFileError(f"{path}: is a folder; expected a {what}")
    if not Path(path).exists():
        kind = "a link to a missing file" if Path(path).is_symlink() else "no such file"
        raise ResultFileError(f"{path}: {kind}; expected a {what}")


def read_metrics(path: str | Path, **place: Any) -> dict[str, Any]:
    """A training's ``metrics.json``, with a numeric ``test_error``. ``place``: what its
    folder in the results says it is (``dataset``, ``variant``, ``seed``); a file whose
    own record of these disagrees (a training copied or moved into another's folder,
    which would be counted as that one) is refused, naming it. Keys it does not record
    are not checked."""
    data = read_json(path)
    if not is_number(data.get("test_error")):
        raise ResultFileError(f"{path}: no numeric 'test_error' (not a metrics.json of 'nasgep train')")
    for key, low, high, what in _METRIC_RANGES:
        value = data.get(key)
        if value is not None and not (is_number(value) and math.isfinite(value) and low <= value <= high
                                      and (what != "count" or value == int(value))):
            raise ResultFileError(f"{path}: {key!r} is {clip(repr(value))}, not a {what} from {low:g} to {high:g} "
                                  "(damaged); train it again with --restart")
    check_place(path, data, "train this one there", **place)
    return data


def check_fitness(path: str | Path, fitness: float) -> None:
    """A search's finite ``fitness`` (its ``best.json``'s) is a percentage from 0 to 100,
    as the history's is (:data:`HISTORY_PERCENTAGES`); :class:`ResultFileError` naming
    the file else: 1e30 would win every selection."""
    if not 0 <= fitness <= 100:
        raise ResultFileError(f"{path}: fitness {fitness:g} is not a percentage from 0 to 100 (damaged)")


def check_place(path: str | Path, data: Mapping[str, Any], remedy: str, **place: Any) -> None:
    """:class:`ResultFileError` when a results file records another ``place`` (dataset,
    variant or method, seed) than its folder in the study says: a run copied or moved
    into another's folder would be counted as that one. Keys it does not record are not
    checked."""
    wrong = [f"{key} {data[key]!r}" for key, value in place.items() if key in data and data[key] != value]
    if wrong:
        expected = ", ".join(f"{key} {value!r}" for key, value in place.items())
        raise ResultFileError(f"{path}: records {', '.join(wrong)}, but its folder is that of {expected}; "
                              f"move it to its own folder, or {remedy}")


def read_history(path: str | Path, columns: list[str] | None):
    """Columns of a search's ``history.parquet`` (all with ``columns=None``);
    :class:`ResultFileError` when damaged: not a file (pandas would read a folder as a
    parquet dataset), unreadable, without rows where its ``search.json`` does not record
    a search that trained nothing (:func:`_check_trained_nothing`), a numeric column that holds anything
    else (text, an infinite or negative number), a fitness or accuracy that is no
    percentage, a count that is no whole number, true/false for a number, an individual
    twice in one generation, or an individual id no search writes
    (ids name files of an evaluation's runs: ``../x`` would name one outside them). Every
    column is checked, not only those asked for: one damaged column makes the whole file
    suspect. The one place that says what a history's values may be."""
    import pandas as pd

    _require_file(path, "search history file")
    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, KeyError ...
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ResultFileError(f"{path}: damaged or not a search history ({clip(reason)})") from None
    missing = [c for c in columns or () if c not in frame.columns]
    if missing:
        raise ResultFileError(f"{path}: not a search history (no column {', '.join(map(repr, missing))})")
    if frame.empty:
        _check_trained_nothing(Path(path))
    ids = frame["id"] if "id" in frame.columns else None
    if ids is not None:
        wrong = ~ids.map(lambda x: isinstance(x, str) and HISTORY_ID.fullmatch(x) is not None)
        if wrong.any():
            raise ResultFileError(f"{path}: individual id {clip(repr(ids[wrong].iloc[0]))} is not one a search "
                                  "writes (letters, digits, '-' and '_'; damaged)")
    for column in (c for c in HISTORY_NUMBERS if c in frame.columns):
        values = frame[column].dropna()       # a column of None only has no number type
        if values.empty and column not in HISTORY_COUNTS:
            continue
        if not values.empty and (not pd.api.types.is_numeric_dtype(frame[column])
                                 or pd.api.types.is_bool_dtype(frame[column])):     # true/false: no number
            raise ResultFileError(f"{path}: column {column!r} does not hold numbers "
                                  "(damaged, or not a search history of nasgep)")
        if (values.abs() == float("inf")).any() or (values < 0).any():
            raise ResultFileError(f"{path}: column {column!r} holds an infinite or negative number (damaged)")
        if column in HISTORY_PERCENTAGES and (values > 100).any():
            value = values[values > 100].iloc[0]
            raise ResultFileError(f"{path}: column {column!r} holds {value:g}, not a percentage from 0 to 100 "
                                  "(damaged)")
        if column in HISTORY_COUNTS:
            counts = frame[column].astype("float64")
            wrong = counts.isna() | (counts != counts.round())
            if wrong.any():
                row = int(wrong.to_numpy().nonzero()[0][0])
                who = f"individual {ids.iloc[row]}" if ids is not None else f"row {row}"
                value = frame[column].iloc[row]
                value = value.item() if hasattr(value, "item") else value     # numpy's repr: np.float64(0.5)
                raise ResultFileError(f"{path}: {who}: {column} {clip(repr(value))} is not a "
                                      "whole number (damaged)")
    if ids is not None and "generation" in frame.columns:    # a search writes an individual once a generation
        twice = frame.duplicated(["generation", "id"]).to_numpy()
        if twice.any():
            row = int(twice.nonzero()[0][0])
            raise ResultFileError(f"{path}: row {row}: individual {ids.iloc[row]} of generation "
                                  f"{int(frame['generation'].iloc[row])} is there twice (damaged)")
    if not frame.empty:
        _check_against_summary(Path(path), frame)
    return frame if columns is None else frame[list(columns)]


def _check_against_summary(path: Path, frame) -> None:
    """:class:`ResultFileError` when a history holds what its search could not have run,
    by the ``search.json`` written beside it with it (each number only where that file
    records it; no summary, or a damaged one, is not checked here): a generation past the
    last it ran (a figure's axis went to 10^15), candidate epochs that do not add up to
    its ``epochs`` (Table II summed 2^62 twice to a negative cost), or an individual trained
    more epochs than the whole search. Not its ``seconds`` against ``elapsed_seconds``: a
    search killed during a generation takes the jobs trained before from their records,
    with the seconds they took then, which the elapsed time of the run that finished it
    does not count (a legitimate history was refused as damaged)."""
    summary = path.with_name("search.json")
    try:
        ran = read_json(summary) if present(summary) else {}
    except ResultFileError:
        return
    where = "(damaged, or the files of two searches mixed)"
    generations, epochs = (ran.get(key) if isinstance(ran.get(key), int) and not isinstance(ran.get(key), bool)
                           else None for key in ("generations", "epochs"))
    if generations is not None and "generation" in frame.columns:
        last = int(frame["generation"].max())
        if last >= generations:
            raise ResultFileError(f"{path}: generation {last}, but the search.json beside it records "
                                  f"{generations} generations (0 to {generations - 1}) {where}")
    if epochs is not None and "epochs_this_generation" in frame.columns:
        total = sum(int(v) for v in frame["epochs_this_generation"])      # Python's ints: int64 wraps round
        if total != epochs:
            raise ResultFileError(f"{path}: its epochs_this_generation add up to {total:,}, but the search.json "
                                  f"beside it records {epochs:,} epochs trained {where}")
    if epochs is not None and "epochs" in frame.columns and int(frame["epochs"].max()) > epochs:
        raise ResultFileError(f"{path}: an individual of {int(frame['epochs'].max()):,} epochs, more than the "
                              f"{epochs:,} the search.json beside it records for the whole search {where}")


def _check_trained_nothing(path: Path) -> None:
    """A history without rows is a search's only when its ``search.json`` records that it
    trained no candidate (0 epochs: a budget spent before the first training; such a
    search has no result and costs nothing); else :class:`ResultFileError`."""
    summary = path.with_name("search.json")
    epochs = read_json(summary).get("epochs") if present(summary) else None
    if epochs == 0 and not isinstance(epochs, bool):
        return
    said = (f"{summary} records {clip(repr(epochs))} epochs trained" if epochs is not None
            else "no search.json beside it records a search that trained nothing")
    raise ResultFileError(f"{path}: no rows, but {said} (damaged, or not a search history of nasgep); restore "
                          "the search's own file, or run the search again")


#: Columns of ``history.parquet`` that hold numbers, none of them negative (NaN: not known).
HISTORY_NUMBERS: tuple[str, ...] = ("generation", "born", "epochs", "epochs_this_generation", "fitness",
                                    "accuracy", "params", "inherited", "seconds")
#: ... of them, the percentages (validation top-1, %; under ``search.fitness: cohort`` the
#: fitness is a percentile, 0-100 too).
HISTORY_PERCENTAGES: tuple[str, ...] = ("fitness", "accuracy")
#: ... of them, those every row knows, as whole numbers.
HISTORY_COUNTS: tuple[str, ...] = ("generation", "born", "epochs", "epochs_this_generation")
#: An individual's id as a search writes it (``i17``, ``r3``).
HISTORY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_number(value: object) -> bool:
    """A JSON number (``true`` is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Study:
    """One study (a validated configuration): what it runs and where results lie."""

    def __init__(self, config: Mapping[str, Any], root: str | Path | None = None):
        self.config = config
        self.root = Path(root if root is not None else config["results_dir"])
        self._search_files: dict[str, Any] = {}   # dataset -> a search's files fingerprint, listed once
        self._train_files: dict[str, Any] = {}    # dataset -> a training's two fingerprints, listed once

    # -- the plan ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.config["name"]

    @property
    def seeds(self) -> list[int]:
        return list(self.config["seeds"])

    @property
    def search_datasets(self) -> list[str]:
        return list(self.config["workflow"]["search_datasets"])

    @property
    def ablation_dataset(self) -> str:
        return self.config["workflow"]["ablation_dataset"]

    @property
    def best_ablation(self) -> str:
        """``workflow.best_ablation``, one of the study's ablations (checked here, where a
        study needs it: a lone search or training does not)."""
        best = self.config["workflow"]["best_ablation"]
        if best not in self.config["ablations"]:
            from .config import ConfigError

            raise ConfigError(f"workflow.best_ablation: unknown ablation {best!r} "
                              f"(ablations: {sorted(self.config['ablations'], key=str)})")
        return best

    @property
    def ablations(self) -> dict[str, dict[str, Any]]:
        return dict(self.config["ablations"])

    @property
    def transfer_dataset(self) -> str | None:
        return self.config["transfer"]["dataset"]

    @property
    def transfer_source(self) -> str:
        return self.config["transfer"]["source"]

    def label(self, dataset: str) -> str:
        """The dataset's name in tables (its ``label``, else its key)."""
        return self.config["datasets"][dataset].get("label") or dataset

    def ablation_label(self, variant: str) -> str:
        return self.config["ablations"][variant].get("label") or variant

    def source(self, variant: str) -> str:
        """Which search method (``search``, ``search_nws``, ``random``) feeds an ablation."""
        return self.config["ablations"][variant]["source"]

    def switches(self, variant: str) -> tuple[bool, bool, float]:
        """(cutout, autoaugment, drop_path) of an ablation (the schema fills their defaults)."""
        a = self.config["ablations"][variant]
        return bool(a["cutout"]), bool(a["autoaugment"]), float(a["drop_path"])

    def searched_datasets(self) -> list[str]:
        """Datasets with searches: the search datasets, then the ablation dataset."""
        out = list(self.search_datasets)
        searched = any(self.source(v) in SEARCH_METHODS for v in self.ablations)
        if searched and self.ablation_dataset not in out:
            out.append(self.ablation_dataset)
        return out

    def search_methods(self, dataset: str) -> list[str]:
        """Search methods run on a dataset (``search_nws`` only where an ablation uses it)."""
        methods = ["search"]
        nws = search_method(weight_sharing=False)
        if dataset == self.ablation_dataset and any(self.source(v) == nws for v in self.ablations):
            methods.append(nws)
        return methods

    def searches(self) -> list[tuple[str, str, int]]:
        """(dataset, method, seed) of every search and random sampling the study runs."""
        jobs = [(d, m, s) for d in self.searched_datasets() for m in self.search_methods(d)
                for s in self.seeds]
        sampled = list(self.search_datasets)
        if any(self.source(v) == "random" for v in self.ablations) and self.ablation_dataset not in sampled:
            sampled.append(self.ablation_dataset)
        jobs += [(d, "random", s) for d in sampled for s in self.seeds]
        return jobs

    def trainings(self) -> list[tuple[str, str]]:
        """(dataset, variant) of every full training: each ablation on the ablation
        dataset, and the best ablation on every search dataset (the same job where the
        two coincide)."""
        out = [(self.ablation_dataset, v) for v in self.ablations]
        out += [(d, self.best_ablation) for d in self.search_datasets
                if (d, self.best_ablation) not in out]
        return out

    def figure_names(self) -> list[str]:
        """Base names of the figures ``nasgep figures`` writes (each as PNG and SVG)."""
        return [f"search_curves_{d}" for d in self.searched_datasets()] + ["ablation"]

    # -- paths -----------------------------------------------------------------
    def path(self, key: str, **wildcards: Any) -> Path:
        return self.root / LAYOUT[key].format(**wildcards)

    def search_dir(self, dataset: str, method: str, seed: int) -> Path:
        return self.path("search", dataset=dataset, method=method, seed=seed)

    def train_dir(self, dataset: str, variant: str, seed: int) -> Path:
        return self.path("train", dataset=dataset, variant=variant, seed=seed)

    def transfer_dir(self, dataset: str) -> Path:
        return self.path("transfer", dataset=dataset)

    # -- reading results ---------------------------------------------------------
    def metrics(self, dataset: str, variant: str) -> Iterator[dict[str, Any]]:
        """The ``metrics.json`` of each seed's training that exists (checked against its
        place: :func:`read_metrics`); the seeds' trainings must have been made with the same
        settings (their genomes and seeds aside): a seed added under a changed config
        beside older ones is refused, not averaged with them."""
        from . import outdir

        folders = [self.train_dir(dataset, variant, seed) for seed in self.seeds]
        unlike = outdir.unlike_runs([f for f in folders if present(f / "metrics.json")], ignore=("seed", "genome"))
        if unlike is not None:
            first, other, keys = unlike
            raise ResultFileError(f"{other} was trained with other settings than {first} "
                                  f"({outdir.shown_keys(keys)}); the seeds of one row must be trained alike: "
                                  "rerun them with one config (snakemake --forcerun train)")
        for seed, folder in zip(self.seeds, folders):
            path = folder / "metrics.json"
            if present(path):
                self.check_training_settings(folder, dataset, variant, seed)
                yield read_metrics(path, dataset=dataset, variant=variant, seed=seed)

    def histories(self, dataset: str, method: str) -> Iterator[tuple[int, Path]]:
        """(seed, ``history.parquet``) of each seed's search that exists; a search whose
        ``search.json`` records another dataset, method or seed than its folder, or says it
        is not finished (its costs and curves would be part of a search's), or whose
        settings.json records other settings than the config's (:meth:`check_search_settings`),
        is refused."""
        for seed in self.seeds:
            folder = self.search_dir(dataset, method, seed)
            if present(folder / "history.parquet"):
                if present(folder / "search.json"):
                    check_place(folder / "search.json", read_json(folder / "search.json"), "search this one there",
                                dataset=dataset, method=method, seed=seed)
                    check_search_finished(folder)
                self.check_search_settings(folder, dataset, method, seed)
                yield seed, folder / "history.parquet"

    def check_search_settings(self, folder: Path, dataset: str, method: str, seed: int) -> None:
        """Refuse a search whose settings.json records other search, GEP or data settings
        than the config's (limits and execution aside). The workflow reruns such a search
        when the config changes, but only while Snakemake's job records are there: a study
        whose records were lost (another working directory, ``--cleanup-metadata``) would
        otherwise be tabled under settings it was not made with."""
        from . import outdir
        from .datafiles import files_fingerprint
        from .search.runner import result_settings

        recorded = _recorded_settings(folder)
        if recorded is None:       # made before settings.json existed: search.json is checked
            return
        config = self.config
        if not WEIGHT_SHARING[method]:
            config = {**config, "search": {**config["search"], "weight_sharing": False}}
        if dataset not in self._search_files:     # listed once for all its searches
            self._search_files[dataset] = files_fingerprint(config["datasets"][dataset])
        expected = outdir.fingerprint(result_settings(config, dataset, seed, files=self._search_files[dataset]))
        old = _comparable(recorded, expected["settings"])
        keys = outdir.changed_keys(old, expected["settings"])
        if keys:
            raise ResultFileError(
                f"{folder} was searched with other settings than the config's ({outdir.shown_keys(keys)}); "
                f"rerun it with this config (snakemake --forcerun search, or nasgep search --restart), "
                f"or table it with the config it was made with")

    def check_training_settings(self, folder: Path, dataset: str, variant: str, seed: int,
                                stem: str | None = None) -> None:
        """Refuse a training (``stem="imagenet"``: the transfer) whose settings.json records
        another schedule, network shape, data or test images than the config gives its
        variant (its genome aside: it comes from a search, checked by
        :meth:`check_search_settings`), for the reason given there: without Snakemake's job
        records nothing reruns it after a config change."""
        from . import outdir
        from .fulltrain import data_fingerprints, expected_settings

        recorded = _recorded_settings(folder)
        if recorded is None:       # made before settings.json existed: metrics.json is checked
            return
        if dataset not in self._train_files:      # listed once for all its trainings
            self._train_files[dataset] = data_fingerprints(self.config["datasets"][dataset])
        expected = outdir.fingerprint(expected_settings(self.config, dataset, variant, seed, stem=stem,
                                                        files=self._train_files[dataset]))["settings"]
        old = _comparable(recorded, expected, ignore=("genome",))
        keys = outdir.changed_keys(old, expected)
        rule = "transfer" if stem == "imagenet" else "train"
        if keys:
            raise ResultFileError(
                f"{folder} was trained with other settings than the config's ({outdir.shown_keys(keys)}); "
                f"rerun it with this config (snakemake --forcerun {rule}, or nasgep train --restart-if-changed), "
                f"or table it with the config it was made with")
        if "data_files" in old and "data_files" in expected and outdir.changed_keys(
                {"data_files": old["data_files"]}, {"data_files": expected["data_files"]}):
            # a training goes on after that change: its weights are kept, tested again
            raise ResultFileError(
                f"{folder} was tested on other test images than the dataset now holds; test it again, its "
                f"weights kept: delete {folder / DONE} and rerun the workflow, or run its nasgep train "
                f"--restart-if-changed again (--forcerun would train it afresh)")


def _recorded_settings(folder: Path) -> dict | None:
    """The settings ``folder`` recorded (None without a readable record: read first, so
    that nothing is fingerprinted for a run that has none)."""
    from . import outdir

    try:
        doc = outdir.recorded(folder)
    except outdir.FolderError:
        return None
    return None if doc is None else doc["settings"]


def _comparable(recorded: Mapping, expected: Mapping, ignore: tuple[str, ...] = ()) -> dict:
    """``recorded`` less ``ignore`` and the data files' fingerprints ``expected`` lacks (the
    data is not on this machine: results pulled alone)."""
    return {k: v for k, v in recorded.items()
            if k not in ignore and not (k in ("data_files", "train_files") and k not in expected)}


def search_method(weight_sharing: bool) -> str:
    """The method name of a search with or without weight sharing."""
    return next(m for m, ws in WEIGHT_SHARING.items() if ws == weight_sharing)


# -- devices -------------------------------------------------------------------------
def expand_devices(devices: list[str], configured_default: str, gpus: int) -> list[str]:
    """Expand ``auto`` (the configured default; when that is ``auto`` too, one GPU if
    any, else CPU) and ``all`` (every GPU, else one CPU) on a machine with ``gpus`` GPUs."""
    out: list[str] = []
    for d in devices:
        if d == "auto":
            out.append(configured_default if configured_default != "auto" else ("cuda" if gpus else "cpu"))
        elif d == "all":
            out.extend([f"cuda:{i}" for i in range(gpus)] or ["cpu"])
        else:
            out.append(d)
    return out


def gpu_count(devices: list[str], configured_default: str) -> int:
    """Distinct GPUs a job with ``devices`` reserves, planned without seeing the GPUs:
    ``cpu`` none, ``auto`` the top-level device, ``all`` one (list the GPUs, e.g.
    [cuda:0, cuda:1], to reserve several). A GPU listed twice ([cuda:0, cuda:0]: two
    workers sharing it) counts once."""
    expanded = expand_devices(devices, configured_default, gpus=1)
    return len({"cuda:0" if d == "cuda" else d for d in expanded if d != "cpu"})


def resources(config: Mapping[str, Any]) -> dict[str, int]:
    """GPUs, threads and SLURM runtime (minutes) of a search and of a training."""
    devices = list(config["search"]["devices"])
    search_gpus = gpu_count(devices, config["device"])
    workers = len(devices) * config["search"]["concurrency"]
    return {
        "search_gpus": search_gpus,
        # a CPU worker trains with search.cpu_threads threads
        "search_threads": workers if search_gpus else workers * config["search"]["cpu_threads"],
        # the budget plus 10 % and half an hour for start-up and writing results
        "search_runtime": int(math.ceil(config["search"]["budget_hours"] * 66)) + 30,
        "train_gpus": gpu_count([config["device"]], config["device"]),
        "train_threads": config["train"]["num_workers"] + 1,
    }


# -- target files ----------------------------------------------------------------------
def pattern(study: Study, key: str, name: str = "") -> str:
    """A path pattern under ``results_dir``, e.g. ``pattern(study, 'search', 'best.json')``."""
    path = f"{study.root}/{LAYOUT[key]}"
    return f"{path}/{name}" if name else path


def job_mark(study: Study, key: str, **wildcards: Any) -> str:
    """The workflow's mark of one job: ``job_mark(study, "train", dataset=..., ...)``."""
    return pattern(study, key, DONE).format(**wildcards)


def search_runs(study: Study, methods: tuple[str, ...] = METHODS) -> list[str]:
    """The mark of every search and sampling of the study (of ``methods``)."""
    return [job_mark(study, "search", dataset=d, method=m, seed=s)
            for d, m, s in study.searches() if m in methods]


def training_runs(study: Study) -> list[str]:
    return [job_mark(study, "train", dataset=d, variant=v, seed=s)
            for d, v in study.trainings() for s in study.seeds]


def transfer_runs(study: Study) -> list[str]:
    if study.transfer_dataset is None:
        return []
    return [job_mark(study, "transfer", dataset=study.transfer_dataset)]


def table_files(study: Study) -> list[str]:
    return [f"{study.root}/{LAYOUT['tables']}/{t}.{ext}" for t in TABLES for ext in TABLE_FORMATS]


def figure_files(study: Study) -> list[str]:
    return [f"{study.root}/{LAYOUT['figures']}/{name}.{ext}"
            for name in study.figure_names() for ext in FIGURE_FORMATS]


def cell_files(study: Study) -> list[str]:
    return [pattern(study, "cells", f"{cell}.{ext}").format(dataset=d)
            for d in study.search_datasets for cell in ("normal", "reduction") for ext in FIGURE_FORMATS]


def table_inputs(study: Study) -> list[str]:
    """The runs Tables I-III read: every training, the transfer, and the searches whose
    histories give Table II's search cost."""
    searches = {mark for d in [*study.search_datasets, study.transfer_source] for mark in seed_searches(study, d)}
    return training_runs(study) + sorted(searches) + transfer_runs(study)


def figure_inputs(study: Study) -> list[str]:
    """The runs the figures read: every search's history, the ablation dataset's trainings."""
    ablation_runs = [job_mark(study, "train", dataset=study.ablation_dataset, variant=v, seed=s)
                     for v in study.ablations for s in study.seeds]
    return search_runs(study, SEARCH_METHODS) + ablation_runs


def seed_searches(study: Study, dataset: str) -> list[str]:
    """The mark of every seed's search on ``dataset``: what the choice of the best cells
    and the search-phase evaluation read."""
    return [job_mark(study, "search", dataset=dataset, method="search", seed=s) for s in study.seeds]


def searchphase_files(study: Study) -> list[str]:
    """The search-phase evaluation of the ablation dataset (searched vs random cells)."""
    return [pattern(study, "searchphase", name).format(dataset=study.ablation_dataset)
            for name in SEARCHPHASE_FILES]


def all_targets(study: Study) -> list[str]:
    return (search_runs(study) + training_runs(study) + transfer_runs(study) + table_files(study)
            + figure_files(study) + cell_files(study) + searchphase_files(study))


# -- what each job's result depends on (a changed value reruns exactly those jobs) -----
def _canonical(**sections: Any) -> str:
    return json.dumps(sections, sort_keys=True, default=str)


def _without(mapping: Mapping, *keys: str) -> dict:
    return {k: v for k, v in mapping.items() if k not in keys}


def _dataset_values(config: Mapping, dataset: str) -> dict:
    return _without(config["datasets"][dataset], "label")


def prepare_inputs(config: Mapping, dataset: str) -> str:
    return _canonical(data=_dataset_values(config, dataset))


#: search settings that say where and how fast a search runs, not what it finds (like the
#: train section's amp and channels_last, which the search follows; fp32_batchnorm only
#: changes the rounding of BatchNorm under bf16 autocast on CUDA)
SEARCH_EXECUTION = ("devices", "concurrency", "cpu_threads", "cuda_graphs", "fp32_batchnorm")
#: search settings that only limit how long it runs (raising one lets a finished search go on)
SEARCH_LIMITS = ("max_generations", "budget_hours", "budget_epochs")


def search_inputs(config: Mapping, dataset: str) -> str:
    """Everything a search's result depends on (devices, labels and tracking left out;
    limits kept, so that raising one reruns the job, which then goes on from its checkpoint)."""
    search = _without(config["search"], *SEARCH_EXECUTION, "dataset")
    return _canonical(gep=config["gep"], search=search,
                      data=_dataset_values(config, dataset))


#: train settings that say how fast a training runs, not what it learns (a training's own
#: folder fingerprint holds only its schedule, ``TrainSettings.SCHEDULE_KEYS``)
TRAIN_EXECUTION = ("num_workers", "cuda_graphs", "fp32_batchnorm")


def train_inputs(config: Mapping, dataset: str, variant: str) -> str:
    return _canonical(train=_without(config["train"], *TRAIN_EXECUTION),
                      ablation=_without(config["ablations"][variant], "label"),
                      data=_dataset_values(config, dataset))


def evaluation_run_inputs(config: Mapping, dataset: str, genome: Mapping, seed: int,
                          speed: Mapping | None = None, whole_entry: bool = False) -> str:
    """What one training of the search-phase evaluation depends on: the genome, the
    training seed, the training settings (speed switches left out) and the data keys
    that shape a training's weights (:func:`nasgep.datafiles.data_settings`: a moved data
    folder retrains nothing). ``speed``: switch values to put back, as versions before
    2026-12-04 counted them; ``whole_entry``: the dataset entry as versions before
    2026-12-07 counted it (path, download and the search's split included)."""
    from .datafiles import data_settings

    train = {**_without(config["train"], *TRAIN_EXECUTION), **(speed or {})}
    data = (_dataset_values(config, dataset) if whole_entry
            else data_settings(config["datasets"][dataset], training=True))
    return _canonical(genome=genome, seed=seed, train=train, data=data)


def searchphase_inputs(config: Mapping, dataset: str) -> str:
    """What the search-phase evaluation depends on besides the searches: the random cells
    (search limits, GEP sizes), the training, the sample sizes."""
    return _canonical(search_phase=config["search_phase"], train=_without(config["train"], *TRAIN_EXECUTION),
                      gep=config["gep"], search=_without(config["search"], *SEARCH_EXECUTION, "dataset"),
                      data=_dataset_values(config, dataset))


def transfer_inputs(config: Mapping, dataset: str, variant: str) -> str:
    return _canonical(transfer=config["transfer"], train=train_inputs(config, dataset, variant))


def run_inputs(study: Study) -> dict[str, str]:
    """Each run's mark -> what the run's result depends on (its rule's ``settings``)."""
    config = study.config
    runs = {job_mark(study, "search", dataset=d, method=m, seed=s): search_inputs(config, d)
            for d, m, s in study.searches()}
    runs.update({mark: search_inputs(config, study.transfer_source)       # Table II and the transfer
                 for mark in seed_searches(study, study.transfer_source)})
    runs.update({job_mark(study, "train", dataset=d, variant=v, seed=s): train_inputs(config, d, v)
                 for d, v in study.trainings() for s in study.seeds})
    if study.transfer_dataset is not None:
        runs[job_mark(study, "transfer", dataset=study.transfer_dataset)] = transfer_inputs(
            config, study.transfer_dataset, study.best_ablation)
    return runs


def upstream_inputs(study: Study, marks: list[str]) -> str:
    """What the runs behind ``marks`` (runs of the study's plan) depend on, for the params
    of a job that reads them. Snakemake runs no job whose output exists while an input is
    missing (it takes the input for a deleted intermediate file), so a table would look
    current, asked for on its own, while a search it reads was killed after a change of
    its settings (its mark gone); with those settings in its params, the change reruns
    it, and the search before it. (A job of one run's wildcards, e.g. a training, takes
    :func:`search_inputs` of its dataset: searches, searches without weight sharing and
    samplings of a dataset share them, and a run outside the plan has them too.)"""
    runs = run_inputs(study)
    return _canonical(runs=sorted({runs[m] for m in marks}))


def report_inputs(study: Study) -> str:
    """What the tables and figures show besides result files: labels, plan, seeds."""
    config = study.config
    return _canonical(labels={d: study.label(d) for d in config["datasets"]}, ablations=config["ablations"],
                      workflow=config["workflow"], transfer=[study.transfer_dataset, study.transfer_source],
                      seeds=study.seeds)
