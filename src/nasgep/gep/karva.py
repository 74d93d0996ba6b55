"""Karva decoding (Ferreira 2001): read a chromosome level by level into a tree.

The first symbol is the root; each level is filled left to right with as many of the
following symbols as the total arity of the level above, until no slot is open. What
follows is the non-coding region.
"""
from __future__ import annotations

from dataclasses import dataclass

from .chromosome import Chromosome
from .symbols import Alphabet


@dataclass(frozen=True)
class Node:
    """An expression-tree node; a terminal has no children."""

    symbol: str
    children: tuple["Node", ...] = ()

    def __str__(self) -> str:
        if not self.children:
            return self.symbol
        return f"{self.symbol}({', '.join(str(c) for c in self.children)})"

    def leaves(self) -> list[str]:
        """Terminal symbols, left to right (with repeats)."""
        if not self.children:
            return [self.symbol]
        return [leaf for child in self.children for leaf in child.leaves()]

    def walk(self):
        """Pre-order traversal."""
        yield self
        for child in self.children:
            yield from child.walk()


def coding_length(chromosome: Chromosome, alphabet: Alphabet) -> int:
    """Length of the open reading frame: how many leading symbols the tree uses."""
    needed, used = 1, 0
    while needed:
        symbol = chromosome.symbols[used]
        needed += alphabet.arity(symbol) - 1
        used += 1
    return used


def coding_symbols(chromosome: Chromosome, alphabet: Alphabet) -> tuple[str, ...]:
    return chromosome.symbols[: coding_length(chromosome, alphabet)]


def decode(chromosome: Chromosome, alphabet: Alphabet) -> Node:
    """Decode the coding region of ``chromosome`` into a :class:`Node` tree."""
    orf = coding_symbols(chromosome, alphabet)
    arities = [alphabet.arity(s) for s in orf]
    # children of symbol i start right after all symbols consumed by earlier levels
    child_start: list[int] = []
    nxt = 1
    for arity in arities:
        child_start.append(nxt)
        nxt += arity

    def build(i: int) -> Node:
        kids = tuple(build(child_start[i] + k) for k in range(arities[i]))
        return Node(orf[i], kids)

    return build(0)
