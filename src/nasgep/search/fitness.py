"""What the search ranks individuals by (setting ``search.fitness``; docs/decisions.md).

``accuracy`` (the paper): an individual's fitness is its validation accuracy after
however many epochs it has had: one for a new child (plus the weights it inherited), up
to E_max for an old survivor. Older individuals have had more training, so this fitness
ranks training age as much as cells (docs/search-quality.md, explanation 1).

``cohort`` (beyond the paper): the fitness is the *epoch-cohort percentile* of that
accuracy: its percentile (0-100) among every accuracy the search has measured after the
same number of epochs, this generation's included. A child is compared with children, a
three-epoch survivor with three-epoch individuals. Tournaments, survivor selection, T_g,
T_c, gene and reduction-cell fitness and ``best.json`` use it; the raw accuracy stays in
``Individual.accuracy`` and the history's ``accuracy`` column, and the weight store keeps
comparing accuracies (it keeps the best-trained weights, whatever ranks individuals).

The same percentile, averaged over an individual's generations, ranks the finalists of
``search.final_selection: retrain`` (:func:`epoch_rank_scores`).

Torch-free, like the loop.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

#: each setting, and what its fitness is (axis labels, reports)
FITNESSES = {"accuracy": "validation top-1, %", "cohort": "epoch-cohort percentile of validation top-1"}


def _accuracy(row: Mapping) -> float:
    """A history row's validation accuracy (rows written before the ``accuracy`` column
    existed hold it as ``fitness``)."""
    return float(row.get("accuracy", row["fitness"]))


def epoch_cohorts(history: Iterable[Mapping]) -> dict[int, list[float]]:
    """Epoch count -> every validation accuracy measured after that many epochs
    (failures excluded)."""
    cohorts: dict[int, list[float]] = {}
    for r in history:
        if r.get("failure") is None:
            cohorts.setdefault(int(r["epochs"]), []).append(_accuracy(r))
    return cohorts


def percentile(cohort: Sequence[float], value: float) -> float:
    """Percentile of ``value`` in ``cohort`` (ties count half, as ``kind='mean'``)."""
    from scipy import stats  # here, not at the top: importing scipy.stats takes seconds

    return float(stats.percentileofscore(cohort, value, kind="mean"))


def cohort_fitness(history: Iterable[Mapping], current: Sequence[tuple[int, float]]) -> list[float]:
    """The ``cohort`` fitness of each (epochs, accuracy) pair of ``current`` (this
    generation's measurements), against ``history`` plus ``current`` itself."""
    cohorts = epoch_cohorts(history)
    for epochs, acc in current:
        cohorts.setdefault(epochs, []).append(acc)
    return [percentile(cohorts[epochs], acc) for epochs, acc in current]


def epoch_rank_scores(history: Sequence[Mapping]) -> dict[str, float]:
    """Individual id -> mean epoch-cohort percentile of its accuracies over the
    generations it was trained in (failures excluded)."""
    cohorts = epoch_cohorts(history)
    scores: dict[str, list[float]] = {}
    for r in history:
        if r.get("failure") is None:
            scores.setdefault(r["id"], []).append(percentile(cohorts[int(r["epochs"])], _accuracy(r)))
    return {k: sum(v) / len(v) for k, v in scores.items()}
