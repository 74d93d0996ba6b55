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
    # several quoted chromosomes, each with its '|', are decoded one by one; words without
    # one ('add' 'g1' '|' 'g2') are one chromosome
    given = args.chromosome if all("|" in a for a in args.chromosome) else [" ".join(args.chromosome)]
    lines = _stdin_lines() if from_stdin else iter(given)
    decoded = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            chrom = Chromosome.from_text(line, DECODE_ALPHABET)
        except ChromosomeError as e:
            raise ChromosomeError(f"stdin line {number}: {e}" if from_stdin else str(e)) from None
        tree = decode(chrom, DECODE_ALPHABET)
        suffix = f"\t{coding_length(chrom, DECODE_ALPHABET)}" if args.orf else ""
        print(f"{tree}{suffix}", flush=from_stdin)
        decoded += 1
    if not decoded:
        raise UserError(f"no chromosome {'on stdin' if from_stdin else 'given'}: expected 'head | tail' text "
                        f"such as 'cat add g3 g7 | g1 g2 g9 g4 g5'{', one per line' if from_stdin else ''}")
    return 0


#: Longest stdin line read (a chromosome of the search space is a few hundred characters).
MAX_LINE = 1 << 16


def _stdin_lines():
    """stdin one line at a time, as a filter reads it (each line decoded as it comes); a
    line longer than :data:`MAX_LINE` (binary input, /dev/zero) is one error line."""
    from ..errors import UserError

    for number, line in enumerate(iter(lambda: sys.stdin.readline(MAX_LINE + 2), ""), 1):
        if len(line.rstrip("\n")) > MAX_LINE:
            raise UserError(f"stdin line {number}: longer than {MAX_LINE} characters, not a chromosome "
                            "('head | tail' text, one per line)")
        yield line
