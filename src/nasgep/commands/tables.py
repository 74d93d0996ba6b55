"""Write Tables I-III of a study, or pick the best search result of several seeds.

  nasgep tables --config config/paper.yaml --out results/paper/tables
      reads <results_dir> (layout: results/README.md) and writes table1/2/3 as .csv
      (numbers), .md, .tex and .html (mean ± std over seeds, RI, and the paper's
      published rows labelled "paper (reference)"). Runs that do not exist yet are
      marked, never invented.

  nasgep tables best --inputs search/cifar10/search/seed*/best.json --out best.json
      copies the best.json with the highest search fitness (validation accuracy; the
      earliest input on ties) and records the candidates under "selection". The inputs
      must be searches of one dataset; --out may be none of them, nor lie in the folder
      of a search, training or sample.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..cli import add_config_arguments, load_args_config, output_file
from ..io import atomic_write_json

NAME = "tables"
HELP = "write Tables I-III (CSV, Markdown, LaTeX, HTML) or select the best seed's best.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=("all", "best"), default="all",
                   help="all: write Tables I-III (default); best: select the best best.json")
    add_config_arguments(p, required=False)
    p.add_argument("--inputs", nargs="+", default=[], metavar="BEST_JSON",
                   help="with 'best': the best.json files to choose from")
    p.add_argument("--out", required=True,
                   help="all: folder for the tables; best: the best.json to write")


def run(args: argparse.Namespace) -> int:
    from .. import outdir
    from ..errors import UserError

    out = Path(args.out)
    if args.action == "best":
        from ..report import select_best

        if args.config or args.set:   # the choice needs none; a config named is still read, so a typo shows
            load_args_config(args)
        if not args.inputs:
            raise UserError("'tables best' needs --inputs BEST_JSON ...")
        folders = [p for p in args.inputs if Path(p).is_dir()]
        if folders:
            raise UserError(f"--inputs {folders[0]} is a folder, not a file (a search's best.json is expected)")
        missing = [p for p in args.inputs if not Path(p).is_file()]
        if missing:
            raise UserError(f"no such file: {', '.join(missing)}")
        output_file(args.out, "the selection", "best.json")
        check_best_out(out, [Path(p) for p in args.inputs])
        try:
            best = select_best(args.inputs)
        except ValueError as e:
            raise UserError(str(e)) from None
        atomic_write_json(out, best)
        print(f"{out}: fitness {best['fitness']} from {best['selection']['chosen']}")
        return 0

    from ..report.tables import write_tables
    from ..study import table_files

    if args.inputs:
        raise UserError("--inputs is only for 'tables best'")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; name a folder for the tables (it is created if absent)")
    outdir.refuse_inside_run(out, "the tables")
    study = study_from_args(args)
    names = [Path(name).name for name in table_files(study)]
    for path in outdir.write_outputs(out, "the tables", lambda folder: write_tables(study, folder), names):
        print(path)
    return 0


def check_best_out(out: Path, inputs: list[Path]) -> None:
    """Refuse an ``--out`` of 'tables best' that would replace a run's file: one of the
    inputs, or a file in the folder of a search, training, sample or evaluation."""
    from .. import outdir
    from ..errors import UserError

    same = [p for p in inputs if os.path.realpath(p) == os.path.realpath(out)]    # a loop of links: no error
    if same:
        raise UserError(f"--out {out} is one of the --inputs ({same[0]}); write the selection to a file of its own")
    outdir.refuse_inside_run(out, "the selection")
    outdir.refuse_foreign_file(out, "a selection of 'tables best'", "selection")


def study_from_args(args: argparse.Namespace):
    """The study (results folder) the config options name; it must exist."""
    from ..errors import UserError
    from ..report import Study

    study = Study(load_args_config(args))
    if not study.root.is_dir():
        what = "is a file, not a folder" if study.root.exists() else "does not exist"
        raise UserError(f"results folder {study.root} {what} (results_dir of the config)")
    return study
