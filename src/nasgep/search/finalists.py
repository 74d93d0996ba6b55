"""Choosing the search's result (setting ``search.final_selection``; docs/decisions.md).

``fitness`` (the paper): the individual with the highest fitness ever seen. Fitness is
validation accuracy after however many epochs an individual has had (one for a child, up
to E_max for an old survivor, plus inherited weights), so this picks the most-trained
individual as much as the best cells.

``retrain`` (beyond the paper): rank every individual of ``history.parquet`` by its
*epoch-cohort percentile* (each validation accuracy compared only with accuracies
measured after the same number of epochs, averaged over the individual's generations;
:mod:`.fitness`), take the ``search.finalists`` best distinct genomes, train each from
scratch for E_max epochs without inheritance on the search split, and keep the one with
the best final validation accuracy: every finalist is compared at the same training age.
Under ``search.evaluation: full`` a finalist's search fitness was itself measured so
(from scratch, E_max epochs, another training seed), so the choice averages the two
measurements instead of throwing the first away (:meth:`Finalist.estimate`).

Torch-free: finalists are trained through the search's executor.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..space import Genome
from .evaluator import TrainJob, job_seed
from .fitness import epoch_rank_scores

SELECTIONS = ("fitness", "retrain")


@dataclass(frozen=True)
class Finalist:
    id: str                  # the history individual
    genome: str              # genome JSON
    score: float             # epoch-cohort percentile
    fitness: float           # its last search fitness
    retrained: float | None = None

    def estimate(self, from_scratch_fitness: bool = False) -> float:
        """The validation accuracy the choice ranks: the re-training's, or, when the search
        fitness was measured the same way (``search.evaluation: full``), the mean of both."""
        retrained = self.retrained or 0.0
        return (self.fitness + retrained) / 2 if from_scratch_fitness else retrained


def pick_finalists(history: Sequence[Mapping], k: int) -> list[Finalist]:
    """The ``k`` best distinct genomes by epoch-cohort percentile (ties: raw fitness)."""
    scores = epoch_rank_scores(history)
    last: dict[str, Mapping] = {}
    for r in history:
        if r.get("failure") is None:
            last[r["id"]] = r
    ranked = sorted(last.values(), key=lambda r: (-scores[r["id"]], -r["fitness"], r["id"]))
    out: list[Finalist] = []
    seen: set[str] = set()
    for r in ranked:
        if r["genome"] in seen:        # the same cells bred twice
            continue
        seen.add(r["genome"])
        out.append(Finalist(r["id"], r["genome"], scores[r["id"]], float(r["fitness"])))
        if len(out) == k:
            break
    return out


def retrain_finalists(finalists: Sequence[Finalist], executor, epochs: int, search_seed: int,
                      may_start: Callable[[], bool] = lambda: True) -> list[Finalist]:
    """Train every finalist from scratch for ``epochs`` epochs (no inheritance), one
    epoch-round at a time through ``executor``; a failure scores 0."""
    names = [f"final{j}" for j in range(len(finalists))]
    genomes = [Genome.from_json(f.genome) for f in finalists]
    fitness = [0.0] * len(finalists)
    alive = list(range(len(finalists)))
    for epoch in range(1, epochs + 1):
        jobs = [TrainJob(names[j], genomes[j], epoch, job_seed(search_seed, names[j], epoch), None,
                         evaluate=epoch == epochs)        # only the last epoch's accuracy is read
                for j in alive]
        results = executor.map(jobs, may_start)
        for j, res in zip(list(alive), results):
            if res is None or res.failure:
                fitness[j] = 0.0
                alive.remove(j)
            else:
                fitness[j] = res.fitness
    return [Finalist(f.id, f.genome, f.score, f.fitness, fitness[j]) for j, f in enumerate(finalists)]


def choose(finalists: Sequence[Finalist], from_scratch_fitness: bool = False) -> Finalist:
    """The finalist with the best :meth:`~Finalist.estimate` (ties: the higher score)."""
    return max(finalists, key=lambda f: (f.estimate(from_scratch_fitness), f.score))


#: what a ``finalists.json`` ranked its finalists by (:meth:`Finalist.estimate`), by whether
#: it averaged the search fitness with the re-training (``search.evaluation: full``, since
#: 2026-12-07); a record without it was ranked by the re-training alone
RANKED_BY = {False: "retrained", True: "mean of fitness and retrained"}


def select(history: Sequence[Mapping], config: Mapping, executor, search_seed: int,
           log: Callable[[str], None] = lambda message: None) -> tuple[Finalist, dict]:
    """The whole ``retrain`` selection on a search's ``history``: its ``search.finalists``
    best genomes re-trained for E_max epochs; the winner, and the ``finalists.json`` record
    of every finalist (without the search's own fields: generation, the paper's pick)."""
    search = config["search"]
    mean = search["evaluation"] == "full"
    finalists = pick_finalists(history, search["finalists"])
    log(f"final selection: re-training {len(finalists)} finalists for {search['max_epochs']} epochs")
    done = retrain_finalists(finalists, executor, search["max_epochs"], search_seed)
    pick = choose(done, mean)
    record = {"selection": "retrain", "chosen": pick.id, "ranked_by": RANKED_BY[mean],
              "finalists": [f.__dict__ for f in done]}
    return pick, record
