r"""Print the decoded expression of chromosomes given in text form.

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
    from ..errors import UserError
    from ..gep import Chromosome, ChromosomeError, coding_length, decode
    from ..space import DECODE_ALPHABET

    from_stdin = args.chromosome == ["-"]
    lines = sys.stdin.read().splitlines() if from_stdin else [" ".join(args.chromosome)]
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        raise UserError(f"no chromosome {'on stdin' if from_stdin else 'given'}: expected 'head | tail' text "
                        f"such as 'cat add g3 g7 | g1 g2 g9 g4 g5'{', one per line' if from_stdin else ''}")
    for number, line in numbered:
        try:
            chrom = Chromosome.from_text(line, DECODE_ALPHABET)
        except ChromosomeError as e:
            raise ChromosomeError(f"stdin line {number}: {e}" if from_stdin else str(e)) from None
        tree = decode(chrom, DECODE_ALPHABET)
        suffix = f"\t{coding_length(chrom, DECODE_ALPHABET)}" if args.orf else ""
        print(f"{tree}{suffix}")
    return 0
