"""The NASGEP search loop (SPEC section 3; paper III-A, steps 1-9).

Torch-free: candidates are trained through an executor over an :class:`Evaluator`, and
every random draw comes from one ``random.Random`` seeded by the run, whose state is
checkpointed with the rest of the search.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import breeding
from .evaluator import Evaluator, StoreCandidate, TrainJob, TrainResult, job_seed
from .fitness import cohort_fitness
from .settings import SearchSettings
from .state import BestRecord, Individual, SearchState

__all__ = ["BudgetExhausted", "Extinct", "GenerationReport", "Search", "SearchSettings"]


@dataclass
class GenerationReport:
    """What one generation did; the CLI prints it and MLflow logs it."""

    generation: int
    best_fitness: float
    mean_fitness: float
    best_ever: float
    t_g: float
    t_c: float
    normal_pool: int
    reduction_pool: int
    reduction_population: int
    population: int
    trained: int
    epochs_trained: int
    failures: int
    param_rejections: int
    seconds: float
    elapsed: float
    train_seconds: float
    epochs_total: int = 0          # candidate epochs of all completed generations
    best_accuracy: float = 0.0     # best validation accuracy (= best_fitness under search.fitness: accuracy)


class BudgetExhausted(Exception):
    """Raised inside a generation when a budget forbids the next training job;
    ``reason`` is the stop reason: ``budget`` (wall clock) or ``budget_epochs``."""

    def __init__(self, reason: str = "budget") -> None:
        super().__init__(reason)
        self.reason = reason


class Extinct(Exception):
    """No living individual is left to breed from (every candidate failed or died)."""


class Search:
    """Runs generations over a :class:`SearchState`.

    ``executor.map(jobs, may_start)`` trains jobs (in this process or in workers);
    ``evaluator`` (in this process) counts parameters and keeps the weight store.
    ``on_generation(state, report)`` is called after each completed generation with the
    new state: the caller checkpoints there.
    """

    def __init__(self, settings: SearchSettings, evaluator: Evaluator, executor,
                 state: SearchState, clock: Callable[[], float] = time.monotonic):
        self.s = settings
        self.evaluator = evaluator
        self.executor = executor
        self.state = state
        self.clock = clock
        self.rng = random.Random()
        if state.rng_state is None:
            self.rng.seed(state.seed)
        else:
            self.rng.setstate(state.rng_state)
        self._started = clock()
        self._elapsed_at_start = state.elapsed
        self._generation_epochs = 0          # epochs trained so far in the running generation

    # --- budget -------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self._elapsed_at_start + (self.clock() - self._started)

    def may_start(self) -> bool:
        return self.elapsed() < self.s.budget_seconds

    def epochs_allow(self, more: int) -> bool:
        """Whether ``more`` candidate epochs, on top of the completed generations' and
        this generation's so far, stay within ``budget_epochs``. It depends only on the
        seed's course, never on the machine's speed."""
        if self.s.budget_epochs is None:
            return True
        return self.state.epochs_trained() + self._generation_epochs + more <= self.s.budget_epochs

    def generations_left(self) -> bool:
        if self.s.max_generations is None:
            return True
        return self.state.generation + 1 < self.s.max_generations

    # --- driver -------------------------------------------------------------------------
    def run(self, on_generation: Callable[[SearchState, GenerationReport], None] | None = None) -> SearchState:
        st = self.state
        while not st.finished:
            if not self.generations_left():
                self._finish("max_generations")
                break
            if not self.may_start():
                self._finish("budget")
                break
            if not self.epochs_allow(1):
                self._finish("budget_epochs")
                break
            t0 = self.clock()
            try:
                report = self.generation()
            except BudgetExhausted as e:
                self._finish(e.reason)
                break
            except Extinct:
                self._finish("extinct")
                break
            report.seconds = self.clock() - t0
            if on_generation is not None:
                on_generation(st, report)
        return st

    def _finish(self, reason: str) -> None:
        self.state.finished = True
        self.state.stop_reason = reason
        self.state.elapsed = self.elapsed()

    # --- one generation -------------------------------------------------------------------
    def generation(self) -> GenerationReport:
        """One generation, changing the state in place. The runner checkpoints only after a
        complete one, so an interrupted generation runs again from the last checkpoint on
        --resume; when the budget runs out during it, the state and the RNG are rolled back
        to where it began (the search ends as if it had stopped before it)."""
        from .state import from_dict, to_dict

        backup = to_dict(self.state)
        rng_backup = self.rng.getstate()
        self._generation_epochs = 0
        try:
            return self._generation()
        except BudgetExhausted:
            restored = from_dict(backup)
            self.state.__dict__.update(restored.__dict__)
            self.rng.setstate(rng_backup)
            raise
        finally:
            self._generation_epochs = 0      # committed to the history, or rolled back

    def _generation(self) -> GenerationReport:
        st = self.state
        g = st.generation + 1
        rejections_before = st.param_rejections
        if g > 0 and not any(not i.dead for i in st.population):
            raise Extinct()
        survivors, children = self._breed(g)
        everyone = survivors + children
        # stepwise (the paper): everyone trains on; full: survivors are fully trained already
        trained = children if self.s.evaluation == "full" else everyone
        trained_before = {i.id: i.epochs for i in trained}
        if self.s.evaluation == "full":
            self._train_full(g, trained)
        else:
            self._train(g, trained)
        update_fitness(st, trained)
        record_history(st, g, trained, trained_before)
        self._select(g, everyone)
        st.generation = g
        st.rng_state = self.rng.getstate()
        st.elapsed = self.elapsed()
        return generation_report(st, g, trained, trained_before, rejections_before)

    # --- steps 1-5: breeding (module :mod:`.breeding`) ----------------------------------
    def _breed(self, g: int) -> tuple[list[Individual], list[Individual]]:
        """(survivors, children) of generation ``g``."""
        st, s, rng, count = self.state, self.s, self.rng, self.evaluator.count_params
        if g == 0:
            return [], breeding.initial_population(st, s, rng, count, g)
        breeding.evolve_gene_pools(st, s, rng, g)
        breeding.breed_reduction_cells(st, s, rng, g)
        survivors = [i for i in st.population if not i.dead]
        return survivors, breeding.breed_children(st, s, rng, count, g, survivors)

    # --- step 6: training -----------------------------------------------------------------
    def _train(self, g: int, everyone: list[Individual]) -> None:
        """Children one epoch, survivors one more, T_c reachers one extra; E_max or a
        failure ends an individual (and E_max bars its reduction cell)."""
        st, s = self.state, self.s
        self._train_round(everyone, g)
        self._rescore(everyone)
        if g > 0:
            bonus = [i for i in everyone if not i.dead and i.failure is None
                     and i.fitness >= st.t_c and i.epochs < s.max_epochs]
            self._train_round(bonus, g)
            self._rescore(everyone)
        for ind in everyone:
            if ind.epochs >= s.max_epochs or ind.failure is not None:
                ind.dead = True
            if ind.epochs >= s.max_epochs:
                st.reductions[ind.reduction_id].barred = True

    def _train_full(self, g: int, children: list[Individual]) -> None:
        """``search.evaluation: full`` (beyond the paper): each child trains from scratch
        (or from inherited weights) one epoch a round until E_max, and is ranked on its
        accuracy then. It stays alive, as a parent that trains no more, until the
        oldest-dies rule or the P_i trim removes it; its reduction cell is not barred."""
        if not self.epochs_allow(len(children) * self.s.max_epochs):
            raise BudgetExhausted("budget_epochs")   # before any job starts, as in _train_round
        todo = children
        while todo := [i for i in todo if i.failure is None and i.epochs < self.s.max_epochs]:
            self._train_round(todo, g, final_only=True)   # nobody reads an accuracy before E_max
        for ind in children:
            ind.dead = ind.failure is not None

    def _rescore(self, everyone: list[Individual]) -> None:
        if self.s.fitness == "cohort":
            rescore_by_cohort(self.state, everyone)

    def _train_round(self, individuals: list[Individual], g: int, final_only: bool = False) -> None:
        """One more epoch for each of ``individuals``; ``final_only``: evaluated only when
        that epoch is E_max."""
        st = self.state
        jobs = [TrainJob(i.id, st.genome_of(i), i.epochs + 1, job_seed(st.seed, i.id, i.epochs + 1),
                         st.store_index if (self.s.weight_sharing and i.epochs == 0) else None,
                         evaluate=not final_only or i.epochs + 1 == self.s.max_epochs)
                for i in individuals]
        if not jobs:
            return
        if not self.epochs_allow(len(jobs)):
            # known before any job starts: the generation would be rolled back anyway
            raise BudgetExhausted("budget_epochs")
        t0 = self.clock()
        results = self.executor.map(jobs, self.may_start)
        st.train_seconds += self.clock() - t0
        if any(r is None for r in results):
            raise BudgetExhausted("budget")
        self._generation_epochs += len(jobs)
        for ind, res in zip(individuals, results):
            apply_result(ind, res)

    # --- step 7: survivor selection, thresholds, weight store ------------------------------
    def _select(self, g: int, everyone: list[Individual]) -> None:
        st, s = self.state, self.s
        st.population = self._select_survivors(everyone, kill_oldest=g > 0)
        self._trim_reduction_population()
        ranked = sorted((i.fitness for i in st.population), reverse=True)
        st.t_g = ranked[min(s.population, len(ranked)) - 1] if ranked else 0.0
        st.t_c = s.tc_factor * st.t_g
        # weight store: every module of a living individual that beats its key's best
        # validation accuracy (accuracy, not a cohort fitness: the store keeps weights)
        if s.weight_sharing:
            candidates = [StoreCandidate(i.id, st.genome_of(i), i.epochs, i.accuracy)
                          for i in st.population if i.failure is None and i.epochs > 0]
            st.store_index = self.evaluator.update_store(candidates, st.store_index, g)

    def _select_survivors(self, everyone: list[Individual], kill_oldest: bool) -> list[Individual]:
        """Elitism, the oldest dies (never the elite), the dead are dropped, trim to P_i.

        The elite is the best *living* individual: one that reached E_max cannot train on,
        and the best ever seen is kept in ``state.best`` regardless."""
        s = self.s
        living = [i for i in everyone if not i.dead]
        if not living:
            return []
        elite = max(living, key=lambda i: (i.fitness, -i.born))
        oldest = min(living, key=lambda i: (i.born, -i.epochs, _num(i.id))) if kill_oldest else None
        keep = [i for i in living if i is elite or i is not oldest]
        rest = sorted((i for i in keep if i is not elite), key=lambda i: (-i.fitness, i.born, _num(i.id)))
        return [elite] + rest[: s.population - 1]

    def _trim_reduction_population(self) -> None:
        st, s = self.state, self.s
        in_use = {i.reduction_id for i in st.population}
        others = [r for r in st.reductions.values() if r.id not in in_use and not r.barred]
        # an untried cell ranks with the neutral fitness T_g, as in tournaments
        others.sort(key=lambda r: (-(st.t_g if r.fitness is None else r.fitness), _num(r.id)))
        room = max(0, s.reduction_population - len(in_use))
        keep = in_use | {r.id for r in others[:room]}
        st.reductions = {rid: r for rid, r in st.reductions.items() if rid in keep}


# --- bookkeeping after training ---------------------------------------------------------
def apply_result(ind: Individual, res: TrainResult) -> None:
    ind.epochs = res.epoch
    ind.fitness = ind.accuracy = res.fitness
    ind.params = res.params
    if res.epoch == 1:
        ind.inherited = res.inherited
    ind.seconds += res.seconds
    if res.failure:
        ind.failure = res.failure
        ind.fitness = ind.accuracy = 0.0


def rescore_by_cohort(st: SearchState, trained: list[Individual]) -> None:
    """``search.fitness: cohort``: the fitness of each individual of this generation
    becomes the percentile of its latest accuracy among all accuracies measured after as
    many epochs, in earlier generations and this one (:mod:`.fitness`); a failure keeps
    fitness 0."""
    ok = [i for i in trained if i.failure is None]
    for ind, score in zip(ok, cohort_fitness(st.history, [(i.epochs, i.accuracy) for i in ok])):
        ind.fitness = score

def update_fitness(st: SearchState, trained: list[Individual]) -> None:
    """Gene and reduction-cell fitness: the best of any individual that used them."""
    for ind in trained:
        red = st.reductions[ind.reduction_id]
        red.fitness = ind.fitness if red.fitness is None else max(red.fitness, ind.fitness)
        for pool, chrom in (("normal", ind.normal), ("reduction", red.chromosome)):
            for gid in set(st.cell_genome(pool, chrom).coding_genes()):
                gene = st.genes[pool][gid]
                gene.fitness = ind.fitness if gene.fitness is None else max(gene.fitness, ind.fitness)
        if ind.failure is None and (st.best is None or ind.fitness > st.best.fitness):
            st.best = BestRecord(st.genome_of(ind).to_dict(), ind.fitness, ind.params,
                                 st.generation + 1, ind.id, ind.epochs, ind.accuracy)

def record_history(st: SearchState, g: int, trained: list[Individual], before: dict[str, int]) -> None:
    for ind in trained:
        st.history.append({
            "generation": g, "id": ind.id, "parents": ",".join(ind.parents),
            "normal": ind.normal.to_text(),
            "reduction": st.reductions[ind.reduction_id].chromosome.to_text(),
            "reduction_id": ind.reduction_id, "born": ind.born, "epochs": ind.epochs,
            "epochs_this_generation": ind.epochs - before[ind.id],
            "fitness": ind.fitness, "accuracy": ind.accuracy, "params": ind.params, "inherited": ind.inherited,
            "seconds": round(ind.seconds, 4), "dead": ind.dead, "failure": ind.failure,
            "genome": st.genome_of(ind).to_json(),
        })



def generation_report(st: SearchState, g: int, everyone: list[Individual], trained_before: dict[str, int],
                      rejections_before: int) -> GenerationReport:
    fits = [i.fitness for i in everyone]
    return GenerationReport(
        generation=g,
        best_fitness=max(fits, default=0.0),
        mean_fitness=sum(fits) / len(fits) if fits else 0.0,
        best_ever=st.best.fitness if st.best else 0.0,
        t_g=st.t_g, t_c=st.t_c,
        normal_pool=len(st.genes["normal"]), reduction_pool=len(st.genes["reduction"]),
        reduction_population=len(st.reductions), population=len(st.population),
        trained=len(everyone),
        epochs_trained=sum(i.epochs - trained_before[i.id] for i in everyone),
        failures=sum(1 for i in everyone if i.failure is not None),
        param_rejections=st.param_rejections - rejections_before,
        seconds=0.0, elapsed=st.elapsed, train_seconds=st.train_seconds,
        epochs_total=st.epochs_trained(),
        best_accuracy=max((i.accuracy for i in everyone), default=0.0),
    )


def _num(identifier: str) -> int:
    return int(identifier[1:])
