"""The breeding steps of a generation (SPEC section 3; paper III-A, steps 1-5).

Plain functions of ``(state, settings, rng, count_params)``: they change ``state`` in
place and draw every random number from ``rng``, the search's one seeded
``random.Random``, in a fixed order (so a seed gives the same search, and a resumed one
continues the same stream). :class:`~.loop.Search` calls them once per generation.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from ..gep import Chromosome, breed, random_chromosome, tournament
from ..space import GENE_ALPHABETS, Genome, Pool, cell_alphabet
from .settings import SearchSettings
from .state import Gene, Individual, ReductionCell, SearchState

CountParams = Callable[[Genome], int]
Draw = Callable[[], tuple[Chromosome, str]]


# --- steps 1-3 of the paper: the first generation -------------------------------------
def initial_population(st: SearchState, s: SearchSettings, rng: random.Random,
                       count_params: CountParams, g: int) -> list[Individual]:
    """Random gene pools, reduction cells and normal cells (within the parameter limit)."""
    for pool in ("normal", "reduction"):
        for _ in range(s.gene_pool):
            gid = st.next_id("gene")
            chrom = random_chromosome(rng, s.gene_head, GENE_ALPHABETS[pool], s.gene_rates)
            st.genes[pool][gid] = Gene(gid, chrom, born=g)
    red_alpha = cell_alphabet(st.pool_ids("reduction"))
    for _ in range(s.reduction_population):
        rid = st.next_id("reduction")
        chrom = random_chromosome(rng, s.cell_head, red_alpha, s.cell_rates)
        st.reductions[rid] = ReductionCell(rid, chrom, born=g)
    norm_alpha = cell_alphabet(st.pool_ids("normal"))
    children = []
    reduction_ids = list(st.reductions)
    for _ in range(s.population):
        def draw() -> tuple[Chromosome, str]:
            return (random_chromosome(rng, s.cell_head, norm_alpha, s.cell_rates),
                    rng.choice(reduction_ids))
        normal, rid = within_limit(st, s, count_params, draw, fallback=None)
        children.append(Individual(st.next_id("individual"), normal, rid, born=g))
    return children


# --- step 4: gene pools -------------------------------------------------------------------
def used_genes(st: SearchState, pool: Pool) -> set[str]:
    """Genes referred to by the coding region of a living individual's normal cell
    (normal pool) or of a living reduction cell (reduction pool)."""
    if pool == "normal":
        cells = [i.normal for i in st.population if not i.dead]
    else:
        cells = [r.chromosome for r in st.reductions.values()]
    return {gid for c in cells for gid in st.cell_genome(pool, c).coding_genes()}


def evolve_gene_pools(st: SearchState, s: SearchSettings, rng: random.Random, g: int) -> None:
    """Kill unused genes below T_g, then breed new genes by tournament."""
    for pool in ("normal", "reduction"):
        genes = st.genes[pool]
        used = used_genes(st, pool)
        for gid in list(genes):
            gene = genes[gid]
            if gid not in used and gene.fitness is not None and gene.fitness < st.t_g:
                del genes[gid]
        made = 0
        while made < s.genes_max and (len(genes) < s.gene_pool_max or made < s.genes_min):
            if len(genes) < 2:
                chrom = random_chromosome(rng, s.gene_head, GENE_ALPHABETS[pool], s.gene_rates)
                parents: tuple[str, ...] = ()
            else:
                members = list(genes.values())
                a = pick(rng, s, members, neutral=st.t_g)
                b = pick(rng, s, members, neutral=st.t_g)
                chrom = breed(rng, a.chromosome, b.chromosome, GENE_ALPHABETS[pool], s.gene_rates)
                parents = (a.id, b.id)
            gid = st.next_id("gene")
            genes[gid] = Gene(gid, chrom, born=g, parents=parents)
            made += 1


# --- step 5a: reduction cells -------------------------------------------------------------
def breed_reduction_cells(st: SearchState, s: SearchSettings, rng: random.Random, g: int) -> None:
    parents_pool = [r for r in st.reductions.values() if not r.barred]
    alpha = cell_alphabet(st.pool_ids("reduction"))
    for _ in range(s.reduction_population):
        if parents_pool:
            a = pick(rng, s, parents_pool, neutral=st.t_g)
            b = pick(rng, s, parents_pool, neutral=st.t_g)
            chrom = repair(rng, breed(rng, a.chromosome, b.chromosome, alpha, s.cell_rates), alpha)
            parents: tuple[str, ...] = (a.id, b.id)
        else:   # every cell barred: start afresh rather than stall
            chrom = random_chromosome(rng, s.cell_head, alpha, s.cell_rates)
            parents = ()
        rid = st.next_id("reduction")
        st.reductions[rid] = ReductionCell(rid, chrom, born=g, parents=parents)


# --- step 5b-c: normal population -----------------------------------------------------------
def breed_children(st: SearchState, s: SearchSettings, rng: random.Random, count_params: CountParams,
                   g: int, survivors: list[Individual]) -> list[Individual]:
    """One child per population slot: two tournament parents, a new normal cell paired
    with a tournament reduction cell, not a copy of an existing pair, within the limit."""
    alpha = cell_alphabet(st.pool_ids("normal"))
    living_reds = list(st.reductions.values())
    existing = {(i.normal, i.reduction_id) for i in survivors}
    parents_pool = survivors or st.population
    children = []
    for _ in range(len(st.population)):
        mother = pick(rng, s, parents_pool, neutral=st.t_g, key=lambda i: i.fitness)
        father = pick(rng, s, parents_pool, neutral=st.t_g, key=lambda i: i.fitness)

        def draw(mother: Individual = mother, father: Individual = father) -> tuple[Chromosome, str]:
            for _ in range(s.rebreed_tries):
                normal = repair(rng, breed(rng, mother.normal, father.normal, alpha, s.cell_rates), alpha)
                red = pick(rng, s, living_reds, neutral=math.inf)
                if (normal, red.id) not in existing:
                    return normal, red.id
            return normal, red.id

        normal, rid = within_limit(st, s, count_params, draw, fallback=(mother.normal, mother.reduction_id))
        existing.add((normal, rid))
        children.append(Individual(st.next_id("individual"), normal, rid, born=g,
                                   parents=(mother.id, father.id)))
    return children


def repair(rng: random.Random, chrom: Chromosome, alpha) -> Chromosome:
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
        symbols[i] = rng.choice(pool)
    return chrom.replace(symbols)


def within_limit(st: SearchState, s: SearchSettings, count_params: CountParams, draw: Draw,
                 fallback: tuple[Chromosome, str] | None) -> tuple[Chromosome, str]:
    """Draw (normal cell, reduction cell) pairs until the network fits ``max_params``.

    Both parts are drawn again each try (redrawing only the normal cell can make a
    population impossible to build). After ``rebreed_tries`` rejections the fallback
    (the parent's cells) is kept, or for random cells the smallest seen."""
    smallest = None
    for _ in range(s.rebreed_tries):
        normal, rid = draw()
        genome = Genome(st.cell_genome("normal", normal),
                        st.cell_genome("reduction", st.reductions[rid].chromosome))
        n = count_params(genome)
        if n <= s.max_params:
            return normal, rid
        st.param_rejections += 1
        if smallest is None or n < smallest[0]:
            smallest = (n, normal, rid)
    if fallback is not None:
        return fallback
    return smallest[1], smallest[2]


def pick(rng: random.Random, s: SearchSettings, members: Sequence, neutral: float, key=None):
    """Tournament where an unevaluated member (fitness None) counts as ``neutral``."""
    def fitness(m) -> float:
        f = key(m) if key else m.fitness
        return neutral if f is None else f
    return tournament(rng, members, fitness, s.tournament_size)
