"""Benchmark: genome -> network build time, and training throughput of a search network.

    .venv/bin/python bench/bench_build.py                     # CPU, search size C=16, N=3
    .venv/bin/python bench/bench_build.py --device cuda --batch 512

1. Build time: ``build_network`` on many random genomes (cells over a 50-gene pool per
   pool, as in the search's first generation); median, 90th percentile and max. The goal
   is a median of at most 50 ms, so building never shows next to a training epoch.
   Also the time of ``count_network_parameters`` (what the rejection loop calls).
2. Throughput: forward + backward + SGD step, images per second, batch of 32x32 images,
   on a few random search-size networks (median over them).

Not a test: numbers depend on the machine; docs/benchmarks.md records them.
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

import torch

from nasgep.gep import OperatorRates, random_chromosome
from nasgep.nn import Macro, build_network, count_network_parameters, count_parameters
from nasgep.space import GENE_ALPHABETS, CellGenome, Genome, cell_alphabet, gene_id


def random_genome(rng: random.Random, pool_size: int) -> Genome:
    """Normal and reduction cell, each over its own random pool of ``pool_size`` genes."""
    cells = {}
    for pool in ("normal", "reduction"):
        ids = [gene_id(i) for i in range(pool_size)]
        genes = {g: random_chromosome(rng, 1, GENE_ALPHABETS[pool]) for g in ids}
        cell = random_chromosome(rng, 4, cell_alphabet(ids), OperatorRates(head_functions_only=True))
        cells[pool] = CellGenome(pool, cell, genes)
    return Genome(cells["normal"], cells["reduction"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_build(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    genomes = [random_genome(rng, args.pool) for _ in range(args.genomes)]
    size = Macro(channels=args.channels, cells_per_stage=args.cells, num_classes=10)
    build_network(genomes[0], size, seed=0)  # warm-up: imports, allocator
    builds, counts, params = [], [], []
    for i, genome in enumerate(genomes):
        t = time.perf_counter()
        net = build_network(genome, size, seed=i)
        builds.append(time.perf_counter() - t)
        params.append(count_parameters(net))
        t = time.perf_counter()
        count_network_parameters(genome, size)
        counts.append(time.perf_counter() - t)
    ms = lambda v: f"{1000 * v:.1f} ms"  # noqa: E731
    print(f"build  C={args.channels} N={args.cells}, {len(genomes)} random genomes: "
          f"median {ms(statistics.median(builds))}, p90 {ms(percentile(builds, 0.9))}, "
          f"max {ms(max(builds))}")
    print(f"count_network_parameters: median {ms(statistics.median(counts))}")
    over = sum(p > 300_000 for p in params)
    print(f"parameters: median {statistics.median(params):,.0f}, min {min(params):,}, "
          f"max {max(params):,}; {over}/{len(params)} over 300,000")


def bench_throughput(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    rng = random.Random(args.seed + 1)
    rates = []
    for k in range(args.networks):
        genome = random_genome(rng, args.pool)
        net = build_network(genome, Macro(channels=args.channels, cells_per_stage=args.cells,
                                           num_classes=10), seed=k).to(device).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        x = torch.randn(args.batch, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (args.batch,), device=device)

        def step(net=net, opt=opt, x=x, y=y) -> None:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()

        for _ in range(args.warmup):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = args.steps * args.batch / (time.perf_counter() - t)
        rates.append(rate)
        print(f"  network {k}: {count_parameters(net):,} parameters, {rate:,.0f} images/s")
    print(f"train step (fwd+bwd+SGD) batch {args.batch} 32x32 on {device}: "
          f"median {statistics.median(rates):,.0f} images/s over {len(rates)} networks")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--channels", type=int, default=16, help="C (search: 16)")
    p.add_argument("--cells", type=int, default=3, help="N normal cells per stage (search: 3)")
    p.add_argument("--genomes", type=int, default=200, help="random genomes for the build timing")
    p.add_argument("--pool", type=int, default=50, help="genes per pool in each random genome")
    p.add_argument("--networks", type=int, default=5, help="random networks for the throughput")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-throughput", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads"
          + (f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""))
    bench_build(args)
    if not args.skip_throughput:
        bench_throughput(args)


if __name__ == "__main__":
    main()
