"""Alphabets: which symbols are functions (with their arity) and which are terminals.

Symbols are plain strings so chromosomes print, hash and serialise without ceremony;
an :class:`Alphabet` is the data that gives them meaning.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

#: A well-formed symbol: an identifier, optionally bound to an input, e.g. ``sep_3x3(h1)``.
SYMBOL_RE = re.compile(r"^[^\s|()]+(\([^\s|()]+\))?$")


@dataclass(frozen=True)
class Alphabet:
    """A function set (name -> arity >= 1) and a terminal set.

    ``terminals`` lists the terminals random draws pick from. ``terminal_pattern``, when
    given, additionally accepts any symbol matching it (open-ended sets such as gene
    ids ``g17`` whose members change as a gene pool evolves).
    """

    functions: Mapping[str, int]
    terminals: tuple[str, ...] = ()
    terminal_pattern: re.Pattern[str] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name, arity in self.functions.items():
            if arity < 1:
                raise ValueError(f"function {name!r} needs arity >= 1, got {arity}")
        clash = set(self.functions) & set(self.terminals)
        if clash:
            raise ValueError(f"symbols both function and terminal: {sorted(clash)}")

    @property
    def max_arity(self) -> int:
        return max(self.functions.values(), default=1)

    def tail_length(self, head_length: int) -> int:
        """Ferreira's rule t = h (n_max - 1) + 1: enough terminals for any head."""
        return head_length * (self.max_arity - 1) + 1

    def arity(self, symbol: str) -> int:
        """Arity of ``symbol`` (0 for a terminal); ``KeyError`` if it is not in the alphabet."""
        if symbol in self.functions:
            return self.functions[symbol]
        if self.is_terminal(symbol):
            return 0
        raise KeyError(symbol)

    def is_function(self, symbol: str) -> bool:
        return symbol in self.functions

    def is_terminal(self, symbol: str) -> bool:
        if symbol in self.functions:
            return False
        if symbol in self._terminal_set:
            return True
        return self.terminal_pattern is not None and bool(self.terminal_pattern.fullmatch(symbol))

    def with_terminals(self, terminals: tuple[str, ...] | list[str]) -> Alphabet:
        """The same functions over another terminal set (e.g. the current gene pool)."""
        return Alphabet(dict(self.functions), tuple(terminals), self.terminal_pattern)

    @property
    def function_names(self) -> tuple[str, ...]:
        return tuple(self.functions)

    @property
    def _terminal_set(self) -> frozenset[str]:
        # cached on first use; frozen dataclass, so go through object.__setattr__
        cached = self.__dict__.get("_tset")
        if cached is None:
            cached = frozenset(self.terminals)
            object.__setattr__(self, "_tset", cached)
        return cached
