"""How reproducible is a genome's trained accuracy across training seeds at a given
protocol size? (issue 9), not a test. Trains the random genomes of a search_phase.py run
with two training seeds under config overrides (e.g. more images or epochs) and reports
Kendall's tau between the two seeds' accuracies: no search fitness can rank genomes
better than the target ranks itself.

  python bench/seed_ceiling.py --config config/cifar10-cpu.yaml --genomes results/cifar10-cpu/searchphase/random \
      --out results/cifar10-cpu/ceiling-4k --set datasets.cifar10.max_train=4000 --set train.epochs=8
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    from search_phase import job_train

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--genomes", required=True, help="folder of r*.json random genomes")
    p.add_argument("--out", required=True)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    files = sorted(Path(a.genomes).glob("r*.json"))[: a.count]
    jobs = [(a.config, a.set, "cifar10", json.loads(f.read_text())["genome"], s,
             str(Path(a.out) / f.stem / f"s{s}.json"), {"genome": f.stem}) for f in files for s in (0, 1)]
    from nasgep.processes import die_with_parent
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn"), initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:     # workers end with the driver
        list(pool.map(job_train, *zip(*jobs)))
    from scipy import stats

    acc = {f.stem: [json.loads((Path(a.out) / f.stem / f"s{s}.json").read_text())["accuracy"] for s in (0, 1)]
           for f in files}
    res = stats.kendalltau([v[0] for v in acc.values()], [v[1] for v in acc.values()])
    mean = sum(sum(v) for v in acc.values()) / (2 * len(acc))
    print(f"{len(acc)} genomes, overrides {a.set}: mean accuracy {mean:.2f} %, "
          f"seed 0 vs seed 1 Kendall tau {res.statistic:.2f} (p = {res.pvalue:.3f})")
    for k, v in acc.items():
        print(f"  {k}: {v[0]:.2f} / {v[1]:.2f}")


if __name__ == "__main__":
    main()
