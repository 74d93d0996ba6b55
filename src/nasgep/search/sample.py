"""The random-sampling baseline (paper Table I, last row; Yang et al.'s RI metric).

Normal and reduction cells are drawn at random from the same alphabets, head/tail sizes
and parameter limit as the search uses, over freshly drawn random gene pools; they are
then trained exactly like searched cells.
"""
from __future__ import annotations

import random
from collections.abc import Callable

from ..gep import random_chromosome
from ..space import GENE_ALPHABETS, CellGenome, Genome, cell_alphabet, gene_id
from .loop import SearchSettings


def sample_genome(settings: SearchSettings, seed: int,
                  count_params: Callable[[Genome], int]) -> tuple[Genome, int, int]:
    """A random genome within ``settings.max_params``.

    Returns (genome, parameters, rejections). Both cells are redrawn on each rejection;
    after ``rebreed_tries`` the smallest genome seen is kept (as the search does)."""
    rng = random.Random(seed)
    pools = {}
    for pool in ("normal", "reduction"):
        pools[pool] = {gene_id(i): random_chromosome(rng, settings.gene_head, GENE_ALPHABETS[pool],
                                                     settings.gene_rates)
                       for i in range(settings.gene_pool)}
    smallest: tuple[int, Genome] | None = None
    for tries in range(settings.rebreed_tries):
        cells = {}
        for pool in ("normal", "reduction"):
            chrom = random_chromosome(rng, settings.cell_head, cell_alphabet(list(pools[pool])),
                                      settings.cell_rates)
            cells[pool] = CellGenome(pool, chrom, pools[pool]).used_only()
        genome = Genome(cells["normal"], cells["reduction"]).validate()
        n = count_params(genome)
        if n <= settings.max_params:
            return genome, n, tries
        if smallest is None or n < smallest[0]:
            smallest = (n, genome)
    assert smallest is not None
    return smallest[1], smallest[0], settings.rebreed_tries


def largest_of(settings: SearchSettings, seed: int, count_params: Callable[[Genome], int],
               k: int) -> tuple[Genome, int, list[int]]:
    """The size-only baseline: of ``k`` random genomes (:func:`sample_genome` with seeds
    seed*k ... seed*k + k-1; ``k`` = 1 is the plain draw with ``seed``), the one with the
    most parameters. A search under a parameter limit may win by picking larger cells;
    this baseline picks by size alone (docs/search-quality.md, "Size-only baseline").
    Returns (genome, parameters, the parameters of every draw)."""
    if k < 1:
        raise ValueError(f"largest_of needs k >= 1, got {k}")
    seeds = [seed] if k == 1 else [seed * k + j for j in range(k)]
    draws = [sample_genome(settings, s, count_params)[:2] for s in seeds]
    genome, params = max(draws, key=lambda d: d[1])
    return genome, params, [d[1] for d in draws]
