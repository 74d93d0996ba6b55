"""Figures of a study: search curves per dataset and the Table I ablation bars.

Each figure is written as PNG and SVG under the names :meth:`Study.figure_names` gives,
so the workflow knows them in advance; a figure with nothing to plot yet says so in its
body instead of going missing. Cell drawings are ``nasgep draw``'s job.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..io import atomic_save_figure, literal_text
from . import FIGURE_FORMATS, Study, read_history
from . import reference as ref
from .tables import Stat

_METHOD_TITLES = {"search": "NASGEP search (weight sharing)", "search_nws": "search without weight sharing"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def curve(history: pd.DataFrame) -> pd.DataFrame:
    """Best and mean fitness per generation of the candidates that trained: a failed one
    (its ``failure`` set) is recorded with fitness 0 and would pull the mean down."""
    if "failure" in history.columns:
        history = history[history["failure"].isna()]
    frame = history[["generation", "fitness"]].copy()
    frame["fitness"] = pd.to_numeric(frame["fitness"], errors="coerce")
    frame = frame.dropna(subset=["fitness"])
    grouped = frame.groupby("generation")["fitness"]
    return pd.DataFrame({"best": grouped.max(), "mean": grouped.mean()}).sort_index()


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    paths = []
    for ext in FIGURE_FORMATS:
        path = out_dir / f"{name}.{ext}"
        atomic_save_figure(fig, path, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


def search_curves(study: Study, dataset: str, out_dir: str | Path) -> list[Path]:
    """``search_curves_<dataset>``: one panel per search method, for every seed the best
    (solid) and mean (dashed) fitness of each generation."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    out_dir = Path(out_dir)
    methods = study.search_methods(dataset)
    fig, axes = plt.subplots(1, len(methods), figsize=(5.5 * len(methods), 4), squeeze=False,
                             sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, method in zip(axes[0], methods):
        plotted = False
        for i, (seed, path) in enumerate(study.histories(dataset, method)):
            data = curve(read_history(path, None))
            if data.empty:
                continue
            color = colors[i % len(colors)]
            marker = "o" if len(data) == 1 else None     # one generation: a point, not an invisible line
            ax.plot(data.index, data["best"], color=color, marker=marker, label=f"seed {seed} best")
            ax.plot(data.index, data["mean"], color=color, linestyle="--", marker=marker, mfc="none",
                    label=f"seed {seed} mean")
            plotted = True
        if plotted:
            ax.legend(fontsize="small", ncol=2)
        else:
            ax.text(0.5, 0.5, "no search history yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(literal_text(f"{study.label(dataset)}: {_METHOD_TITLES.get(method, method)}"),
                     fontsize="medium")
        ax.set_xlabel("generation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fitness (validation accuracy)")
    fig.tight_layout()
    paths = _save(fig, out_dir, f"search_curves_{dataset}")
    plt.close(fig)
    return paths


def ablation_bars(study: Study, out_dir: str | Path) -> list[Path]:
    """``ablation``: Table I as bars, measured mean ± std over seeds, with the paper's
    published values as hollow markers."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    variants = list(study.ablations)
    labels = [study.ablation_label(v) for v in variants]
    stats = [Stat.of(m.get("test_error") for m in study.metrics(study.ablation_dataset, v)) for v in variants]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(variants) + 2), 4.5))
    xs = list(range(len(variants)))
    means = [s.mean if s.n else 0.0 for s in stats]
    errs = [0.0 if math.isnan(s.std) else s.std for s in stats]
    bars = ax.bar(xs, means, yerr=errs, capsize=4, color="#4C72B0", label="measured (mean ± std)")
    for bar, s in zip(bars, stats):   # runs found, at the foot of each bar
        ax.annotate("not run" if s.n == 0 else f"n={s.n}", (bar.get_x() + bar.get_width() / 2, 0),
                    xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                    fontsize="x-small", color="black" if s.n == 0 else "white")
    ref_x, ref_y, ref_e = [], [], []
    for x, (v, label) in enumerate(zip(variants, labels)):
        published = ref.ablation(v, label)
        if published is not None:
            mean, std = ref.parse(published.test_error)
            ref_x.append(x)
            ref_y.append(mean)
            ref_e.append(0.0 if math.isnan(std) else std)
    if ref_x:
        ax.errorbar([x + 0.25 for x in ref_x], ref_y, yerr=ref_e, fmt="o", mfc="none", color="black",
                    capsize=3, label=ref.LABEL)
    ax.set_xticks(xs)
    ax.set_xticklabels([literal_text(label) for label in labels], rotation=25, ha="right", fontsize="small")
    ax.set_ylabel("test error (%)")
    ax.set_title(literal_text(f"Ablations on {study.label(study.ablation_dataset)}"))
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    paths = _save(fig, out_dir, "ablation")
    plt.close(fig)
    return paths


def write_figures(study: Study, out_dir: str | Path) -> list[Path]:
    """Every figure of :meth:`Study.figure_names`; returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for dataset in study.searched_datasets():
        paths += search_curves(study, dataset, out_dir)
    paths += ablation_bars(study, out_dir)
    return paths
