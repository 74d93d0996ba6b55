"""Cell drawings like the paper's Figs. 4-5, with matplotlib only (no graphviz binary).

A cell is drawn as the graph it computes: the two inputs h_{i-2} and h_{i-1} at the top,
every operation, ``add`` and ``concat`` node below them, the output h_i at the bottom.
Each gene occurrence sits in a dashed box labelled with its id; a gene that is the
identity of an input is a small dashed node ``g3: identity``. In a reduction cell the
operations that read an input run with stride 2 and say so. The 1x1 blocks that only
adapt channel counts (input preprocessing, matching before an ``add``, the final
projection) are left out, as in the paper's figures.

Layout (computed here, :func:`layout`): a node's layer is the length of the longest
path from an input to it, so data flows top-down and operations that read an input sit
right under the inputs; horizontally the expression tree is laid out leaves left to
right, each parent centred over its children, so every gene occupies its own column
range and boxes never overlap. An edge spanning several layers runs down a column no
other node uses (:func:`edge_route`), so edges never cross boxes.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .gep import Node
from .io import atomic_save_figure, literal_text
from .space import CellGenome, parse_terminal

#: Most boxes (operations, adds, concats, inputs) one drawing holds. The paper's cells
#: have about 10; past this a figure is unreadable, and its size (about 1.25 inch per
#: column) would make the PNG enormous.
MAX_DRAW_NODES = 150

#: fill colour per node kind; operations by family, so a figure reads at a glance
COLOURS: dict[str, str] = {
    "input": "#d9d9d9", "output": "#ffd966", "add": "#f4b183", "cat": "#a9d18e",
    "identity": "#ffffff", "pw": "#bdd7ee", "dw": "#9dc3e6", "sep": "#c5b0d5", "isep": "#e3c9e8",
}
#: the colour key printed under each drawing
FAMILIES: dict[str, str] = {
    "pw": "pw: point-wise 1x1", "dw": "dw: depth-wise",
    "sep": "sep: point-wise, then depth-wise", "isep": "isep: depth-wise, then point-wise",
}
INPUT_LABELS: dict[str, str] = {"h2": r"$h_{i-2}$", "h1": r"$h_{i-1}$"}
FUNCTION_LABELS: dict[str, str] = {"add": "add", "cat": "concat"}

Edge = tuple[int, int, int]  # (producer, consumer, argument position in the consumer)


@dataclass
class DrawNode:
    """One box of the drawing; ``producers`` are the nodes whose output it reads."""

    kind: str                      # input, output, add, cat, identity, or an operation family
    label: str
    producers: list[int] = field(default_factory=list)
    gene: str | None = None        # gene occurrence it belongs to, e.g. 'g7_0'
    x: float = 0.0
    layer: int = 0


@dataclass
class CellGraph:
    """The drawable graph of one cell: node 0 is h_{i-2}, node 1 h_{i-1}."""

    nodes: list[DrawNode]
    output: int
    genes: dict[str, str]          # occurrence with operations -> gene id (one dashed box each)

    def edges(self) -> list[Edge]:
        return [(p, i, k) for i, n in enumerate(self.nodes) for k, p in enumerate(n.producers)]


def cell_graph(genome: CellGenome) -> CellGraph:
    """Inline every gene tree into the cell tree (the same rules as :mod:`nasgep.nn.cell`:
    operations that read an input are strided in a reduction cell)."""
    nodes: list[DrawNode] = [DrawNode("input", INPUT_LABELS[name]) for name in ("h2", "h1")]
    inputs = {"h2": 0, "h1": 1}
    genes: dict[str, str] = {}
    seen: Counter[str] = Counter()
    reduction = genome.pool == "reduction"

    def add(kind: str, label: str, producers: list[int], gene: str | None = None) -> int:
        nodes.append(DrawNode(kind, label, producers, gene))
        return len(nodes) - 1

    def operation(name: str, producer: int, gene: str) -> int:
        strided = reduction and producer in inputs.values()
        return add(name.split("_")[0], name + ("\nstride 2" if strided else ""), [producer], gene)

    def gene_node(node: Node, gene: str) -> int:
        if not node.children:
            op, inp = parse_terminal(node.symbol)
            return operation(op, inputs[inp], gene) if op else inputs[inp]
        kids = [gene_node(child, gene) for child in node.children]
        if node.symbol == "add":
            return add("add", "add", kids, gene)
        return operation(node.symbol, kids[0], gene)

    def cell_node(node: Node) -> int:
        if node.children:
            kids = [cell_node(child) for child in node.children]
            return add(node.symbol, FUNCTION_LABELS[node.symbol], kids)
        gid = node.symbol
        occurrence = f"{gid}_{seen[gid]}"
        seen[gid] += 1
        out = gene_node(genome.gene_tree(gid), occurrence)
        if out in inputs.values():  # the gene is the identity of an input
            return add("identity", f"{gid}: identity", [out], occurrence)
        genes[occurrence] = gid
        return out

    output = add("output", r"$h_i$", [cell_node(genome.tree())])
    return CellGraph(nodes, output, genes)


def _drawable(genome: CellGenome) -> CellGenome:
    """``genome``, or a :class:`UserError` when it is too large to draw (counted before
    any drawing work)."""
    tree = genome.tree()
    size = 3 + sum(genome.gene_tree(leaf).size() if leaf in genome.genes else 1 for leaf in tree.leaves())
    size += sum(1 for node in tree.walk() if node.children)
    if size > MAX_DRAW_NODES:
        raise UserError(f"the {genome.pool} cell has {size} nodes to draw; drawings are limited to "
                        f"{MAX_DRAW_NODES} (the paper's cells have about 10)")
    return genome


def layout(graph: CellGraph) -> dict[Edge, float]:
    """Set ``x`` and ``layer`` of every node (see the module docstring). Returns, for each
    edge from an input to a node that also reads non-input nodes, the column reserved
    for it: the edge runs down that column, which no other node occupies."""
    nodes = graph.nodes
    is_input = [n.kind == "input" for n in nodes]
    columns: dict[Edge, float] = {}
    next_column = [0.0]

    def take_column() -> float:
        next_column[0] += 1.0
        return next_column[0] - 1.0

    def place(i: int) -> None:
        node = nodes[i]
        if all(is_input[p] for p in node.producers):
            node.x = take_column()  # a leaf: reads inputs only
        else:
            xs = []
            for k, p in enumerate(node.producers):
                if is_input[p]:
                    columns[(p, i, k)] = take_column()
                    xs.append(columns[(p, i, k)])
                else:
                    place(p)
                    xs.append(nodes[p].x)
            node.x = sum(xs) / len(xs)
        node.layer = 1 + max(nodes[p].layer for p in node.producers)

    place(graph.output)
    # each input above the mean column of its readers, the two at least a column apart
    for i in (0, 1):
        readers = [columns.get(e, nodes[e[1]].x) for e in graph.edges() if e[0] == i]
        nodes[i].x = sum(readers) / len(readers) if readers else float(i)
    left, right = sorted(nodes[:2], key=lambda n: n.x)
    if right.x - left.x < 1.0:
        middle = (left.x + right.x) / 2
        left.x, right.x = middle - 0.5, middle + 0.5
    return columns


def edge_route(graph: CellGraph, columns: dict[Edge, float], edge: Edge) -> list[tuple[float, float]]:
    """The polyline of one edge in (x, layer) coordinates. An edge that spans several
    layers drops vertically in its own column (the producer's, or the one reserved for
    an input) and bends into the consumer only in the last layer gap; by construction
    of the layout no node lies on those segments."""
    src, dst = graph.nodes[edge[0]], graph.nodes[edge[1]]
    points = [(src.x, float(src.layer))]
    if edge in columns:
        points.append((columns[edge], 1.0))
    column = points[-1][0]
    if dst.layer - 1 > points[-1][1]:
        points.append((column, float(dst.layer - 1)))
    points.append((dst.x, float(dst.layer)))
    return points


def _draw_gene_boxes(ax, graph) -> None:
    """A dashed box around each gene occurrence, under everything else."""
    from matplotlib.patches import FancyBboxPatch

    nodes = graph.nodes
    box_w, box_h = 0.44, 0.32
    for occurrence, gid in graph.genes.items():
        members = [n for n in nodes if n.gene == occurrence]
        x0 = min(n.x for n in members) - box_w
        x1 = max(n.x for n in members) + box_w
        y0 = -max(n.layer for n in members) - box_h
        y1 = -min(n.layer for n in members) + box_h
        ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0.02",
                                    fill=False, linestyle="--", linewidth=0.8, edgecolor="#7f7f7f"))
        # bottom-left: edges enter boxes from above and leave from the centre
        ax.text(x0 + 0.04, y0 + 0.04, gid, fontsize=7, color="#595959", ha="left", va="bottom")


def _draw_edges(ax, graph, columns, texts) -> None:
    """The edges, routed between columns; a node that reads the same input twice
    (add(h1, h1)) gets two arcs, not one line."""
    repeats = Counter((p, i) for p, i, _ in graph.edges())
    drawn: Counter[tuple[int, int]] = Counter()
    style = dict(color="#404040", linewidth=0.9)
    for p, i, k in graph.edges():
        route = [(x, -layer) for x, layer in edge_route(graph, columns, (p, i, k))]
        if len(route) > 2:  # the segments before the last bend, under the boxes
            ax.plot([x for x, _ in route[:-1]], [y for _, y in route[:-1]], zorder=1, **style)
        bend = 0.0
        if len(route) == 2 and repeats[(p, i)] > 1:
            bend = 0.3 * (drawn[(p, i)] - (repeats[(p, i)] - 1) / 2)
            drawn[(p, i)] += 1
        ax.annotate("", xy=route[-1], xytext=route[-2], zorder=2,
                    arrowprops=dict(arrowstyle="-|>", shrinkA=0, shrinkB=0,
                                    connectionstyle=f"arc3,rad={bend}",
                                    patchA=texts[p].get_bbox_patch() if len(route) == 2 else None,
                                    patchB=texts[i].get_bbox_patch(), **style))


def draw_cell(genome: CellGenome, path: str | Path, title: str | None = None) -> list[Path]:
    """Draw ``genome`` to ``path`` with suffix .png and .svg; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display; a no-op when already set
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    graph = cell_graph(_drawable(genome))
    columns = layout(graph)
    nodes = graph.nodes
    xs = [n.x for n in nodes] + list(columns.values())
    layers = max(n.layer for n in nodes)
    width = max(xs) - min(xs) + 1
    fig, ax = plt.subplots(figsize=(max(4.0, 1.25 * width + 1), max(3.0, 1.0 * layers + 1.6)))

    _draw_gene_boxes(ax, graph)

    texts = {}
    for i, n in enumerate(nodes):
        identity = n.kind == "identity"
        texts[i] = ax.text(n.x, -n.layer, n.label, ha="center", va="center", zorder=3,
                           fontsize=7 if identity else 9, style="italic" if identity else "normal",
                           bbox=dict(boxstyle="round,pad=0.35", facecolor=COLOURS[n.kind],
                                     edgecolor="#7f7f7f" if identity else "#404040",
                                     linestyle="--" if identity else "-", linewidth=0.8))

    _draw_edges(ax, graph, columns, texts)

    # a key for the operation colours present (the bottom-left corner is free: the tree
    # narrows to the output there)
    present = [k for k in FAMILIES if any(n.kind == k for n in nodes)]
    if present:
        ax.legend(handles=[Patch(facecolor=COLOURS[k], edgecolor="#404040", label=FAMILIES[k])
                           for k in present], loc="lower left", fontsize=7, frameon=False)
    ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
    ax.set_ylim(-layers - 0.6, 0.6)
    ax.axis("off")
    if title:
        ax.set_title(literal_text(title), fontsize=10)
    fig.tight_layout()
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".svg"):
        out = base.with_suffix(suffix)
        atomic_save_figure(fig, out, dpi=150 if suffix == ".png" else None)
        written.append(out)
    plt.close(fig)
    return written
