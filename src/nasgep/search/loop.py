"""The NASGEP search loop (SPEC section 3; paper III-A, steps 1-9).

Torch-free: candidates are trained through an executor over an :class:`Evaluator`, and
every random draw comes from one ``random.Random`` seeded by the run, whose state is
checkpointed with the rest of the search.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ..gep import Chromosome, OperatorRates, breed, random_chromosome, tournament
from ..space import GENE_ALPHABETS, Genome, Pool, cell_alphabet
from .evaluator import Evaluator, StoreCandidate, TrainJob, TrainResult, job_seed
from .state import BestRecord, Gene, Individual, ReductionCell, SearchState


@dataclass(frozen=True)
class SearchSettings:
    """The sizes, rates and thresholds of a search (config sections ``gep`` and ``search``)."""

    population: int = 10
    reduction_population: int = 10
    gene_pool: int = 50
    gene_pool_max: int = 100
    genes_min: int = 2
    genes_max: int = 10
    max_epochs: int = 10
    tc_factor: float = 0.75
    max_params: int = 300_000
    rebreed_tries: int = 20
    budget_seconds: float = 24 * 3600
    max_generations: int | None = None
    weight_sharing: bool = True
    cell_head: int = 4
    gene_head: int = 1
    tournament_size: int = 3
    cell_rates: OperatorRates = OperatorRates(mutations=2, head_functions_only=True)
    gene_rates: OperatorRates = OperatorRates(mutations=1)

    @classmethod
    def from_config(cls, config: Mapping) -> "SearchSettings":
        s, g = config["search"], config["gep"]

        def rates(k: float, functions_only: bool) -> OperatorRates:
            return OperatorRates(mutations=k, is_transposition=g["is_rate"],
                                 ris_transposition=g["ris_rate"], one_point=g["one_point_rate"],
                                 two_point=g["two_point_rate"], head_functions_only=functions_only,
                                 function_bias=g["function_bias"])

        return cls(
            population=s["population"], reduction_population=s["reduction_population"],
            gene_pool=s["gene_pool"], gene_pool_max=s["gene_pool_max"],
            genes_min=s["genes_min"], genes_max=s["genes_max"], max_epochs=s["max_epochs"],
            tc_factor=s["tc_factor"], max_params=s["max_params"], rebreed_tries=s["rebreed_tries"],
            budget_seconds=s["budget_hours"] * 3600, max_generations=s["max_generations"],
            weight_sharing=s["weight_sharing"], cell_head=g["cell_head"], gene_head=g["gene_head"],
            tournament_size=g["tournament_size"],
            cell_rates=rates(g["cell_mutations"], g["head_functions_only"]),
            gene_rates=rates(g["gene_mutations"], False),
        )


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


class BudgetExhausted(Exception):
    """Raised inside a generation when the budget forbids the next training job."""


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

    # --- budget -------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self._elapsed_at_start + (self.clock() - self._started)

    def may_start(self) -> bool:
        return self.elapsed() < self.s.budget_seconds

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
            t0 = self.clock()
            try:
                report = self.generation()
            except BudgetExhausted:
                self._finish("budget")
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
        """One generation on a working copy of the state; committed only when complete,
        so an interrupted generation leaves the last checkpointable state intact."""
        from .state import from_dict, to_dict

        backup = to_dict(self.state)
        rng_backup = self.rng.getstate()
        try:
            return self._generation()
        except BudgetExhausted:
            restored = from_dict(backup)
            self.state.__dict__.update(restored.__dict__)
            self.rng.setstate(rng_backup)
            raise

    def _generation(self) -> GenerationReport:
        st, s = self.state, self.s
        g = st.generation + 1
        rejections_before = st.param_rejections
        if g > 0 and not any(not i.dead for i in st.population):
            raise Extinct()
        if g == 0:
            children = self._initial_population(g)
            survivors: list[Individual] = []
        else:
            self._evolve_gene_pools(g)
            self._breed_reduction_cells(g)
            survivors = [i for i in st.population if not i.dead]
            children = self._breed_children(g, survivors)

        # 4. training: children one epoch, survivors one more, T_c reachers one extra
        trained_before = {i.id: i.epochs for i in survivors + children}
        everyone = survivors + children
        self._train_round(everyone, g)
        if g > 0:
            bonus = [i for i in everyone if not i.dead and i.failure is None
                     and i.fitness >= st.t_c and i.epochs < s.max_epochs]
            self._train_round(bonus, g)
        for ind in everyone:
            if ind.epochs >= s.max_epochs or ind.failure is not None:
                ind.dead = True
            if ind.epochs >= s.max_epochs:
                st.reductions[ind.reduction_id].barred = True

        self._update_fitness(everyone)
        self._record_history(g, everyone, trained_before)

        # 5. survivor selection
        st.population = self._select_survivors(everyone, kill_oldest=g > 0)
        self._trim_reduction_population()

        # 6. thresholds
        ranked = sorted((i.fitness for i in st.population), reverse=True)
        st.t_g = ranked[min(s.population, len(ranked)) - 1] if ranked else 0.0
        st.t_c = s.tc_factor * st.t_g

        # weight store: every module of a living individual that beats its key's best
        if s.weight_sharing:
            candidates = [StoreCandidate(i.id, st.genome_of(i), i.epochs, i.fitness)
                          for i in st.population if i.failure is None and i.epochs > 0]
            st.store_index = self.evaluator.update_store(candidates, st.store_index, g)

        st.generation = g
        st.rng_state = self.rng.getstate()
        st.elapsed = self.elapsed()
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
        )

    # --- step 1-3 of the paper: the first generation ------------------------------------
    def _initial_population(self, g: int) -> list[Individual]:
        st, s = self.state, self.s
        for pool in ("normal", "reduction"):
            for _ in range(s.gene_pool):
                gid = st.next_id("gene")
                chrom = random_chromosome(self.rng, s.gene_head, GENE_ALPHABETS[pool], s.gene_rates)
                st.genes[pool][gid] = Gene(gid, chrom, born=g)
        red_alpha = cell_alphabet(st.pool_ids("reduction"))
        for _ in range(s.reduction_population):
            rid = st.next_id("reduction")
            chrom = random_chromosome(self.rng, s.cell_head, red_alpha, s.cell_rates)
            st.reductions[rid] = ReductionCell(rid, chrom, born=g)
        norm_alpha = cell_alphabet(st.pool_ids("normal"))
        children = []
        reduction_ids = list(st.reductions)
        for _ in range(s.population):
            def draw() -> tuple[Chromosome, str]:
                return (random_chromosome(self.rng, s.cell_head, norm_alpha, s.cell_rates),
                        self.rng.choice(reduction_ids))
            normal, rid = self._within_limit(draw, fallback=None)
            children.append(Individual(st.next_id("individual"), normal, rid, born=g))
        return children

    # --- step 4: gene pools ---------------------------------------------------------------
    def _used_genes(self, pool: Pool) -> set[str]:
        """Genes referred to by the coding region of a living individual's normal cell
        (normal pool) or of a living reduction cell (reduction pool)."""
        st = self.state
        if pool == "normal":
            cells = [i.normal for i in st.population if not i.dead]
        else:
            cells = [r.chromosome for r in st.reductions.values()]
        return {gid for c in cells for gid in st.cell_genome(pool, c).coding_genes()}

    def _evolve_gene_pools(self, g: int) -> None:
        st, s = self.state, self.s
        for pool in ("normal", "reduction"):
            genes = st.genes[pool]
            used = self._used_genes(pool)
            for gid in list(genes):
                gene = genes[gid]
                if gid not in used and gene.fitness is not None and gene.fitness < st.t_g:
                    del genes[gid]
            made = 0
            while made < s.genes_max and (len(genes) < s.gene_pool_max or made < s.genes_min):
                if len(genes) < 2:
                    chrom = random_chromosome(self.rng, s.gene_head, GENE_ALPHABETS[pool], s.gene_rates)
                    parents: tuple[str, ...] = ()
                else:
                    members = list(genes.values())
                    a = self._tournament(members, neutral=st.t_g)
                    b = self._tournament(members, neutral=st.t_g)
                    chrom = breed(self.rng, a.chromosome, b.chromosome, GENE_ALPHABETS[pool], s.gene_rates)
                    parents = (a.id, b.id)
                gid = st.next_id("gene")
                genes[gid] = Gene(gid, chrom, born=g, parents=parents)
                made += 1

    # --- step 5a: reduction cells ---------------------------------------------------------
    def _breed_reduction_cells(self, g: int) -> None:
        st, s = self.state, self.s
        parents_pool = [r for r in st.reductions.values() if not r.barred]
        alpha = cell_alphabet(st.pool_ids("reduction"))
        for _ in range(s.reduction_population):
            if parents_pool:
                a = self._tournament(parents_pool, neutral=st.t_g)
                b = self._tournament(parents_pool, neutral=st.t_g)
                chrom = self._repair(breed(self.rng, a.chromosome, b.chromosome, alpha, s.cell_rates), alpha)
                parents: tuple[str, ...] = (a.id, b.id)
            else:   # every cell barred: start afresh rather than stall
                chrom = random_chromosome(self.rng, s.cell_head, alpha, s.cell_rates)
                parents = ()
            rid = st.next_id("reduction")
            st.reductions[rid] = ReductionCell(rid, chrom, born=g, parents=parents)

    # --- step 5b-c: normal population -----------------------------------------------------
    def _breed_children(self, g: int, survivors: list[Individual]) -> list[Individual]:
        st, s = self.state, self.s
        alpha = cell_alphabet(st.pool_ids("normal"))
        living_reds = list(st.reductions.values())
        existing = {(i.normal, i.reduction_id) for i in survivors}
        parents_pool = survivors or st.population
        children = []
        for _ in range(len(st.population)):
            mother = self._tournament(parents_pool, neutral=st.t_g, key=lambda i: i.fitness)
            father = self._tournament(parents_pool, neutral=st.t_g, key=lambda i: i.fitness)

            def draw() -> tuple[Chromosome, str]:
                for _ in range(s.rebreed_tries):
                    normal = self._repair(breed(self.rng, mother.normal, father.normal, alpha, s.cell_rates), alpha)
                    red = self._tournament(living_reds, neutral=math.inf)
                    if (normal, red.id) not in existing:
                        return normal, red.id
                return normal, red.id

            normal, rid = self._within_limit(draw, fallback=(mother.normal, mother.reduction_id))
            existing.add((normal, rid))
            children.append(Individual(st.next_id("individual"), normal, rid, born=g,
                                       parents=(mother.id, father.id)))
        return children

    def _repair(self, chrom: Chromosome, alpha) -> Chromosome:
        """Replace gene ids that are no longer in the pool by random pool members.

        The kill rule spares only genes in *coding* regions, so a parent's non-coding
        part may name a removed gene; transposition and recombination can move it into
        a child's coding region, which would then refer to nothing."""
        pool = alpha.terminals
        missing = [i for i, sym in enumerate(chrom.symbols)
                   if not alpha.is_function(sym) and sym not in pool]
        if not missing:
            return chrom
        symbols = list(chrom.symbols)
        for i in missing:
            symbols[i] = self.rng.choice(pool)
        return chrom.replace(symbols)

    def _within_limit(self, draw: Callable[[], tuple[Chromosome, str]],
                      fallback: tuple[Chromosome, str] | None) -> tuple[Chromosome, str]:
        """Draw (normal cell, reduction cell) pairs until the network fits ``max_params``.

        Both parts are drawn again each try (redrawing only the normal cell can make a
        population impossible to build). After ``rebreed_tries`` rejections the fallback
        (the parent's cells) is kept, or for random cells the smallest seen."""
        st, s = self.state, self.s
        smallest = None
        for _ in range(s.rebreed_tries):
            normal, rid = draw()
            genome = Genome(st.cell_genome("normal", normal),
                            st.cell_genome("reduction", st.reductions[rid].chromosome))
            n = self.evaluator.count_params(genome)
            if n <= s.max_params:
                return normal, rid
            st.param_rejections += 1
            if smallest is None or n < smallest[0]:
                smallest = (n, normal, rid)
        if fallback is not None:
            return fallback
        return smallest[1], smallest[2]

    def _tournament(self, members: Sequence, neutral: float, key=None):
        """Tournament where an unevaluated member (fitness None) counts as ``neutral``."""
        def fitness(m) -> float:
            f = key(m) if key else m.fitness
            return neutral if f is None else f
        return tournament(self.rng, members, fitness, self.s.tournament_size)

    # --- step 6: training -----------------------------------------------------------------
    def _train_round(self, individuals: list[Individual], g: int) -> None:
        st = self.state
        jobs = [TrainJob(i.id, st.genome_of(i), i.epochs + 1, job_seed(st.seed, i.id, i.epochs + 1),
                         st.store_index if (self.s.weight_sharing and i.epochs == 0) else None)
                for i in individuals]
        if not jobs:
            return
        t0 = self.clock()
        results = self.executor.map(jobs, self.may_start)
        st.train_seconds += self.clock() - t0
        if any(r is None for r in results):
            raise BudgetExhausted()
        for ind, res in zip(individuals, results):
            self._apply(ind, res)

    @staticmethod
    def _apply(ind: Individual, res: TrainResult) -> None:
        ind.epochs = res.epoch
        ind.fitness = res.fitness
        ind.params = res.params
        if res.epoch == 1:
            ind.inherited = res.inherited
        ind.seconds += res.seconds
        if res.failure:
            ind.failure = res.failure
            ind.fitness = 0.0

    def _update_fitness(self, trained: list[Individual]) -> None:
        """Gene and reduction-cell fitness: the best of any individual that used them."""
        st = self.state
        for ind in trained:
            red = st.reductions[ind.reduction_id]
            red.fitness = ind.fitness if red.fitness is None else max(red.fitness, ind.fitness)
            for pool, chrom in (("normal", ind.normal), ("reduction", red.chromosome)):
                for gid in set(st.cell_genome(pool, chrom).coding_genes()):
                    gene = st.genes[pool][gid]
                    gene.fitness = ind.fitness if gene.fitness is None else max(gene.fitness, ind.fitness)
            if ind.failure is None and (st.best is None or ind.fitness > st.best.fitness):
                st.best = BestRecord(st.genome_of(ind).to_dict(), ind.fitness, ind.params,
                                     st.generation + 1, ind.id, ind.epochs)

    def _record_history(self, g: int, trained: list[Individual], before: dict[str, int]) -> None:
        st = self.state
        for ind in trained:
            st.history.append({
                "generation": g, "id": ind.id, "parents": ",".join(ind.parents),
                "normal": ind.normal.to_text(),
                "reduction": st.reductions[ind.reduction_id].chromosome.to_text(),
                "reduction_id": ind.reduction_id, "born": ind.born, "epochs": ind.epochs,
                "epochs_this_generation": ind.epochs - before[ind.id],
                "fitness": ind.fitness, "params": ind.params, "inherited": ind.inherited,
                "seconds": round(ind.seconds, 4), "dead": ind.dead, "failure": ind.failure,
            })

    # --- step 7: survivor selection -------------------------------------------------------
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


def _num(identifier: str) -> int:
    return int(identifier[1:])
