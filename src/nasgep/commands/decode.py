"""Print the decoded expression of chromosomes given in text form.

  nasgep decode "cat add g3 g7 | g1 g2 g9 g4 g5"    ->  cat(add(g7, g1), g3)
  printf 'add | sep_3x3(h1) h2\n' | nasgep decode -

Arities: add and cat take 2, each of the 19 operations 1, every other symbol is a terminal.
"""
from __future__ import annotations

import argparse
import sys

NAME = "decode"
HELP = "decode chromosomes (text form 'head | tail') into expression trees"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("chromosome", nargs="+",
                   help="a chromosome such as 'cat add g3 g7 | g1 g2 g9 g4 g5', or - to read one per line from stdin")
    p.add_argument("--orf", action="store_true", help="also print the coding length (ORF)")


def run(args: argparse.Namespace) -> int:
    from ..gep import Chromosome, coding_length, decode
    from ..space import DECODE_ALPHABET

    lines = sys.stdin.read().splitlines() if args.chromosome == ["-"] else [" ".join(args.chromosome)]
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        chrom = Chromosome.from_text(line, DECODE_ALPHABET)
        tree = decode(chrom, DECODE_ALPHABET)
        suffix = f"\t{coding_length(chrom, DECODE_ALPHABET)}" if args.orf else ""
        print(f"{tree}{suffix}")
    return 0
