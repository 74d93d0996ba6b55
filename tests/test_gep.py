"""The GEP core: Karva decoding, validation, text form and the five operators."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasgep.gep import (
    Alphabet,
    Chromosome,
    ChromosomeError,
    OperatorRates,
    breed,
    coding_length,
    decode,
    is_transposition,
    mutate,
    one_point,
    random_chromosome,
    ris_transposition,
    tournament,
    two_point,
)
from nasgep.space import (
    CELL_ALPHABET,
    DECODE_ALPHABET,
    GENE_ALPHABETS,
    OPERATIONS,
    CellGenome,
    Genome,
    GenomeError,
    cell_alphabet,
)

POOL_IDS = tuple(f"g{i}" for i in range(12))
CELLS = cell_alphabet(POOL_IDS)
ARITH = Alphabet({"+": 2, "*": 2, "Q": 1}, ("a", "b"))


def dec(text: str, alphabet: Alphabet = DECODE_ALPHABET) -> str:
    return str(decode(Chromosome.from_text(text, alphabet), alphabet))


# --- hand-worked decodings -------------------------------------------------------------

@pytest.mark.parametrize("text, expected, orf", [
    # the example: cat's children are add and g3; add's are the next two symbols
    ("cat add g3 g7 | g1 g2 g9 g4 g5", "cat(add(g7, g1), g3)", 5),
    # SPEC section 2 gene examples
    ("add | sep_3x3(h1) h2", "add(sep_3x3(h1), h2)", 3),
    ("sep_3x3 | dw_5x5(h1) h2", "sep_3x3(dw_5x5(h1))", 2),   # last symbol non-coding
    ("h1 | pw(h2) h2", "h1", 1),                               # identity of h1
    # a terminal root: everything after it is non-coding
    ("g4 cat add g1 | g2 g3 g5 g6 g7", "g4", 1),
    # full head of functions: a balanced tree using the whole tail
    ("add cat add cat | g1 g2 g3 g4 g5", "add(cat(cat(g4, g5), g1), add(g2, g3))", 9),
    # second level partly terminal
    ("cat g1 add g2 | g3 g4 g5 g6 g7", "cat(g1, add(g2, g3))", 5),
])
def test_hand_worked_decodings(text, expected, orf):
    assert dec(text) == expected
    assert coding_length(Chromosome.from_text(text), DECODE_ALPHABET) == orf


def test_ferreira_arithmetic_example():
    # Ferreira (2001), Fig. 2 style: Q*+-abcd -> sqrt((a+b)*(c-d)), here with +,*,Q
    alpha = Alphabet({"Q": 1, "*": 2, "+": 2}, ("a", "b", "c", "d"))
    chrom = Chromosome.from_text("Q * + + | a b c d a", alpha)
    assert str(decode(chrom, alpha)) == "Q(*(+(a, b), +(c, d)))"


def test_tree_leaves_and_walk():
    tree = decode(Chromosome.from_text("cat add g3 g7 | g1 g2 g9 g4 g5"), CELL_ALPHABET)
    assert tree.leaves() == ["g7", "g1", "g3"]
    assert [n.symbol for n in tree.walk()] == ["cat", "add", "g7", "g1", "g3"]


# --- validation ------------------------------------------------------------------------

@pytest.mark.parametrize("text, fragment", [
    ("cat add g3 g7 | g1 add g9 g4 g5", "position 5 (tail): 'add' is a function"),
    ("cat add g3 g7 | g1 g2 g9 g4", "needs a tail of 5"),
    ("cat add g3 g7 g1 g2 g9 g4 g5", "exactly one '|'"),
    ("add | sep_3x3(h1 h2", "'sep_3x3(h1' is not a well-formed symbol"),
    ("| g1", "head is empty"),
])
def test_invalid_chromosomes_name_position_and_symbol(text, fragment):
    with pytest.raises(ChromosomeError, match=None) as info:
        Chromosome.from_text(text, DECODE_ALPHABET)
    assert fragment in str(info.value)


def test_unknown_symbol_in_gene_alphabet():
    with pytest.raises(ChromosomeError, match=r"position 1 \(tail\): 'conv_9x9\(h1\)' is an unknown symbol"):
        Chromosome.from_text("add | conv_9x9(h1) h2", GENE_ALPHABETS["normal"])
    # raw inputs are not terminals of the reduction pool
    with pytest.raises(ChromosomeError, match="'h2'"):
        Chromosome.from_text("add | pw(h1) h2", GENE_ALPHABETS["reduction"])


def test_alphabets_of_the_paper():
    assert len(OPERATIONS) == 19 and len(set(OPERATIONS)) == 19
    normal, reduction = GENE_ALPHABETS["normal"], GENE_ALPHABETS["reduction"]
    assert len(normal.functions) == 20 and normal.arity("add") == 2 and normal.arity("isep_7x1") == 1
    assert len(normal.terminals) == 2 + 2 * 19 and len(reduction.terminals) == 2 * 19
    assert "h1" in normal.terminals and "h1" not in reduction.terminals
    assert normal.tail_length(1) == 2 and CELL_ALPHABET.tail_length(4) == 5


# --- text form and JSON ----------------------------------------------------------------

def chromosomes(alphabet: Alphabet, head: int):
    return st.integers(0, 2**32 - 1).map(
        lambda s: random_chromosome(random.Random(s), head, alphabet, OperatorRates()))


@given(chromosomes(CELLS, 4))
def test_text_round_trip_cells(c):
    assert Chromosome.from_text(c.to_text(), CELLS) == c


@given(chromosomes(GENE_ALPHABETS["normal"], 1))
def test_text_round_trip_genes(c):
    assert Chromosome.from_text(str(c), GENE_ALPHABETS["normal"]) == c


def _random_genome(seed: int) -> Genome:
    rng = random.Random(seed)
    cells = {}
    for pool in ("normal", "reduction"):
        genes = {g: random_chromosome(rng, 1, GENE_ALPHABETS[pool]) for g in POOL_IDS}
        cell = random_chromosome(rng, 4, CELLS, OperatorRates(head_functions_only=True))
        cells[pool] = CellGenome(pool, cell, genes).used_only()
    return Genome(cells["normal"], cells["reduction"]).validate()


@given(st.integers(0, 10_000))
def test_genome_json_round_trip(seed):
    g = _random_genome(seed)
    again = Genome.from_json(json.dumps(json.loads(g.to_json())))
    assert again == g
    assert set(again.normal.genes) == set(g.normal.coding_genes())


def test_genome_errors_name_the_key(tmp_path):
    genome = _random_genome(1)
    first = genome.normal.coding_genes()[0]      # the first gene the cell's tree uses
    g = genome.to_dict()
    g["normal"]["genes"] = {}
    with pytest.raises(GenomeError, match=rf"normal\.cell uses gene '{first}', which normal\.genes lacks"):
        Genome.from_dict(g)
    bad = _random_genome(2).to_dict()
    gid = next(iter(bad["reduction"]["genes"]))
    bad["reduction"]["genes"][gid] = "add | h1 h2"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(GenomeError, match=rf"bad.json: reduction.genes.{gid}: .*'h1'"):
        Genome.load(path)


# --- operators (property tests) --------------------------------------------------------

ALPHABETS = [(CELLS, 4, True), (CELLS, 4, False), (GENE_ALPHABETS["normal"], 1, False),
             (GENE_ALPHABETS["reduction"], 1, False), (ARITH, 5, False), (ARITH, 1, False)]


def _case(draw):
    alphabet, head, functions_only = draw(st.sampled_from(ALPHABETS))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    rates = OperatorRates(mutations=draw(st.floats(0, 4)), head_functions_only=functions_only)
    a = random_chromosome(rng, head, alphabet, rates)
    b = random_chromosome(rng, head, alphabet, rates)
    return alphabet, rates, rng, a, b


case = st.composite(_case)


def _assert_valid(c: Chromosome, alphabet: Alphabet, head: int, length: int):
    assert c.head_length == head and len(c) == length
    c.validate(alphabet)   # tail terminals only, every symbol known
    assert all(alphabet.is_terminal(s) for s in c.tail)


@given(case())
def test_mutation_keeps_rules(args):
    alphabet, rates, rng, a, _ = args
    m = mutate(rng, a, alphabet, rates)
    _assert_valid(m, alphabet, a.head_length, len(a))
    if rates.head_functions_only:
        # the NASGEP rule: a mutated head position never becomes a terminal
        for old, new in zip(a.head, m.head):
            if old != new:
                assert alphabet.is_function(new)


@settings(max_examples=200)
@given(st.integers(0, 2**32 - 1))
def test_cell_head_mutation_never_introduces_terminals(seed):
    rng = random.Random(seed)
    rates = OperatorRates(mutations=9, head_functions_only=True)   # mutate (almost) everything
    c = random_chromosome(rng, 4, CELLS, rates)
    assert all(CELLS.is_function(s) for s in c.head)
    for _ in range(5):
        c = mutate(rng, c, CELLS, rates)
        assert all(CELLS.is_function(s) for s in c.head)


@given(case())
def test_is_transposition(args):
    alphabet, _, rng, a, _ = args
    t = is_transposition(rng, a)
    _assert_valid(t, alphabet, a.head_length, len(a))
    assert t.symbols[0] == a.symbols[0]          # never the root
    assert t.tail == a.tail                      # tail untouched


@given(case())
def test_ris_transposition(args):
    alphabet, _, rng, a, _ = args
    r = ris_transposition(rng, a, alphabet)
    _assert_valid(r, alphabet, a.head_length, len(a))
    assert r == a or alphabet.is_function(r.symbols[0])
    assert r.tail == a.tail


@given(case())
def test_recombination_conserves_symbols_per_position(args):
    alphabet, _, rng, a, b = args
    for op in (one_point, two_point):
        c, d = op(rng, a, b)
        for x in (c, d):
            _assert_valid(x, alphabet, a.head_length, len(a))
        for i in range(len(a)):
            assert Counter([c.symbols[i], d.symbols[i]]) == Counter([a.symbols[i], b.symbols[i]])


@given(case())
def test_breed_yields_valid_child(args):
    alphabet, rates, rng, a, b = args
    _assert_valid(breed(rng, a, b, alphabet, rates), alphabet, a.head_length, len(a))


def test_operators_actually_change_things():
    rng = random.Random(0)
    a = Chromosome.from_text("cat add g3 g7 | g1 g2 g9 g4 g5", CELLS)
    b = Chromosome.from_text("add add cat cat | g8 g8 g8 g8 g8", CELLS)
    assert one_point(random.Random(3), a, b) != (a, b)
    assert {mutate(rng, a, CELLS, OperatorRates(mutations=3)) for _ in range(20)} != {a}
    assert {is_transposition(rng, a) for _ in range(20)} != {a}
    # RIS on a head of terminals only: nothing to move
    t = Chromosome.from_text("g1 g2 g3 g4 | g1 g2 g3 g4 g5", CELLS)
    assert all(ris_transposition(rng, t, CELLS) == t for _ in range(20))


def test_same_seed_same_sequence():
    def run(seed):
        rng = random.Random(seed)
        rates = OperatorRates(head_functions_only=True)
        pop = [random_chromosome(rng, 4, CELLS, rates) for _ in range(6)]
        for _ in range(10):
            pa = tournament(rng, pop, fitness=lambda c: c.symbols.count("cat"))
            pb = tournament(rng, pop, fitness=lambda c: c.symbols.count("cat"))
            pop.append(breed(rng, pa, pb, CELLS, rates))
        return [c.to_text() for c in pop]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_tournament_picks_the_fittest_of_distinct_entrants():
    rng = random.Random(1)
    pop = list(range(10))
    wins = Counter(tournament(rng, pop, fitness=lambda x: x, size=3) for _ in range(2000))
    assert 0 not in wins and 1 not in wins          # can never beat two distinct others
    assert wins[9] > wins[5] > 0
    assert tournament(rng, pop, lambda x: x, size=10) == 9


#: the GEP core and the search strategy: none of it may import torch (docs/architecture.md)
GEP_CORE = ("nasgep.gep", "nasgep.space", "nasgep.search.settings", "nasgep.search.state",
            "nasgep.search.breeding", "nasgep.search.loop", "nasgep.search.evaluator",
            "nasgep.search.checkpoint", "nasgep.search.sample")


def torch_free_modules() -> list[str]:
    """The modules docs/architecture.md's table says import no torch (``torch?`` no)."""
    import re

    table = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `([\w.]+)`( \([^)|]*\))?[^|]*\| no\b", table, re.M)
    modules = []
    for name, parts in rows:   # "`report` (`tables`, `figures`, `reference`)" names its modules too
        modules += [f"nasgep.{name}", *(f"nasgep.{name}.{sub}" for sub in re.findall(r"`(\w+)`", parts))]
    return modules


def test_gep_core_search_loop_and_space_never_import_torch():
    """Imported in a fresh interpreter, the GEP core and every module the architecture
    says is torch-free leave torch out of sys.modules (a search's settings are checked,
    and the workflow plans, without paying for it)."""
    import subprocess
    import sys

    documented = torch_free_modules()
    assert set(GEP_CORE) - {"nasgep.gep"} <= set(documented), "docs/architecture.md lists the GEP core as torch-free"
    modules = sorted({*GEP_CORE, *documented})
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "    if 'torch' in sys.modules:\n"
            "        print(name)\n"
            "        break\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {out.stdout.strip()} imported torch"
