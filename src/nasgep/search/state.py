"""The search state as plain data: gene pools, reduction cells, individuals, thresholds.

Everything here is JSON-serialisable (via :func:`to_dict` / :func:`from_dict`) so that a
checkpoint is the state itself, and a resumed search continues bit for bit.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..gep import Chromosome
from ..space import CellGenome, Genome, Pool


@dataclass
class Gene:
    """A gene (ADF) of a pool. ``fitness`` is the best fitness of any individual whose
    cells used it; None until one did."""

    id: str
    chromosome: Chromosome
    born: int
    parents: tuple[str, ...] = ()
    fitness: float | None = None


@dataclass
class ReductionCell:
    """A member of the reduction population. ``barred`` once an individual that used it
    reached E_max: it then never becomes a parent."""

    id: str
    chromosome: Chromosome
    born: int
    parents: tuple[str, ...] = ()
    fitness: float | None = None
    barred: bool = False


@dataclass
class Individual:
    """A normal cell plus a reference to a reduction cell; its network, optimizer and
    schedule position persist across generations (in the evaluator's files)."""

    id: str
    normal: Chromosome
    reduction_id: str
    born: int
    parents: tuple[str, ...] = ()
    epochs: int = 0
    fitness: float = 0.0         # what selection ranks by (setting search.fitness)
    accuracy: float = 0.0        # validation accuracy after ``epochs`` epochs
    params: int = 0
    inherited: float = 0.0
    seconds: float = 0.0
    dead: bool = False
    failure: str | None = None


@dataclass
class BestRecord:
    """The best individual ever seen (it may have died since)."""

    genome: dict
    fitness: float
    params: int
    generation: int
    individual: str
    epochs: int
    accuracy: float | None = None    # its validation accuracy (= fitness under search.fitness: accuracy)


@dataclass
class SearchState:
    seed: int
    generation: int = -1                   # last completed generation (-1: none yet)
    genes: dict[str, dict[str, Gene]] = field(default_factory=lambda: {"normal": {}, "reduction": {}})
    reductions: dict[str, ReductionCell] = field(default_factory=dict)
    population: list[Individual] = field(default_factory=list)
    t_g: float = 0.0
    t_c: float = 0.0
    counters: dict[str, int] = field(default_factory=lambda: {"gene": 0, "reduction": 0, "individual": 0})
    rng_state: Any = None
    elapsed: float = 0.0                   # search wall seconds, summed over resumes
    train_seconds: float = 0.0             # of which inside the evaluator
    store_index: dict[str, dict] = field(default_factory=dict)
    best: BestRecord | None = None
    history: list[dict] = field(default_factory=list)
    param_rejections: int = 0
    finished: bool = False
    stop_reason: str | None = None
    mlflow_run_id: str | None = None
    #: the last completed generation's MLflow metrics: a search stopped after its checkpoint
    #: was saved, before they were logged, logs them when it resumes
    last_metrics: dict[str, float] | None = None

    # --- derived views -------------------------------------------------------------
    def next_id(self, kind: str) -> str:
        prefix = {"gene": "g", "reduction": "r", "individual": "i"}[kind]
        n = self.counters[kind]
        self.counters[kind] = n + 1
        return f"{prefix}{n}"

    def pool_ids(self, pool: Pool) -> list[str]:
        return list(self.genes[pool])

    def cell_genome(self, pool: Pool, chromosome: Chromosome) -> CellGenome:
        genes = self.genes[pool]
        cell = CellGenome(pool, chromosome, {g: genes[g].chromosome for g in genes})
        return cell.used_only()

    def epochs_trained(self) -> int:
        """Candidate epochs of the completed generations (what ``search.budget_epochs`` counts)."""
        return sum(row.get("epochs_this_generation", 0) for row in self.history)

    def genome_of(self, individual: Individual) -> Genome:
        red = self.reductions[individual.reduction_id]
        return Genome(self.cell_genome("normal", individual.normal),
                      self.cell_genome("reduction", red.chromosome))


# --- serialisation --------------------------------------------------------------------

def _chrom(c: Chromosome) -> str:
    return c.to_text()


def _unchrom(text: str) -> Chromosome:
    return Chromosome.from_text(text)


def to_dict(state: SearchState) -> dict:
    def cell(c: Gene | ReductionCell) -> dict:
        d = asdict(c)
        d["chromosome"] = _chrom(c.chromosome)
        d["parents"] = list(c.parents)
        return d

    def ind(i: Individual) -> dict:
        d = asdict(i)
        d["normal"] = _chrom(i.normal)
        d["parents"] = list(i.parents)
        return d

    rng = state.rng_state
    return {
        "seed": state.seed,
        "generation": state.generation,
        "genes": {p: [cell(g) for g in pool.values()] for p, pool in state.genes.items()},
        "reductions": [cell(r) for r in state.reductions.values()],
        "population": [ind(i) for i in state.population],
        "t_g": state.t_g,
        "t_c": state.t_c,
        "counters": dict(state.counters),
        "rng_state": [rng[0], list(rng[1]), rng[2]] if rng is not None else None,
        "elapsed": state.elapsed,
        "train_seconds": state.train_seconds,
        "store_index": state.store_index,
        "best": asdict(state.best) if state.best else None,
        "history": state.history,
        "param_rejections": state.param_rejections,
        "finished": state.finished,
        "stop_reason": state.stop_reason,
        "mlflow_run_id": state.mlflow_run_id,
        "last_metrics": state.last_metrics,
    }


def from_dict(d: dict) -> SearchState:
    def gene(x: dict) -> Gene:
        return Gene(x["id"], _unchrom(x["chromosome"]), x["born"], tuple(x["parents"]), x["fitness"])

    def red(x: dict) -> ReductionCell:
        return ReductionCell(x["id"], _unchrom(x["chromosome"]), x["born"], tuple(x["parents"]),
                             x["fitness"], x["barred"])

    def ind(x: dict) -> Individual:
        x = dict(x)
        x["normal"] = _unchrom(x["normal"])
        x["parents"] = tuple(x["parents"])
        x.setdefault("accuracy", x["fitness"])     # checkpoints from before search.fitness
        return Individual(**x)

    rng = d["rng_state"]
    return SearchState(
        seed=d["seed"],
        generation=d["generation"],
        genes={p: {g["id"]: gene(g) for g in pool} for p, pool in d["genes"].items()},
        reductions={r["id"]: red(r) for r in d["reductions"]},
        population=[ind(i) for i in d["population"]],
        t_g=d["t_g"],
        t_c=d["t_c"],
        counters=dict(d["counters"]),
        rng_state=(rng[0], tuple(rng[1]), rng[2]) if rng is not None else None,
        elapsed=d["elapsed"],
        train_seconds=d["train_seconds"],
        store_index=d["store_index"],
        best=BestRecord(**{"accuracy": d["best"]["fitness"], **d["best"]}) if d["best"] else None,
        history=d["history"],
        param_rejections=d["param_rejections"],
        finished=d["finished"],
        stop_reason=d["stop_reason"],
        mlflow_run_id=d["mlflow_run_id"],
        last_metrics=d.get("last_metrics"),        # checkpoints from before it was kept
    )
