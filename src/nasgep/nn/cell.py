"""Cells compiled from decoded chromosomes (SPEC section 2).

A cell is an expression tree over genes (``CellGenome.tree()``), each gene an expression
tree over operations and the two cell inputs (``CellGenome.gene_tree(gid)``). At build
time the two levels are flattened into one *plan*: a list of :class:`Step` s, each
``slots[output] = kind(slots[inputs])``. ``forward`` walks the plan; no tree is touched
after construction, so a forward pass costs one Python loop over a dozen steps.

Slots 0 and 1 hold the raw inputs h_{i-1} and h_{i-2}. The rules:

- an input is preprocessed to the cell width C_cell by a 1x1 ReLU-conv-BN block, or, when
  h_{i-2} has twice h_{i-1}'s resolution, by a factorised stride-2 reduction; an input no
  coding gene reads gets no module at all (no dead weights in the parameter count);
- in a reduction cell every operation that reads a cell input directly runs with stride 2
  (the gene alphabets make that every path from an input, see ``_scale`` checks);
- an ``add`` of operands with different channel counts first maps the wider one to the
  narrower width with a 1x1 block; ``cat`` concatenates; a root whose width is not C_cell
  is mapped to C_cell by a final 1x1 block;
- each occurrence of a gene is its own module (``genes.g7_1`` is g7's second occurrence,
  counted in chromosome order) with its own weights;
- drop-path (per sample, DARTS style) hits each gene output that went through at least
  one operation, in training only, when :attr:`Cell.drop_path_rate` > 0 (identity and
  pure ``add`` genes have no weights to regularise, as DARTS skips its identity edges).

Module names inside a cell: ``preprocess.h1``, ``genes.g7_0.ops.0``, ``match.n01`` (the
1x1 that maps the output of the cell subtree at path root -> child 0 -> child 1),
``final``. :meth:`Cell.inheritance_units` gives each of them its weight-store key.
"""
from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..gep import Node
from ..space import CellGenome, GenomeError, parse_terminal
from .operations import OPS, FactorizedReduce, relu_conv_bn

#: raw input slots: h1 = h_{i-1}, h2 = h_{i-2}
INPUT_SLOTS: dict[str, int] = {"h1": 0, "h2": 1}


@dataclass(frozen=True)
class Step:
    """One instruction of a compiled cell: ``slots[output] = kind(slots[inputs])``.

    ``kind`` is ``"module"`` (apply the submodule named ``module``), ``"add"``, ``"cat"``
    or ``"drop_path"``.
    """

    kind: str
    inputs: tuple[int, ...]
    output: int
    module: str = ""


def drop_path(x: torch.Tensor, rate: float) -> torch.Tensor:
    """Zero whole samples with probability ``rate`` and rescale the rest by 1/(1-rate),
    so the expected output is unchanged (DARTS' per-sample drop-path)."""
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


def _add(cell: Cell, xs: list[torch.Tensor]) -> torch.Tensor:
    return xs[0] + xs[1]


def _cat(cell: Cell, xs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(xs, dim=1)


def _drop_path(cell: Cell, xs: list[torch.Tensor]) -> torch.Tensor:
    if cell.training and cell.drop_path_rate > 0:
        return drop_path(xs[0], cell.drop_path_rate)
    return xs[0]


#: parameter-free step kinds -> what they compute
FUNCTIONS: dict[str, Callable[[Cell, list[torch.Tensor]], torch.Tensor]] = {
    "add": _add, "cat": _cat, "drop_path": _drop_path,
}


class Gene(nn.Module):
    """One occurrence of a gene: a container for its operations (``ops.0``, ``ops.1`` in
    post-order), so the occurrence is one unit in the weight store. The cell's plan, not
    this module, says how they are wired."""

    def __init__(self, gid: str, expression: str):
        super().__init__()
        self.gid = gid
        self.expression = expression
        self.ops = nn.ModuleList()

    def extra_repr(self) -> str:
        return f"{self.gid}: {self.expression}"


def prefix_expression(node: Node) -> str:
    """The subtree in prefix (Polish) notation joined by '-': ``cat-add-g7-g1-g3``.
    Unambiguous with fixed arities and safe in file names and store keys."""
    return "-".join(n.symbol for n in node.walk())


def occurrences(tree: Node) -> dict[str, tuple[str, int]]:
    """Leaf path -> (gene id, occurrence number). Occurrences are counted in chromosome
    order, which for a Karva tree is breadth-first order, so ``occ0`` is the first
    occurrence in ``CellGenome.coding_genes()``."""
    seen: Counter[str] = Counter()
    result: dict[str, tuple[str, int]] = {}
    queue: deque[tuple[Node, str]] = deque([(tree, "n")])
    while queue:
        node, path = queue.popleft()
        if not node.children:
            result[path] = (node.symbol, seen[node.symbol])
            seen[node.symbol] += 1
        queue.extend((child, f"{path}{i}") for i, child in enumerate(node.children))
    return result


def inputs_read(genome: CellGenome) -> frozenset[str]:
    """The cell inputs (``h1``, ``h2``) that the coding genes of ``genome`` read."""
    return frozenset(parse_terminal(leaf)[1] for gid in set(genome.coding_genes())
                     for leaf in genome.gene_tree(gid).leaves())


@dataclass(frozen=True)
class Place:
    """Where a cell sits in the network: part of every weight-store key of its modules."""

    stage: int
    rep: int


class Cell(nn.Module):
    """A normal or reduction cell compiled from a :class:`CellGenome`.

    ``c_prev_prev`` and ``c_prev`` are the widths of h_{i-2} and h_{i-1}; ``c_cell`` the
    width of this cell (the network passes 2x the previous width for a reduction cell);
    ``reduce_h2`` says h_{i-2} has twice h_{i-1}'s resolution.
    """

    def __init__(self, genome: CellGenome, c_prev_prev: int, c_prev: int, c_cell: int,
                 reduce_h2: bool = False, place: Place = Place(0, 0)):
        super().__init__()
        genome = genome.used_only().validate(genome.pool)  # GenomeError names what is wrong
        self.pool = genome.pool
        self.reduction = genome.pool == "reduction"
        self.c_cell = c_cell
        self.place = place
        self.drop_path_rate = 0.0
        tree = genome.tree()
        self.expression = str(tree)

        self.preprocess = nn.ModuleDict()
        self.genes = nn.ModuleDict()
        self.match = nn.ModuleDict()
        self.final: nn.Module | None = None
        self._units: list[tuple[str, str]] = []  # (store key, module name in this cell)

        compiler = _Compiler(self, genome, tree, {"h1": c_prev, "h2": c_prev_prev}, reduce_h2)
        slot, channels, scale = compiler.cell_node(tree, "n")
        if scale != int(self.reduction):
            what = "keeps the input resolution" if self.reduction else "is downsampled"
            raise GenomeError(f"{genome.pool} cell {self.expression}: its output {what}")
        if channels != c_cell:
            self.final = relu_conv_bn(channels, c_cell)
            slot = compiler.emit("module", (slot,), module="final")
            self._unit("final", channels, c_cell, "final", prefix_expression(tree))
        self.plan: tuple[Step, ...] = tuple(compiler.steps)
        self.num_slots = compiler.num_slots
        self.output_slot = slot
        self._resolved: tuple[int, tuple[nn.Module | None, ...]] = (0, ())

    def _unit(self, kind: str, c_in: int, c_out: int, module: str, suffix: str) -> None:
        p = self.place
        key = f"{kind}/{self.pool}/stage{p.stage}/rep{p.rep}/w{c_out}/in{c_in}/{suffix}"
        self._units.append((key, module))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        """``s0`` = h_{i-2}, ``s1`` = h_{i-1} (DARTS argument order)."""
        slots: list[torch.Tensor | None] = [None] * self.num_slots
        slots[INPUT_SLOTS["h1"]], slots[INPUT_SLOTS["h2"]] = s1, s0
        for step, module in zip(self.plan, self.step_modules()):
            args = [slots[i] for i in step.inputs]
            slots[step.output] = module(args[0]) if module is not None else FUNCTIONS[step.kind](self, args)
        return slots[self.output_slot]

    def step_modules(self) -> tuple[nn.Module | None, ...]:
        """The submodule each plan step applies (None for add, cat, drop-path).

        Resolved by name once per module object and cached as a plain attribute, so each
        module stays registered under its descriptive name only; a copy (deepcopy,
        unpickling, DataParallel replicas) has another ``id`` and resolves its own.
        """
        owner, modules = self._resolved
        if owner != id(self):
            modules = tuple(self.get_submodule(s.module) if s.kind == "module" else None
                            for s in self.plan)
            self._resolved = (id(self), modules)
        return modules

    def inheritance_units(self) -> dict[str, nn.Module]:
        """Weight-store key -> module, for every module of this cell that has weights."""
        return {key: self.get_submodule(name) for key, name in self._units}

    def extra_repr(self) -> str:
        return f"{self.pool}: {self.expression}, C={self.c_cell}"


class _Compiler:
    """Builds a cell's modules and its plan in one walk over the cell and gene trees.

    Every emitted value carries (slot, channels, scale): scale 0 is the input resolution,
    1 the halved one (only strided operations in reduction cells produce it).
    """

    def __init__(self, cell: Cell, genome: CellGenome, tree: Node, in_channels: dict[str, int],
                 reduce_h2: bool):
        self.cell = cell
        self.genome = genome
        self.in_channels = in_channels
        self.reduce_h2 = reduce_h2
        self.steps: list[Step] = []
        self.num_slots = len(INPUT_SLOTS)
        self.inputs: dict[str, int] = {}  # input name -> slot of its preprocessed tensor
        self.occurrence = occurrences(tree)
        self.gene_trees = {gid: genome.gene_tree(gid) for gid in genome.genes}  # decoded once

    def emit(self, kind: str, inputs: tuple[int, ...], module: str = "") -> int:
        out = self.num_slots
        self.num_slots += 1
        self.steps.append(Step(kind, inputs, out, module))
        return out

    # -- inputs ---------------------------------------------------------------------------
    def input(self, name: str) -> int:
        """Slot of the preprocessed input, emitting its preprocessing on first use."""
        if name not in self.inputs:
            c_in, c_cell = self.in_channels[name], self.cell.c_cell
            factorized = name == "h2" and self.reduce_h2
            block = FactorizedReduce(c_in, c_cell) if factorized else relu_conv_bn(c_in, c_cell)
            self.cell.preprocess[name] = block
            self.inputs[name] = self.emit("module", (INPUT_SLOTS[name],), module=f"preprocess.{name}")
            self.cell._unit("pre", c_in, c_cell, f"preprocess.{name}",
                            f"{name}/{'factorized' if factorized else 'conv1x1'}")
        return self.inputs[name]

    # -- genes ----------------------------------------------------------------------------
    def gene(self, path: str) -> tuple[int, int, int]:
        gid, occ = self.occurrence[path]
        tree = self.gene_trees[gid]  # validated: every coding gene is present
        name = f"{gid}_{occ}"
        gene = Gene(gid, str(tree))
        self.cell.genes[name] = gene
        slot, scale = self.gene_node(tree, gene, f"genes.{name}")
        if len(gene.ops):
            slot = self.emit("drop_path", (slot,))
            p, cell = self.cell.place, self.cell
            cell._units.append((f"gene/{cell.pool}/{gid}/occ{occ}/stage{p.stage}/rep{p.rep}"
                                f"/w{cell.c_cell}", f"genes.{name}"))
        return slot, self.cell.c_cell, scale

    def gene_node(self, node: Node, gene: Gene, prefix: str) -> tuple[int, int]:
        """Emit one gene-tree node; returns (slot, scale). Every gene value is C_cell wide."""
        if not node.children:
            op, name = parse_terminal(node.symbol)
            slot, scale = self.input(name), 0
            return self.op(op, slot, scale, gene, prefix) if op else (slot, scale)
        if node.symbol == "add":
            (a, sa), (b, sb) = (self.gene_node(c, gene, prefix) for c in node.children)
            if sa != sb:
                raise GenomeError(f"gene {gene.gid} = {gene.expression}: add of a cell input "
                                  "and a downsampled tensor")
            return self.emit("add", (a, b)), sa
        child, scale = self.gene_node(node.children[0], gene, prefix)
        return self.op(node.symbol, child, scale, gene, prefix)

    def op(self, name: str, slot: int, scale: int, gene: Gene, prefix: str) -> tuple[int, int]:
        """An operation; strided when it reads a cell input (scale 0) in a reduction cell."""
        stride = 2 if self.cell.reduction and scale == 0 else 1
        gene.ops.append(OPS[name](self.cell.c_cell, stride))
        out = self.emit("module", (slot,), module=f"{prefix}.ops.{len(gene.ops) - 1}")
        return out, scale + (stride == 2)

    # -- the cell tree --------------------------------------------------------------------
    def cell_node(self, node: Node, path: str) -> tuple[int, int, int]:
        """Emit one cell-tree node; returns (slot, channels, scale)."""
        if not node.children:
            return self.gene(path)
        kids = [(*self.cell_node(c, f"{path}{i}"), c, f"{path}{i}") for i, c in enumerate(node.children)]
        (a, ca, sa, _, _), (b, cb, sb, _, _) = kids
        if sa != sb:
            raise GenomeError(f"{self.genome.pool} cell: {node.symbol} of tensors at "
                              "different resolutions")
        if node.symbol == "cat":
            return self.emit("cat", (a, b)), ca + cb, sa
        if ca != cb:  # add: map the wider operand to the narrower width
            wide = 0 if ca > cb else 1
            slot, c_wide, _, sub, sub_path = kids[wide]
            c_narrow = min(ca, cb)
            self.cell.match[sub_path] = relu_conv_bn(c_wide, c_narrow)
            mapped = self.emit("module", (slot,), module=f"match.{sub_path}")
            self.cell._unit("match", c_wide, c_narrow, f"match.{sub_path}",
                            f"at{sub_path}/{prefix_expression(sub)}")
            a, b = (mapped, b) if wide == 0 else (a, mapped)
        return self.emit("add", (a, b)), min(ca, cb), sa
