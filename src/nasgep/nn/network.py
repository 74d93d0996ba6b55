"""Networks built from a genome (paper Fig. 3, SPEC section 2).

    stem -> N normal -> reduction -> N normal -> reduction -> N normal
         -> BatchNorm -> ReLU -> global average pool -> linear   (logits: no ReLU)

Module names say what a module is and where it sits, and are the same for every build of
the same genome: ``stem``, ``stages.{s}.reduction`` (stages 1 and 2),
``stages.{s}.cells.{r}``, inside a cell ``genes.g7_0.ops.0`` etc. (see :mod:`.cell`),
``classifier``. :meth:`Network.inheritance_units` maps weight-store keys to submodules.

Convolutions are Kaiming-initialised as they are created (:mod:`.operations`), so a
built network is ready to train; :func:`build_network` seeds that when given a ``seed``.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..space import Genome
from .cell import Cell, Place, inputs_read
from .operations import STEMS

#: normal-cell stages; a reduction cell opens every stage but the first
STAGES = 3


@dataclass(frozen=True)
class Macro:
    """The macro-architecture around the cells (everything but the genome)."""

    channels: int           # C: the stem's width and the first stage's width
    cells_per_stage: int    # N normal cells per stage
    num_classes: int
    in_channels: int = 3
    stem: str = "cifar"     # a key of operations.STEMS

    def __post_init__(self) -> None:
        if self.stem not in STEMS:
            raise ValueError(f"unknown stem {self.stem!r}; expected one of {sorted(STEMS)}")
        if self.channels < 2 or self.cells_per_stage < 0 or self.num_classes < 1 or self.in_channels < 1:
            raise ValueError(f"invalid macro-architecture {self}")


class Classifier(nn.Module):
    """BN -> ReLU -> global average pool -> linear. The logits get no ReLU: a ReLU there
    pins most logits at 0 (SPEC section 5, first pitfall)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(self.pool(self.relu(self.bn(x))), 1))


class Stage(nn.Module):
    """One resolution: an optional reduction cell, then the normal cells ``cells.{r}``
    (a ``ModuleDict`` keyed by repetition, so a dead cell leaves a gap, not a renumbering)."""

    def __init__(self, reduction: Cell | None, cells: dict[int, Cell]):
        super().__init__()
        if reduction is not None:
            self.reduction = reduction
        self.cells = nn.ModuleDict({str(r): cell for r, cell in cells.items()})


def live_cells(genome: Genome, cells_per_stage: int) -> list[bool]:
    """Which cells (in forward order) the output depends on.

    A cell reads h_{i-1} and/or h_{i-2} as its coding genes say; a normal cell that reads
    only h_{i-2} skips its predecessor, so that cell (and what only it reads) computes
    nothing the classifier sees. Such dead cells are not built: no weights that cannot
    train, no parameters counted against the limit, no wasted compute.
    """
    reads = {pool: inputs_read(getattr(genome, pool)) for pool in ("normal", "reduction")}
    order = cell_order(cells_per_stage)
    live = [False] * len(order)
    if live:
        live[-1] = True
    for i in reversed(range(len(order))):
        if not live[i]:
            continue
        for name, back in (("h1", 1), ("h2", 2)):
            if name in reads[order[i][0]] and i - back >= 0:
                live[i - back] = True
    return live


def cell_order(cells_per_stage: int) -> list[tuple[str, Place]]:
    """(pool, place) of every cell in forward order."""
    order = []
    for s in range(STAGES):
        if s > 0:
            order.append(("reduction", Place(s, 0)))
        order.extend(("normal", Place(s, r)) for r in range(cells_per_stage))
    return order


class Network(nn.Module):
    """A NASGEP network; build it with :func:`build_network`."""

    def __init__(self, genome: Genome, macro: Macro):
        super().__init__()
        # keep only the genes the cells use: a genome may carry a whole gene pool, which a
        # network (and every deep copy of it) must not drag along (SPEC section 5)
        self.genome = Genome(genome.normal.used_only(), genome.reduction.used_only()).validate()
        self.macro = macro
        c = macro.channels
        self.stem = STEMS[macro.stem](macro.in_channels, c)
        # (width, number of halvings since the stem) of h_{i-2} and h_{i-1}
        (c_pp, scale_pp), (c_p, scale_p) = (c, 0), (c, 0)
        forward: list[str | None] = []
        stages: list[tuple[Cell | None, dict[int, Cell]]] = [(None, {}) for _ in range(STAGES)]
        for (pool, place), live in zip(cell_order(macro.cells_per_stage),
                                       live_cells(self.genome, macro.cells_per_stage)):
            c_cell = 2 * c_p if pool == "reduction" else c_p
            name = None
            if live:
                cell = Cell(getattr(self.genome, pool), c_pp, c_p, c_cell, scale_pp < scale_p, place)
                normal = stages[place.stage][1]
                if pool == "reduction":
                    stages[place.stage] = (cell, normal)
                    name = f"stages.{place.stage}.reduction"
                else:
                    normal[place.rep] = cell
                    name = f"stages.{place.stage}.cells.{place.rep}"
            forward.append(name)
            (c_pp, scale_pp), (c_p, scale_p) = (c_p, scale_p), (c_cell, scale_p + (pool == "reduction"))
        self.stages = nn.ModuleList(Stage(reduction, normal) for reduction, normal in stages)
        self.classifier = Classifier(c_p, macro.num_classes)
        self.width = c_p
        self.forward_order: tuple[str | None, ...] = tuple(forward)  # None: a dead cell
        self._resolved: tuple[int, tuple[Cell | None, ...]] = (0, ())

    def _forward_cells(self) -> tuple[Cell | None, ...]:
        """Every cell position in forward order, None where a dead cell was left out;
        resolved by name once per module object, as :meth:`Cell.step_modules`."""
        owner, cells = self._resolved
        if owner != id(self):
            cells = tuple(self.get_submodule(n) if n else None for n in self.forward_order)
            self._resolved = (id(self), cells)
        return cells

    @property
    def cells(self) -> tuple[Cell, ...]:
        """The cells that were built (the live ones), in forward order."""
        return tuple(cell for cell in self._forward_cells() if cell is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)  # the first cell reads the stem output twice
        for cell in self._forward_cells():
            s0, s1 = s1, (cell(s0, s1) if cell is not None else None)
        return self.classifier(s1)

    def set_drop_path(self, rate: float) -> None:
        """Drop-path rate of every gene output from now on (0 turns it off). The trainer
        ramps it: ``net.set_drop_path(0.1 * epoch / epochs)`` before each epoch."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {rate}")
        for cell in self.cells:
            cell.drop_path_rate = float(rate)

    def inheritance_units(self, dataset: str) -> dict[str, nn.Module]:
        """Weight-store key -> submodule; every parameter and buffer of the network lies in
        exactly one unit. Keys (SPEC section 3)::

            stem/{dataset}/w{C}/{stem}/in{in_channels}
            gene/{pool}/{gid}/occ{k}/stage{s}/rep{r}/w{width}
            pre/{pool}/stage{s}/rep{r}/w{width}/in{c_in}/{h1|h2}/{conv1x1|factorized}
            match/{pool}/stage{s}/rep{r}/w{c_out}/in{c_in}/at{path}/{subtree}
            final/{pool}/stage{s}/rep{r}/w{width}/in{c_in}/{cell tree}
            classifier/{dataset}/w{width}/n{num_classes}

        ``{subtree}`` is the cell subtree in prefix notation (``cat-g3-g7``), ``{path}`` its
        position (``n01``: root, child 0, child 1). Equal keys mean equal shapes.
        """
        if not dataset or "/" in dataset:
            raise ValueError(f"dataset name {dataset!r} must be non-empty and contain no '/'")
        m = self.macro
        units: dict[str, nn.Module] = {f"stem/{dataset}/w{m.channels}/{m.stem}/in{m.in_channels}": self.stem}
        for cell in self.cells:
            for key, module in cell.inheritance_units().items():
                if key in units:
                    raise AssertionError(f"duplicate inheritance key {key}")
                units[key] = module
        units[f"classifier/{dataset}/w{self.width}/n{m.num_classes}"] = self.classifier
        return units


def build_network(genome: Genome, macro: Macro, seed: int | None = None) -> Network:
    """Build the network of ``genome`` inside ``macro`` on the CPU, Kaiming-initialised (move it with
    ``.to(device)``).

    With a ``seed``, the same genome and seed give an identical ``state_dict``, and the
    global RNG is left as it was: the build runs under ``fork_rng`` on the CPU generator
    only (every module is created on the CPU; forking CUDA generators would initialise
    CUDA, and ``torch.manual_seed`` would reseed them for good). Without a seed the
    initialisation draws from the global RNG.
    """
    with _gc_paused():
        if seed is None:
            return Network(genome, macro)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return Network(genome, macro)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a network is built.

    A build allocates some ten thousand small objects (modules and their dicts), which
    triggers full collections that walk every live object: they made one build in ten
    take 4x the median (120 ms instead of 28 ms at search size). Building creates no
    reference cycles to free, and the collector resumes right after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def count_network_parameters(genome: Genome, macro: Macro) -> int:
    """The parameter count of ``build_network(genome, macro)``, e.g. for the search's
    300k-parameter rejection loop. It builds the network on the meta device (shapes only:
    no memory, so a network too large for this machine is counted, not allocated) under
    a forked RNG, so it never disturbs the caller's random stream."""
    with _gc_paused(), torch.random.fork_rng(devices=[]), torch.device("meta"):
        net = Network(genome, macro)
    return count_parameters(net)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameter elements (BN affine included, buffers not)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
