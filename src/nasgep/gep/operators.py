"""Random chromosomes, tournament selection and the five GEP operators (SPEC section 1).

Every function takes an explicit ``random.Random`` so that one seed reproduces a run.
Operators never break the head/tail rules: the tail only ever receives terminals.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .chromosome import Chromosome
from .symbols import Alphabet

T = TypeVar("T")


@dataclass(frozen=True)
class OperatorRates:
    """Probabilities of the reproduction operators (Ferreira's defaults, SPEC section 1).

    ``mutations`` is k in the per-symbol mutation rate k/L. ``head_functions_only`` is the
    NASGEP rule for cells: a head symbol mutates only into a function. ``function_bias`` is
    the chance that a freshly drawn head symbol is a function rather than a terminal
    (when both are allowed); it keeps large terminal sets from swamping the head.
    """

    mutations: float = 2.0
    is_transposition: float = 0.1
    ris_transposition: float = 0.1
    one_point: float = 0.3
    two_point: float = 0.3
    head_functions_only: bool = False
    function_bias: float = 0.5


def _draw_head_symbol(rng: random.Random, alphabet: Alphabet, rates: OperatorRates,
                      exclude: str | None = None) -> str:
    functions = alphabet.function_names
    terminals = alphabet.terminals
    if rates.head_functions_only or not terminals or rng.random() < rates.function_bias:
        pool = functions
    else:
        pool = terminals
    return _choice_except(rng, pool, exclude)


def _choice_except(rng: random.Random, pool: Sequence[str], exclude: str | None) -> str:
    """Uniform draw from ``pool``, avoiding ``exclude`` when another symbol exists."""
    if exclude is not None and len(pool) > 1 and exclude in pool:
        pick = rng.randrange(len(pool) - 1)
        candidate = pool[pick]
        return pool[-1] if candidate == exclude else candidate
    return pool[rng.randrange(len(pool))]


def random_chromosome(rng: random.Random, head_length: int, alphabet: Alphabet,
                      rates: OperatorRates = OperatorRates()) -> Chromosome:
    """A random valid chromosome over ``alphabet`` (draws terminals from ``alphabet.terminals``)."""
    if not alphabet.terminals:
        raise ValueError("cannot draw a chromosome: the alphabet has no terminals to draw from")
    head = [_draw_head_symbol(rng, alphabet, rates) for _ in range(head_length)]
    tail = [rng.choice(alphabet.terminals) for _ in range(alphabet.tail_length(head_length))]
    return Chromosome(tuple(head + tail), head_length)


def mutate(rng: random.Random, chromosome: Chromosome, alphabet: Alphabet,
           rates: OperatorRates) -> Chromosome:
    """Point mutation, each symbol with probability k/L.

    A head symbol becomes any function or terminal (only a function when
    ``rates.head_functions_only``); a tail symbol becomes another terminal.
    """
    symbols = list(chromosome.symbols)
    p = min(1.0, rates.mutations / len(symbols))
    for i, old in enumerate(symbols):
        if rng.random() >= p:
            continue
        if i < chromosome.head_length:
            symbols[i] = _draw_head_symbol(rng, alphabet, rates, exclude=old)
        else:
            symbols[i] = _choice_except(rng, alphabet.terminals, old)
    return chromosome.replace(symbols)


def _insert_into_head(chromosome: Chromosome, segment: Sequence[str], at: int) -> Chromosome:
    h = chromosome.head_length
    head = list(chromosome.head[:at]) + list(segment) + list(chromosome.head[at:])
    return chromosome.replace(head[:h] + list(chromosome.tail))


def _segment(rng: random.Random, symbols: Sequence[str], start: int, end: int) -> list[str]:
    length = rng.randint(1, 3)
    return list(symbols[start:min(start + length, end)])


def is_transposition(rng: random.Random, chromosome: Chromosome) -> Chromosome:
    """Insertion-sequence transposition.

    A segment of 1-3 symbols from anywhere is copied into the head at any position but
    the root; the head shifts right and is cut back to h; the tail is untouched.
    """
    h = chromosome.head_length
    if h < 2:
        return chromosome
    start = rng.randrange(len(chromosome))
    segment = _segment(rng, chromosome.symbols, start, len(chromosome))
    return _insert_into_head(chromosome, segment, rng.randrange(1, h))


def ris_transposition(rng: random.Random, chromosome: Chromosome, alphabet: Alphabet) -> Chromosome:
    """Root transposition: from a random head position scan right to the first function and
    copy a 1-3 symbol segment starting there to the root. No function found: unchanged."""
    h = chromosome.head_length
    pos = rng.randrange(h)
    while pos < h and not alphabet.is_function(chromosome.symbols[pos]):
        pos += 1
    if pos == h:
        return chromosome
    segment = _segment(rng, chromosome.symbols, pos, h)
    return _insert_into_head(chromosome, segment, 0)


def one_point(rng: random.Random, a: Chromosome, b: Chromosome) -> tuple[Chromosome, Chromosome]:
    """Swap everything after one cut point common to both parents."""
    cut = rng.randrange(1, len(a))
    return (a.replace(a.symbols[:cut] + b.symbols[cut:]),
            b.replace(b.symbols[:cut] + a.symbols[cut:]))


def two_point(rng: random.Random, a: Chromosome, b: Chromosome) -> tuple[Chromosome, Chromosome]:
    """Swap the material between two cut points common to both parents."""
    i, j = sorted(rng.sample(range(len(a) + 1), 2))
    return (a.replace(a.symbols[:i] + b.symbols[i:j] + a.symbols[j:]),
            b.replace(b.symbols[:i] + a.symbols[i:j] + b.symbols[j:]))


def breed(rng: random.Random, mother: Chromosome, father: Chromosome, alphabet: Alphabet,
          rates: OperatorRates) -> Chromosome:
    """One child from a pair of parents, operators applied in the paper's order.

    Mutation, IS, RIS (each parent), then one-point and two-point recombination of the
    pair; of the two resulting chromosomes one is kept at random.
    """
    if len(mother) != len(father) or mother.head_length != father.head_length:
        raise ValueError(f"parents differ in shape: {mother} / {father}")
    pair = []
    for parent in (mother, father):
        c = mutate(rng, parent, alphabet, rates)
        if rng.random() < rates.is_transposition:
            c = is_transposition(rng, c)
        if rng.random() < rates.ris_transposition:
            c = ris_transposition(rng, c, alphabet)
        pair.append(c)
    a, b = pair
    if rng.random() < rates.one_point:
        a, b = one_point(rng, a, b)
    if rng.random() < rates.two_point:
        a, b = two_point(rng, a, b)
    return a if rng.random() < 0.5 else b


def tournament(rng: random.Random, candidates: Sequence[T], fitness: Callable[[T], float],
               size: int = 3) -> T:
    """Tournament selection without replacement: the fittest of ``size`` distinct draws
    (ties go to the earlier draw)."""
    if not candidates:
        raise ValueError("tournament over an empty population")
    entrants = rng.sample(list(candidates), min(size, len(candidates)))
    return max(entrants, key=fitness)
