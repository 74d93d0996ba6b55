"""Cell drawings: the graph they show, the layout's guarantees, the files and the CLI."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nasgep.cli import main
from nasgep.draw import cell_graph, draw_cell, edge_route, layout
from nasgep.gep import OperatorRates, random_chromosome
from nasgep.space import GENE_ALPHABETS, OPERATIONS, CellGenome, Genome, cell_alphabet

POOL_IDS = tuple(f"g{i}" for i in range(8))

HAND = Genome.from_dict({
    "normal": {"cell": "add cat g3 | g1 g2 g1 g1",
               "genes": {"g1": "add | sep_3x3(h1) h2", "g2": "sep_3x3 | dw_5x5(h1) h2",
                         "g3": "h1 | h1 h1"}},
    "reduction": {"cell": "cat | g1 g2",
                  "genes": {"g1": "pw(h1) | pw(h1) pw(h1)", "g2": "isep_1x7 | dw_3x5(h2) pw(h1)"}},
})


def random_cell(seed: int, pool: str) -> CellGenome:
    rng = random.Random(seed)
    genes = {g: random_chromosome(rng, 1, GENE_ALPHABETS[pool]) for g in POOL_IDS}
    cell = random_chromosome(rng, 4, cell_alphabet(POOL_IDS), OperatorRates(head_functions_only=True))
    return CellGenome(pool, cell, genes)


def test_graph_of_a_hand_written_normal_cell():
    g = cell_graph(HAND.normal)
    labels = sorted(n.label for n in g.nodes)
    # inputs, sep_3x3 + add (g1), dw_5x5 + sep_3x3 (g2), g3 = identity, cat, add, output
    assert labels == sorted([r"$h_{i-2}$", r"$h_{i-1}$", "sep_3x3", "add", "dw_5x5", "sep_3x3",
                             "g3: identity", "concat", "add", r"$h_i$"])
    assert set(g.genes) == {"g1_0", "g2_0"}  # boxes; the identity gene is its own node
    identity, = (n for n in g.nodes if n.kind == "identity")
    assert identity.producers == [1] and identity.gene == "g3_0"  # reads h_{i-1}


def test_reduction_cell_labels_stride_two_exactly_where_an_op_reads_an_input():
    g = cell_graph(HAND.reduction)
    ops = {n.label for n in g.nodes if n.kind not in ("input", "output", "add", "cat")}
    assert ops == {"pw\nstride 2", "dw_3x5\nstride 2", "isep_1x7"}


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), pool=st.sampled_from(["normal", "reduction"]))
def test_layout_guarantees(seed, pool):
    genome = random_cell(seed, pool)
    graph = cell_graph(genome)
    columns = layout(graph)
    nodes = graph.nodes
    # one node per operation in the coding genes, plus inputs, functions and output
    n_ops = sum(1 for gid in genome.coding_genes() for n in genome.gene_tree(gid).walk()
                if n.symbol in OPERATIONS or "(" in n.symbol)
    assert sum(n.kind in ("pw", "dw", "sep", "isep") for n in nodes) == n_ops
    # data flows down; inputs on top, the output alone at the bottom
    assert all(nodes[p].layer < n.layer for n in nodes for p in n.producers)
    assert [n.layer for n in nodes[:2]] == [0, 0]
    assert [n.kind for n in nodes if n.layer == max(m.layer for m in nodes)] == ["output"]
    # no two nodes in one spot; gene boxes (column ranges) do not overlap
    spots = [(n.x, n.layer) for n in nodes]
    assert len(spots) == len(set(spots))
    ranges = sorted((min(n.x for n in nodes if n.gene == o), max(n.x for n in nodes if n.gene == o))
                    for o in graph.genes)
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))
    # no edge passes through a node other than its two ends
    for edge in graph.edges():
        route = edge_route(graph, columns, edge)
        for x, layer in route[1:-1]:  # bends
            assert (x, int(layer)) not in spots
        for (x0, l0), (x1, l1) in zip(route, route[1:]):
            if x0 == x1:  # vertical run: no node strictly between its ends
                assert not [m for m in nodes if m.x == x0 and l0 < m.layer < l1]


def test_identity_genes_used_twice_are_two_nodes(tmp_path):
    # add(g1, g1) with g1 the identity of h1; g3 adds h_{i-1} to itself inside a gene
    genome = CellGenome.from_dict("normal", {"cell": "cat add g3 | g1 g1 g1 g1",
                                             "genes": {"g1": "h1 | h1 h1", "g3": "add | h1 h1"}})
    graph = cell_graph(genome)
    layout(graph)
    identities = [n for n in graph.nodes if n.kind == "identity"]
    assert len(identities) == 2 and identities[0].x != identities[1].x
    gene_add, = (n for n in graph.nodes if n.gene == "g3_0")
    assert gene_add.producers == [1, 1]  # drawn as two arcs
    assert all(p.stat().st_size > 0 for p in draw_cell(genome, tmp_path / "twice"))


def test_draw_cell_writes_png_and_svg(tmp_path):
    written = draw_cell(HAND.reduction, tmp_path / "sub" / "reduction", title="hand")
    assert [p.name for p in written] == ["reduction.png", "reduction.svg"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = written[1].read_text()
    assert "<svg" in svg and "stride 2" in svg


@pytest.mark.parametrize("seed", [1, 2])
def test_draw_random_cells(tmp_path, seed):
    for pool in ("normal", "reduction"):
        png, svg = draw_cell(random_cell(seed, pool), tmp_path / pool)
        assert png.stat().st_size > 5_000 and svg.stat().st_size > 5_000


def test_cli_draw(tmp_path, capsys):
    path = tmp_path / "best.json"
    path.write_text('{"fitness": 0.9, "genome": ' + HAND.to_json() + "}")
    assert main(["draw", str(path), "--out", str(tmp_path / "out"), "--title", "CIFAR-10"]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [".nasgep-outputs.json", "normal.png", "normal.svg", "reduction.png", "reduction.svg"]
    assert "normal.png" in capsys.readouterr().out


def test_a_title_with_dollar_signs_is_drawn_as_written(tmp_path):
    """A '$' would start matplotlib's math mode; an unpaired one failed to parse."""
    path = tmp_path / "best.json"
    path.write_text('{"fitness": 0.9, "genome": ' + HAND.to_json() + "}")
    assert main(["draw", str(path), "--out", str(tmp_path / "out"), "--title", "$x^$ costs 5$"]) == 0
    assert "$x^$ costs 5$" in (tmp_path / "out" / "normal.svg").read_text()


def test_cli_draw_missing_file_names_it(tmp_path, capsys):
    missing = tmp_path / "nope.json"
    assert main(["draw", str(missing), "--out", str(tmp_path)]) == 2
    assert str(missing) in capsys.readouterr().err
