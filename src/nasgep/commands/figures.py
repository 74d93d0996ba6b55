"""Draw a study's figures from its results folder.

  nasgep figures --config config/paper.yaml --out results/paper/figures

writes, as PNG and SVG, search_curves_<dataset> (best and mean fitness per generation
of every seed, from each search's history.parquet; one panel per search method) and
ablation (Table I's test errors as bars, mean ± std over seeds, with the paper's
published values as hollow markers). The best cells are drawn by 'nasgep draw'.
"""
from __future__ import annotations

import argparse

from ..cli import add_config_arguments, output_dir

NAME = "figures"
HELP = "draw search curves and ablation bars (PNG and SVG)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, required=False)
    p.add_argument("--out", type=output_dir, required=True, help="folder for the figures")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .. import outdir
    from ..report.figures import write_figures
    from ..study import figure_files
    from .tables import study_from_args

    outdir.refuse_inside_run(args.out, "the figures")
    study = study_from_args(args)
    names = [Path(name).name for name in figure_files(study)]      # refused before drawing, not after
    for path in outdir.write_outputs(args.out, "the figures", lambda folder: write_figures(study, folder), names):
        print(path)
    return 0
