"""Draw a study's figures from its results folder.

  nasgep figures --config config/paper.yaml --out results/paper/figures

writes, as PNG and SVG, search_curves_<dataset> (best and mean fitness per generation
of every seed, from each search's history.parquet; one panel per search method) and
ablation (Table I's test errors as bars, mean ± std over seeds, with the paper's
published values as hollow markers). The best cells are drawn by 'nasgep draw'.
"""
from __future__ import annotations

import argparse

NAME = "figures"
HELP = "draw search curves and ablation bars (PNG and SVG)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", action="extend", nargs="+", default=[], metavar="YAML",
                   help="configuration file(s), later ones win (default: the paper's settings)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration value, e.g. results_dir=results/x")
    p.add_argument("--out", required=True, help="folder for the figures")


def run(args: argparse.Namespace) -> int:
    from ..cli import UserError
    from ..config import load_config
    from ..report import Study
    from ..report.figures import write_figures

    config = load_config(args.config or None, args.set)
    study = Study(config)
    if not study.root.is_dir():
        raise UserError(f"results folder {study.root} does not exist (results_dir of the config)")
    for path in write_figures(study, args.out):
        print(path)
    return 0
