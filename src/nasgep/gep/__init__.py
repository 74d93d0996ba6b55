"""The Gene Expression Programming core: pure Python, no torch.

- :mod:`.symbols`     alphabets (function set with arities, terminal set)
- :mod:`.chromosome`  head/tail chromosomes, their text form and validation
- :mod:`.karva`       Karva decoding into expression trees, coding length (ORF)
- :mod:`.operators`   random chromosomes, tournament selection, the five GEP operators
"""
from .chromosome import Chromosome, ChromosomeError
from .karva import Node, coding_length, coding_symbols, decode
from .operators import (
    OperatorRates,
    breed,
    is_transposition,
    mutate,
    one_point,
    random_chromosome,
    ris_transposition,
    tournament,
    two_point,
)
from .symbols import Alphabet

__all__ = [
    "Alphabet",
    "Chromosome",
    "ChromosomeError",
    "Node",
    "OperatorRates",
    "breed",
    "coding_length",
    "coding_symbols",
    "decode",
    "is_transposition",
    "mutate",
    "one_point",
    "random_chromosome",
    "ris_transposition",
    "tournament",
    "two_point",
]
