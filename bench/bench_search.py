"""Benchmark of the search (issue 5), not a test.

1. Runs a NASGEP search on digits (paper population sizes, small networks) and reports
   the share of its wall time spent outside training and evaluation (goal <= 5 %).
2. Trains the best searched genome and random genomes (``nasgep sample``'s draw, same
   limits) the same way, over several training seeds, and reports test accuracy.

  .venv/bin/python bench/bench_search.py --generations 6 --random 5 --seeds 3

Prints a Markdown summary on stdout; progress on stderr.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from nasgep.config import load_config  # noqa: E402
from nasgep.data import load_dataset  # noqa: E402
from nasgep.nn import Macro, build_network, count_parameters  # noqa: E402
from nasgep.search.loop import SearchSettings  # noqa: E402
from nasgep.search.runner import run_search  # noqa: E402
from nasgep.search.sample import sample_genome  # noqa: E402
from nasgep.search.torch_evaluator import search_param_counter  # noqa: E402
from nasgep.space import Genome  # noqa: E402
from nasgep.train import Trainer, training_settings  # noqa: E402


def train_test(config: dict, genome: Genome, seed: int) -> tuple[float, int]:
    data = load_dataset(config, "cifar10", purpose="final", seed=seed)
    t = config["train"]
    net = build_network(genome, Macro(channels=t["channels"], cells_per_stage=t["cells_per_stage"],
                                       num_classes=data.num_classes, in_channels=data.in_channels), seed=seed)
    trainer = Trainer(net, data, training_settings(config), seed=seed, progress=False)
    trainer.fit()
    return trainer.evaluate("eval")["top1"], count_parameters(net)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generations", type=int, default=6)
    p.add_argument("--random", type=int, default=5, help="random genomes to train")
    p.add_argument("--seeds", type=int, default=3, help="training seeds per genome")
    p.add_argument("--epochs", type=int, default=6, help="full-training epochs")
    p.add_argument("--search-seed", type=int, default=0)
    args = p.parse_args()

    overrides = ["tracking.enabled=false", f"search.max_generations={args.generations}",
                 "search.population=10", "search.reduction_population=10", "search.gene_pool=50",
                 "search.gene_pool_max=100", "search.genes_min=2", "search.genes_max=10",
                 "search.max_epochs=10", "search.budget_hours=10", f"train.epochs={args.epochs}"]
    config = load_config(ROOT / "config/demo.yaml", overrides)
    out = Path(tempfile.mkdtemp(prefix="nasgep-bench-search-"))
    t0 = time.perf_counter()
    run_search(config, dataset="cifar10", seed=args.search_seed, out_dir=out, progress=False)
    wall = time.perf_counter() - t0
    summary = json.loads((out / "search.json").read_text())
    best = Genome.load(out / "best.json")

    settings = SearchSettings.from_config(config)
    counter = search_param_counter(config, "cifar10")
    results: dict[str, list[float]] = {"searched": []}
    params: dict[str, int] = {}
    for seed in range(args.seeds):
        acc, params["searched"] = train_test(config, best, seed)
        results["searched"].append(acc)
        print(f"searched seed {seed}: {acc:.2f}%", file=sys.stderr)
    for r in range(args.random):
        genome, _, _ = sample_genome(settings, 1000 + r, counter)
        name = f"random {r}"
        results[name] = []
        for seed in range(args.seeds):
            acc, params[name] = train_test(config, genome, seed)
            results[name].append(acc)
        print(f"{name}: {statistics.mean(results[name]):.2f}%", file=sys.stderr)

    print(f"search: {summary['generations']} generations, {wall:.1f} s wall "
          f"({summary['elapsed_seconds']:.1f} s in the loop, {summary['train_seconds']:.1f} s training); "
          f"outside training and evaluation: **{100 * summary['outside_training_share']:.1f} %**\n")
    print("| cells | test accuracy (%), mean ± std over seeds | params |")
    print("|---|---|---|")
    for name, accs in results.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"| {name} | {statistics.mean(accs):.2f} ± {sd:.2f} | {params[name]:,} |")
    rnd = [statistics.mean(v) for k, v in results.items() if k != "searched"]
    print(f"\nsearched {statistics.mean(results['searched']):.2f} % vs random mean "
          f"{statistics.mean(rnd):.2f} % (best random {max(rnd):.2f} %)")


if __name__ == "__main__":
    main()
