"""Karva decoding (Ferreira 2001): read a chromosome level by level into a tree.

The first symbol is the root; each level is filled left to right with as many of the
following symbols as the total arity of the level above, until no slot is open. What
follows is the non-coding region.

Decoding, printing and walking are iterative, so a tree of any depth (a chain of
thousands of one-argument operations) never hits Python's recursion limit.
"""
from __future__ import annotations

from dataclasses import dataclass

from .chromosome import Chromosome
from .symbols import Alphabet


@dataclass(frozen=True)
class Node:
    """An expression-tree node; a terminal has no children."""

    symbol: str
    children: tuple[Node, ...] = ()

    def __str__(self) -> str:
        parts: list[str] = []
        stack: list[Node | str] = [self]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                parts.append(item)
            elif not item.children:
                parts.append(item.symbol)
            else:
                parts.append(f"{item.symbol}(")
                stack.append(")")
                for k, child in enumerate(reversed(item.children)):
                    stack.append(child)
                    if k < len(item.children) - 1:
                        stack.append(", ")
        return "".join(parts)

    def leaves(self) -> list[str]:
        """Terminal symbols, left to right (with repeats)."""
        return [node.symbol for node in self.walk() if not node.children]

    def walk(self):
        """Pre-order traversal."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def depth(self) -> int:
        """Nodes on the longest root-to-leaf path (a lone terminal has depth 1)."""
        deepest, stack = 0, [(self, 1)]
        while stack:
            node, d = stack.pop()
            deepest = max(deepest, d)
            stack.extend((child, d + 1) for child in node.children)
        return deepest

    def size(self) -> int:
        """Number of nodes."""
        return sum(1 for _ in self.walk())


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

    # every child comes after its parent in Karva order: build from the last symbol back
    nodes: list[Node | None] = [None] * len(orf)
    for i in range(len(orf) - 1, -1, -1):
        nodes[i] = Node(orf[i], tuple(nodes[child_start[i] + k] for k in range(arities[i])))
    return nodes[0]
