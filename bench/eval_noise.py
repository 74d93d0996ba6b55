"""How much of the search-phase study's noise is the sampling noise of its evaluation sets
(issue 9; not a test).

bench/search_phase.py records, for every full training, which test images the trained
network classifies correctly. Two networks' accuracy difference on n images then has a
sampling variance of (d - delta**2) / n, d being the share of images on which exactly one
of them is right and delta their accuracy difference (a paired comparison on the same
images: McNemar's setting). This script reads those records and prints

- each network's accuracy on the whole test set, on the protocol's old 2,000-image
  subset (the same class-stratified draw as bench/cifar10_subset.py) and on the rest;
- the mean disagreement d over pairs of networks, and the sampling sd it implies for one
  network's share of a comparison, sqrt(d / 2n), at the validation and test sizes in use;
- a split-half check that needs no formula: over the networks, the variance of accuracy
  on one half of the test set minus its covariance with the other half is the sampling
  variance at that half's size;
- with ``--noise-sd`` (the training noise per training measured on the 2,000-image test
  set, bench/selection_ceiling.py's "training noise sd"), how it splits into test-set
  sampling and the networks' own seed-to-seed variation, and what it becomes on the
  whole test set;
- with ``--old`` (an earlier run's folder), whether the same genomes and training seeds
  give the same accuracies on the 2,000-image subset (the networks are deterministic).

  python bench/eval_noise.py /work/runs/evalsize --data data/cifar10-cpu-t10k.npz \
      --old /work/runs/confirm --noise-sd 0.94
"""
from __future__ import annotations

import argparse
import base64
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cifar10_subset import stratified  # noqa: E402


def load_correct(out: Path, n: int) -> dict[str, np.ndarray]:
    """Name (``train/<name>/s<k>``) -> boolean vector of correctly classified test images."""
    nets = {}
    for f in sorted((out / "train").glob("*/s*.json")):
        r = json.loads(f.read_text())
        if "correct" not in r:
            continue
        bits = np.unpackbits(np.frombuffer(base64.b64decode(r["correct"]), dtype=np.uint8))[:n].astype(bool)
        nets[f"{f.parent.name}/{f.stem}"] = bits
    return nets


def sampling_sd(d: float, n: int) -> float:
    """Points of accuracy: one network's share of the sampling sd of a paired difference."""
    return 100 * math.sqrt(d / (2 * n))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="bench/search_phase.py's output folder")
    p.add_argument("--data", type=Path, required=True, help="the .npz the trainings were tested on")
    p.add_argument("--subset", type=int, default=2000, help="size of the old class-stratified test subset")
    p.add_argument("--old", type=Path, default=None, help="an earlier run tested on the subset")
    p.add_argument("--noise-sd", type=float, default=None,
                   help="training noise sd per training measured on the subset (points)")
    p.add_argument("--sizes", default="1000,2000,4000,10000", help="evaluation set sizes to report")
    a = p.parse_args()
    with np.load(a.data) as d:
        y = d["y_test"]
    n = len(y)
    sub = np.zeros(n, dtype=bool)
    sub[stratified(y, a.subset, 0)] = True
    nets = load_correct(a.out, n)
    if len(nets) < 2:
        sys.exit(f"{a.out}: fewer than 2 trainings with per-image results")

    print(f"{len(nets)} networks, {n} test images ({a.subset}-image subset and {n - a.subset} others)")
    print(f"{'network':34} {'all':>7} {'subset':>7} {'others':>7} {'old subset':>10}")
    mismatches = 0
    for name, c in nets.items():
        old = ""
        if a.old is not None:
            f = a.old / "train" / (name.rsplit("/", 1)[0]) / f"{name.rsplit('/', 1)[1]}.json"
            if f.exists():
                before = json.loads(f.read_text())["accuracy"]
                old = f"{before:10.2f}"
                mismatches += abs(before - 100 * c[sub].mean()) > 1e-6
        print(f"{name:34} {100 * c.mean():7.2f} {100 * c[sub].mean():7.2f} {100 * c[~sub].mean():7.2f} {old}")
    if a.old is not None:
        print(f"old subset accuracies reproduced: {'yes' if mismatches == 0 else f'NO ({mismatches} differ)'}")

    names = list(nets)
    dis = [np.mean(nets[i] != nets[j]) for i, j in itertools.combinations(names, 2)]
    d = float(np.mean(dis))
    print(f"\ndisagreement d over {len(dis)} pairs: mean {d:.3f} (range {min(dis):.3f}-{max(dis):.3f})")
    print("sampling sd of one network's share of a paired comparison, sqrt(d / 2n), points:")
    for size in (int(s) for s in a.sizes.split(",")):
        print(f"  n = {size:6d}: {sampling_sd(d, size):.2f}")

    rng = np.random.default_rng(0)
    half = rng.permutation(n)[: n // 2]
    mask = np.zeros(n, dtype=bool)
    mask[half] = True
    acc_a = np.array([100 * nets[k][mask].mean() for k in names])
    acc_b = np.array([100 * nets[k][~mask].mean() for k in names])
    cov = float(np.cov(acc_a, acc_b)[0, 1])
    var = float((np.var(acc_a, ddof=1) + np.var(acc_b, ddof=1)) / 2)
    print(f"\nsplit halves ({n // 2} images each) over the networks: variance {var:.2f}, covariance "
          f"{cov:.2f} (the networks' own spread), so sampling variance {var - cov:.2f}, sd "
          f"{math.sqrt(max(var - cov, 0)):.2f} points at n = {n // 2} "
          f"(the formula sqrt(d / 2n): {sampling_sd(d, n // 2):.2f})")

    if a.noise_sd is not None:
        samp = sampling_sd(d, a.subset)
        model = math.sqrt(max(a.noise_sd ** 2 - samp ** 2, 0.0))
        whole = math.hypot(model, sampling_sd(d, n))
        print(f"\ntraining noise {a.noise_sd:.2f} on {a.subset} images = sampling {samp:.2f} (share "
              f"{samp ** 2 / a.noise_sd ** 2:.2f} of the variance) + the networks' own {model:.2f}; on all "
              f"{n} images it would be {whole:.2f}")


if __name__ == "__main__":
    main()
