"""Write the CPU protocol's CIFAR-10 file: the first training images, a class-stratified
subset of the test set (the official test file after its first 1,000 images is grouped
by class, so its first N images are not a fair sample).

  python bench/cifar10_subset.py data/cifar10.npz data/cifar10-cpu.npz --train 10000 --test 2000

The input is the .npz that /work/shared/data/cifar10_jpeg_to_npz.py (or any converter to
the keys x_train, y_train, x_test, y_test) writes.
"""
from __future__ import annotations

import argparse

import numpy as np


def stratified(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = n // len(classes)
    picks = [rng.choice(np.flatnonzero(labels == c), per, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--train", type=int, default=None, help="keep the first N training images (default: all)")
    p.add_argument("--test", type=int, default=2000, help="test images kept (equal per class)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    with np.load(a.source) as d:
        arrays = {k: d[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    if a.train is not None:
        arrays["x_train"], arrays["y_train"] = arrays["x_train"][: a.train], arrays["y_train"][: a.train]
    keep = stratified(arrays["y_test"], a.test, a.seed)
    arrays["x_test"], arrays["y_test"] = arrays["x_test"][keep], arrays["y_test"][keep]
    np.savez(a.out, **arrays)
    print({k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
    main()
