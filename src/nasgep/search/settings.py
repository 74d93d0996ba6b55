"""The sizes, rates and thresholds of one search, read from a config."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..gep import OperatorRates


@dataclass(frozen=True)
class SearchSettings:
    """The sizes, rates and thresholds of a search (config sections ``gep`` and ``search``;
    their defaults live in one place, ``nasgep/config.schema.yaml``: build it with
    :meth:`from_config`)."""

    population: int
    reduction_population: int
    gene_pool: int
    gene_pool_max: int
    genes_min: int
    genes_max: int
    max_epochs: int
    tc_factor: float
    max_params: int
    rebreed_tries: int
    budget_seconds: float
    budget_epochs: int | None
    max_generations: int | None
    weight_sharing: bool
    fitness: str  # search.fitness: accuracy (the paper) or cohort
    evaluation: str  # search.evaluation: stepwise (the paper) or full
    cell_head: int
    gene_head: int
    tournament_size: int
    cell_rates: OperatorRates
    gene_rates: OperatorRates

    @classmethod
    def from_config(cls, config: Mapping) -> SearchSettings:
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
            budget_seconds=s["budget_hours"] * 3600, budget_epochs=s["budget_epochs"],
            max_generations=s["max_generations"],
            weight_sharing=s["weight_sharing"], fitness=s["fitness"],
            evaluation=s["evaluation"], cell_head=g["cell_head"], gene_head=g["gene_head"],
            tournament_size=g["tournament_size"],
            cell_rates=rates(g["cell_mutations"], g["head_functions_only"]),
            gene_rates=rates(g["gene_mutations"], False),
        )
