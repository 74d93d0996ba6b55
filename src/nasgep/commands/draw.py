"""Draw a genome's normal and reduction cells like the paper's Figs. 4-5.

  nasgep draw best.json --out figures/cells          ->  normal.png/.svg, reduction.png/.svg
  nasgep draw genome.json --out out --title "CIFAR-10 best"

GENOME.json is a genome file (``nasgep-genome/1``) or any result file with a ``genome``
key (e.g. a search's best.json).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import output_dir

NAME = "draw"
HELP = "draw the normal and reduction cells of a genome (PNG and SVG)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("genome", type=Path, help="genome JSON file (or a result file with a 'genome' key)")
    p.add_argument("--out", type=output_dir, required=True, help="output folder (created if absent)")
    p.add_argument("--title", default=None,
                   help="title prefix; each figure is titled '<title>: normal cell' / '... reduction cell'")


def run(args: argparse.Namespace) -> int:
    from .. import outdir
    from ..draw import draw_cell
    from ..errors import UserError
    from ..space import Genome
    from ..study import FIGURE_FORMATS

    outdir.refuse_inside_run(args.out, "the drawings")      # a search's own cells/ among them
    genome = Genome.load(args.genome)
    def write(folder: Path) -> list[Path]:
        paths = []
        for pool, cell in (("normal", genome.normal), ("reduction", genome.reduction)):
            title = f"{args.title}: {pool} cell" if args.title else f"{pool} cell"
            try:
                paths += draw_cell(cell, folder / pool, title)
            except UserError as e:
                raise UserError(f"{args.genome}: {e}") from None
        return paths

    names = [f"{pool}.{ext}" for pool in ("normal", "reduction") for ext in FIGURE_FORMATS]
    for path in outdir.write_outputs(args.out, "the drawings", write, names):
        print(path)
    return 0
