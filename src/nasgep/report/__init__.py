"""Reports of a study: the results layout, the study plan, Tables I-III and figures.

:data:`LAYOUT` is the one place that says where each CLI verb's output lies under a
study's ``results_dir`` (``results/README.md`` describes it); the Snakemake workflow
builds its rule paths from it, and ``nasgep tables`` / ``nasgep figures`` read results
through :class:`Study`, so the two cannot drift apart. :class:`Study` also says which
jobs a configuration asks for (searches, samplings, trainings, the transfer).
No torch here; pandas and matplotlib are imported by the table and figure modules.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping

#: Paths relative to ``results_dir``; ``{...}`` are Snakemake wildcards.
LAYOUT: dict[str, str] = {
    "prepare": "data/{dataset}.json",
    "tracking": "mlflow.db",
    "search": "search/{dataset}/{method}/seed{seed}",
    "selected": "search/{dataset}/best.json",
    "train": "train/{dataset}/{variant}/seed{seed}",
    "transfer": "transfer/{dataset}",
    "cells": "figures/cells/{dataset}",
    "tables": "tables",
    "figures": "figures",
    "logs": "logs",
}

#: Search methods and the folder each writes (``best.json`` ``method`` field).
SEARCH_METHODS: tuple[str, ...] = ("search", "search_nws")
METHODS: tuple[str, ...] = SEARCH_METHODS + ("random",)

#: Base names of the table files (``.csv``, ``.md``, ``.tex``, ``.html`` each).
TABLES: tuple[str, ...] = ("table1", "table2", "table3")
TABLE_FORMATS: tuple[str, ...] = ("csv", "md", "tex", "html")
FIGURE_FORMATS: tuple[str, ...] = ("png", "svg")


def read_json(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


class Study:
    """One study (a validated configuration): what it runs and where results lie."""

    def __init__(self, config: Mapping[str, Any], root: str | Path | None = None):
        self.config = config
        self.root = Path(root if root is not None else config["results_dir"])

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
        return self.config["workflow"]["best_ablation"]

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
        """(cutout, autoaugment, drop_path) of an ablation, schema defaults filled."""
        a = self.config["ablations"][variant]
        return bool(a.get("cutout", True)), bool(a.get("autoaugment", True)), float(a.get("drop_path", 0.0))

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
        if dataset == self.ablation_dataset and any(
                self.source(v) == "search_nws" for v in self.ablations):
            methods.append("search_nws")
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
        """The ``metrics.json`` of each seed's training that exists."""
        for seed in self.seeds:
            path = self.train_dir(dataset, variant, seed) / "metrics.json"
            if path.exists():
                yield read_json(path)

    def histories(self, dataset: str, method: str) -> Iterator[tuple[int, Path]]:
        """(seed, ``history.parquet``) of each seed's search that exists."""
        for seed in self.seeds:
            path = self.search_dir(dataset, method, seed) / "history.parquet"
            if path.exists():
                yield seed, path


def select_best(paths: list[str | Path]) -> dict[str, Any]:
    """The ``best.json`` with the highest search ``fitness`` (the earliest on ties),
    with a ``selection`` entry naming the candidates; raises ValueError when empty."""
    if not paths:
        raise ValueError("no best.json to choose from")
    candidates = [(read_json(p), str(p)) for p in paths]
    for data, path in candidates:
        if not isinstance(data.get("fitness"), (int, float)):
            raise ValueError(f"{path}: no numeric 'fitness'")
    best, best_path = max(candidates, key=lambda c: c[0]["fitness"])  # max keeps the first
    out = dict(best)
    out["selection"] = {
        "by": "fitness",
        "chosen": best_path,
        "candidates": {path: data["fitness"] for data, path in candidates},
    }
    return out
