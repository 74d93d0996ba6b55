"""The NASGEP search space as data (SPEC section 2): operations, gene and cell alphabets,
and the :class:`Genome` (normal cell, reduction cell and the genes they use).

Pure Python: the torch side (:mod:`nasgep.nn`) builds modules from what is decoded here.
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import UserError, clip, quote, read_user_text
from .gep import Alphabet, Chromosome, ChromosomeError, Node, coding_symbols, decode

#: Kernel shapes (height x width) of the depth-wise families.
KERNELS: tuple[str, ...] = ("3x3", "5x5", "3x5", "5x3", "1x7", "7x1")

#: The 19 operations of the paper: point-wise, depth-wise, separable (pw then dw) and
#: inverse separable (dw then pw). Each is a ReLU -> conv -> BN block mapping c to c channels.
OPERATIONS: tuple[str, ...] = (
    ("pw",)
    + tuple(f"dw_{k}" for k in KERNELS)
    + tuple(f"sep_{k}" for k in KERNELS)
    + tuple(f"isep_{k}" for k in KERNELS)
)

INPUTS: tuple[str, ...] = ("h1", "h2")  # h1 = h_{i-1}, h2 = h_{i-2}

Pool = Literal["normal", "reduction"]

GENE_FUNCTIONS: dict[str, int] = {"add": 2, **{op: 1 for op in OPERATIONS}}
CELL_FUNCTIONS: dict[str, int] = {"add": 2, "cat": 2}

BOUND_RE = re.compile(r"^(?P<op>[a-z0-9_]+)\((?P<input>h[12])\)$")
GENE_ID_RE = re.compile(r"g[0-9]+")   # ASCII digits: \d takes any, "g\u0661" (Arabic-Indic one) too


def bound(op: str, inp: str) -> str:
    """The terminal that applies ``op`` to cell input ``inp``: ``bound('pw', 'h1') == 'pw(h1)'``."""
    return f"{op}({inp})"


def parse_terminal(symbol: str) -> tuple[str | None, str]:
    """Split a gene terminal into (operation or None, input): ``'sep_3x3(h1)' -> ('sep_3x3', 'h1')``."""
    if symbol in INPUTS:
        return None, symbol
    m = BOUND_RE.match(symbol)
    if not m or m["op"] not in OPERATIONS:
        raise KeyError(symbol)
    return m["op"], m["input"]


BOUND_TERMINALS: tuple[str, ...] = tuple(bound(op, i) for i in INPUTS for op in OPERATIONS)

#: Gene alphabets. Raw inputs only in the normal pool: a reduction cell cannot add them
#: (paper III-C), so its genes read inputs only through (stride-2) operations.
GENE_ALPHABETS: dict[str, Alphabet] = {
    "normal": Alphabet(GENE_FUNCTIONS, INPUTS + BOUND_TERMINALS),
    "reduction": Alphabet(GENE_FUNCTIONS, BOUND_TERMINALS),
}

#: The cell alphabet; its terminals are the gene ids of the matching pool, which change as
#: the pool evolves, so ``cell_alphabet(pool_ids)`` fixes them for random draws.
CELL_ALPHABET = Alphabet(CELL_FUNCTIONS, (), GENE_ID_RE)

#: Everything ``nasgep decode`` understands: cell and gene functions, any other
#: well-formed symbol a terminal.
DECODE_ALPHABET = Alphabet({**GENE_FUNCTIONS, **CELL_FUNCTIONS}, (), re.compile(r"(?!(add|cat)$).+"))


def cell_alphabet(gene_ids: list[str] | tuple[str, ...]) -> Alphabet:
    return CELL_ALPHABET.with_terminals(tuple(gene_ids))


def gene_id(number: int) -> str:
    return f"g{number}"


#: Deepest expression tree (cell or gene) a genome may hold. Network building and drawing
#: recurse over the trees; a search with the paper's heads (4 and 1) makes trees of depth
#: 3 and 2, and the schema's head maximum (100) stays within this.
MAX_TREE_DEPTH = 128


class GenomeError(UserError):
    """A genome that does not describe a buildable pair of cells; the message names where."""


@dataclass(frozen=True)
class CellGenome:
    """One cell: its chromosome over gene ids and the gene chromosomes it refers to."""

    pool: Pool
    cell: Chromosome
    genes: Mapping[str, Chromosome] = field(default_factory=dict)

    def coding_genes(self) -> tuple[str, ...]:
        """Gene ids in the cell's coding region, in chromosome order, with repeats."""
        alpha = CELL_ALPHABET
        return tuple(s for s in coding_symbols(self.cell, alpha) if alpha.is_terminal(s))

    def tree(self) -> Node:
        return decode(self.cell, CELL_ALPHABET)

    def gene_tree(self, gid: str) -> Node:
        return decode(self.genes[gid], GENE_ALPHABETS[self.pool])

    def validate(self, where: str = "cell") -> CellGenome:
        try:
            self.cell.validate(CELL_ALPHABET)
        except ChromosomeError as e:
            raise GenomeError(f"{where}.cell: {e}") from None
        _check_depth(self.tree(), f"{where}.cell")
        for gid in self.coding_genes():
            if gid not in self.genes:
                raise GenomeError(f"{where}.cell uses gene {quote(gid)}, which {where}.genes lacks")
        for gid, chrom in self.genes.items():
            try:
                chrom.validate(GENE_ALPHABETS[self.pool])
            except ChromosomeError as e:
                raise GenomeError(f"{where}.genes.{clip(gid)}: {e}") from None
            _check_depth(self.gene_tree(gid), f"{where}.genes.{clip(gid)}")
        return self

    def used_only(self) -> CellGenome:
        """The same cell with only the genes its coding region uses."""
        keep = set(self.coding_genes())
        return CellGenome(self.pool, self.cell, {g: c for g, c in self.genes.items() if g in keep})

    def to_dict(self) -> dict:
        return {"cell": self.cell.to_text(),
                "genes": {g: c.to_text() for g, c in sorted(self.genes.items(), key=_gid_key)}}

    @classmethod
    def from_dict(cls, pool: Pool, data: Mapping, where: str = "cell") -> CellGenome:
        if not isinstance(data, Mapping) or "cell" not in data or "genes" not in data:
            raise GenomeError(f"{where}: expected an object with keys 'cell' and 'genes', got {_kind(data)}")
        try:
            cell = Chromosome.from_text(data["cell"])
        except ChromosomeError as e:
            raise GenomeError(f"{where}.cell: {e}") from None
        if not isinstance(data["genes"], Mapping):
            raise GenomeError(f"{where}.genes: expected an object of gene id -> chromosome text "
                              f"(e.g. {{\"g1\": \"pw | h1 h2\"}}), got {_kind(data['genes'])}")
        genes = {}
        for gid, text in data["genes"].items():
            if not GENE_ID_RE.fullmatch(gid):    # an unused one too: a key no cell can name is a mistake
                raise GenomeError(f"{where}.genes: {quote(gid)} is no gene id; expected g and digits 0-9, e.g. g1")
            try:
                genes[gid] = Chromosome.from_text(text)
            except ChromosomeError as e:
                raise GenomeError(f"{where}.genes.{clip(gid)}: {e}") from None
        return cls(pool, cell, genes).validate(where)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``json.loads``'s ``object_pairs_hook``: a key written twice in one object is an
    error (json keeps the last, silently)."""
    data: dict = {}
    for key, value in pairs:
        if key in data:
            raise GenomeError(f"duplicate key {quote(key)} in a JSON object; write each key once")
        data[key] = value
    return data


def _kind(value: object) -> str:
    """How a wrong JSON value is named in a message: its JSON type."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _check_depth(tree: Node, where: str) -> None:
    depth = tree.depth()
    if depth > MAX_TREE_DEPTH:
        raise GenomeError(f"{where}: an expression tree {depth} levels deep; at most {MAX_TREE_DEPTH} are "
                          f"supported")


def smallest_genomes() -> list[Genome]:
    """Candidates for the smallest network of the search space: both cells hold one gene,
    the normal one the identity of an input, the reduction one a single operation on an
    input (one per operation, on ``h1``: the previous cell's output, which every cell
    reads at its full channel count). Every network has the stem, the cells' input
    adapters and the classifier; more genes only add to them."""
    def cell(pool: Pool, terminal: str) -> CellGenome:
        gene = Chromosome((terminal,) * 3, 1)
        return CellGenome(pool, Chromosome(("g1", "g1", "g1"), 1), {"g1": gene})

    normal = [cell("normal", i) for i in INPUTS]
    reduction = [cell("reduction", bound(op, "h1")) for op in OPERATIONS]
    # the two cells are independent: vary one with the other fixed
    return [Genome(n, reduction[0]) for n in normal] + [Genome(normal[0], r) for r in reduction[1:]]


def _gid_key(item: tuple[str, object]) -> tuple[int, str]:
    gid = item[0]
    return (int(gid[1:]) if GENE_ID_RE.fullmatch(gid) else 1 << 30, gid)


@dataclass(frozen=True)
class Genome:
    """Everything that shapes a network: the normal and the reduction cell with their genes."""

    normal: CellGenome
    reduction: CellGenome

    FORMAT = "nasgep-genome/1"

    def validate(self) -> Genome:
        self.normal.validate("normal")
        self.reduction.validate("reduction")
        return self

    def to_dict(self) -> dict:
        return {"format": self.FORMAT, "normal": self.normal.to_dict(),
                "reduction": self.reduction.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping) -> Genome:
        if not isinstance(data, Mapping):
            raise GenomeError(f"a genome must be a JSON object with keys 'normal' and 'reduction', "
                              f"got {_kind(data)}")
        fmt = data.get("format", cls.FORMAT)
        if fmt != cls.FORMAT:
            raise GenomeError(f"format: expected {cls.FORMAT!r}, got {quote(fmt)}")
        for key in ("normal", "reduction"):
            if key not in data:
                raise GenomeError(f"missing key {key!r}")
        return cls(CellGenome.from_dict("normal", data["normal"], "normal"),
                   CellGenome.from_dict("reduction", data["reduction"], "reduction"))

    @classmethod
    def from_json(cls, text: str) -> Genome:
        return cls.from_dict(json.loads(text, object_pairs_hook=_unique_keys))

    @classmethod
    def load(cls, path: str | Path) -> Genome:
        """Read a genome JSON file (a bare genome, or a result file with a ``genome`` key)."""
        path = Path(path)
        text = read_user_text(path, "genome JSON file (e.g. a search's best.json)", GenomeError)
        if not text.strip():
            raise GenomeError(f"{path}: empty; expected a genome JSON file (e.g. a search's best.json)")
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise GenomeError(f"{path}: not valid JSON ({e})") from None
        except GenomeError as e:
            raise GenomeError(f"{path}: {e}") from None
        except ValueError:      # json reads whole numbers of at most sys.get_int_max_str_digits() digits
            raise GenomeError(f"{path}: not a genome file (a number of more than "
                              f"{sys.get_int_max_str_digits()} digits in it)") from None
        except RecursionError:
            raise GenomeError(f"{path}: JSON nested too deeply to be a genome") from None
        if isinstance(data, Mapping) and "genome" in data:
            data = data["genome"]
        elif isinstance(data, Mapping) and not {"normal", "reduction"} & set(data):
            raise GenomeError(f"{path}: not a genome file (no 'normal' and 'reduction' cells, no 'genome' key); "
                              "give a bare genome or a result file such as a search's best.json")
        try:
            return cls.from_dict(data)
        except GenomeError as e:
            raise GenomeError(f"{path}: {e}") from None

    def save(self, path: str | Path) -> None:
        from .io import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")
