"""What skipping the validation pass saves under ``search.evaluation: full`` (not a test).

Trains the first epoch of a few random genomes twice at the powered confirmation's
setting (bench/full8g2v4.sh: C = 8, 32x32, 4,000 validation images, 1,000 training
images), once with the validation pass (``TrainJob(evaluate=True)``) and once without, and
prints the time of each: the share of a ``full`` candidate's epoch (before E_max) that
the evaluation used to take. Needs data/cifar10-cpu-t10k.npz (docs/benchmarks.md).

  OMP_NUM_THREADS=1 python bench/eval_skip.py [--genomes 3] [--out /tmp/eval_skip]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

FULL8G2V4 = ("search.evaluation=full,search.weight_sharing=false,search.channels=8,search.max_params=42000,"
             "search.max_epochs=8,search.population=4,search.reduction_population=4,search.max_generations=2,"
             "search.budget_hours=6,datasets.cifar10.val_size=4000").split(",")
DATA = ["datasets.cifar10.image_size=null", "datasets.cifar10.path=data/cifar10-cpu-t10k.npz"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--genomes", type=int, default=3)
    p.add_argument("--out", default="/tmp/eval_skip")
    a = p.parse_args()
    import torch

    from nasgep.config import load_config
    from nasgep.search.evaluator import TrainJob
    from nasgep.search.loop import SearchSettings
    from nasgep.search.sample import sample_genome
    from nasgep.search.torch_evaluator import TorchEvaluator

    torch.set_num_threads(1)
    config = load_config("config/cifar10-cpu.yaml", DATA + FULL8G2V4)
    shutil.rmtree(a.out, ignore_errors=True)
    ev = TorchEvaluator(config, "cifar10", a.out, 0, device="cpu")
    ev.check_inputs()
    settings = SearchSettings.from_config(config)
    for k in range(a.genomes):
        genome = sample_genome(settings, 100 + k, ev.count_params)[0]
        took = {}
        for evaluate in (True, False):
            t0 = time.perf_counter()
            ev.train(TrainJob(f"g{k}-{evaluate}", genome, 1, 5, evaluate=evaluate))
            took[evaluate] = time.perf_counter() - t0
        print(f"genome {k}: epoch with validation {took[True]:.1f} s, without {took[False]:.1f} s, "
              f"ratio {took[False] / took[True]:.2f}", flush=True)


if __name__ == "__main__":
    main()
