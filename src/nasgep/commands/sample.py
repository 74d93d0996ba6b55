"""Draw a random genome (the random-sampling baseline) within the search's limits.

  nasgep sample --config config/paper.yaml --dataset cifar10 --seed 0 --out results/r0

Writes OUT/best.json in the same form as a search (method "random", fitness null), so
`nasgep train --genome OUT/best.json` trains it exactly like searched cells.
"""
from __future__ import annotations

import argparse
import json

from ..cli import load_args_config
from .search import add_common

NAME = "sample"
HELP = "draw random normal and reduction cells (random-sampling baseline)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..config import dataset_name
    from ..io import atomic_write_bytes
    from ..search.loop import SearchSettings
    from ..search.sample import sample_genome
    from ..search.torch_evaluator import search_param_counter

    config = load_args_config(args)
    dataset = dataset_name(config, args.dataset)
    settings = SearchSettings.from_config(config)
    genome, params, rejections = sample_genome(settings, args.seed, search_param_counter(config, dataset))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    best = {"genome": genome.to_dict(), "fitness": None, "params": params, "dataset": dataset,
            "seed": args.seed, "method": "random", "generation": None, "individual": None,
            "param_rejections": rejections}
    atomic_write_bytes(out / "best.json", (json.dumps(best, indent=2) + "\n").encode())
    from .. import tracking

    with tracking.start_run(config, "random", f"{dataset}-random-seed{args.seed}",
                            params={"dataset": dataset, "seed": args.seed, "max_params": settings.max_params,
                                    "genome": tracking.genome_text(genome)},
                            tags=tracking.run_tags(config, dataset=dataset, seed=args.seed, method="random")) as run:
        run.log_metrics({"params": params, "param_rejections": rejections})
        run.log_artifact(out / "best.json")
        run.log_dict(genome.to_dict(), "genome.json")
    print(f"random genome ({params} parameters at search size, {rejections} rejections) -> {out / 'best.json'}")
    return 0
