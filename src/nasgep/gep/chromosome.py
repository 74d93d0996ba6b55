"""Chromosomes: a head (functions or terminals) followed by a tail (terminals only).

Text form, the one users read in logs and write by hand: symbols separated by spaces,
head and tail separated by ``|``::

    cat add g3 g7 | g1 g2 g9 g4 g5
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError, quote
from .symbols import SYMBOL_RE, Alphabet


class ChromosomeError(UserError):
    """A chromosome that breaks the head/tail rules; the message names position and symbol
    (and quotes at most the first 80 characters of the chromosome)."""


@dataclass(frozen=True)
class Chromosome:
    """An immutable GEP chromosome: ``symbols[:head_length]`` is the head, the rest the tail."""

    symbols: tuple[str, ...]
    head_length: int

    @property
    def head(self) -> tuple[str, ...]:
        return self.symbols[: self.head_length]

    @property
    def tail(self) -> tuple[str, ...]:
        return self.symbols[self.head_length :]

    def __len__(self) -> int:
        return len(self.symbols)

    def __str__(self) -> str:
        return self.to_text()

    def to_text(self) -> str:
        return " ".join(self.head) + " | " + " ".join(self.tail)

    def replace(self, symbols: list[str] | tuple[str, ...]) -> Chromosome:
        """Same head length, new symbols (used by the operators)."""
        return Chromosome(tuple(symbols), self.head_length)

    @classmethod
    def from_text(cls, text: str, alphabet: Alphabet | None = None) -> Chromosome:
        """Parse ``"head symbols | tail symbols"``; validate against ``alphabet`` if given."""
        if not isinstance(text, str):
            raise ChromosomeError(f"expected a chromosome text such as 'add g1 g2 | g3 g4 g5', "
                                  f"got {type(text).__name__} {quote(text)}")
        if not text.strip():
            raise ChromosomeError("empty chromosome: expected 'head symbols | tail symbols', "
                                  "e.g. 'add g1 g2 | g3 g4 g5'")
        if text.count("|") != 1:
            raise ChromosomeError(
                f"{quote(text)}: expected exactly one '|' between head and tail, found {text.count('|')}"
            )
        head_text, tail_text = text.split("|")
        head, tail = head_text.split(), tail_text.split()
        if not head:
            raise ChromosomeError(f"{quote(text)}: the head is empty")
        for position, symbol in enumerate(head + tail):
            if not SYMBOL_RE.match(symbol):
                raise ChromosomeError(
                    f"{quote(text)}: position {position}: {quote(symbol)} is not a well-formed symbol"
                )
        chromosome = cls(tuple(head + tail), len(head))
        if alphabet is not None:
            chromosome.validate(alphabet)
        return chromosome

    def validate(self, alphabet: Alphabet) -> Chromosome:
        """Raise :class:`ChromosomeError` naming the first offending position and symbol."""
        h = self.head_length
        if h < 1:
            raise ChromosomeError(f"{quote(self.to_text())}: head length must be >= 1, got {h}")
        want_tail = alphabet.tail_length(h)
        if len(self.tail) != want_tail:
            raise ChromosomeError(
                f"{quote(self.to_text())}: a head of {h} needs a tail of {want_tail} symbols "
                f"(t = h*(n_max-1)+1), got {len(self.tail)}"
            )
        for position, symbol in enumerate(self.symbols):
            if position < h:
                if not (alphabet.is_function(symbol) or alphabet.is_terminal(symbol)):
                    raise ChromosomeError(
                        f"{quote(self.to_text())}: position {position} (head): unknown symbol {quote(symbol)}"
                        f"{_terminals_here(alphabet)}"
                    )
            elif not alphabet.is_terminal(symbol):
                what = "a function" if alphabet.is_function(symbol) else "an unknown symbol"
                raise ChromosomeError(
                    f"{quote(self.to_text())}: position {position} (tail): {quote(symbol)} is {what}; "
                    f"the tail holds terminals only{_terminals_here(alphabet)}"
                )
        return self


def _terminals_here(alphabet: Alphabet, most: int = 8) -> str:
    """`` (terminals here: a, b, ...)`` for a message: which symbols this chromosome may read
    (a reduction cell's genes, for one, cannot read the cell's raw inputs)."""
    names = alphabet.terminals
    if not names:
        return ""
    shown = ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")
    return f" (terminals here: {shown})"
