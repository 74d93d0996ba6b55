"""Throughput of the ImageNet mobile-setting training loader, by ``num_workers``: JPEG
decoding, random-resized crop to 224, flip and colour jitter per image, as the trainer's
DataLoader runs them (nasgep.data.FolderImages + nasgep.augment.mobile_transform).

  OMP_NUM_THREADS=1 .venv/bin/python bench/bench_loader.py [--images 240] [--workers 0 1 2]

Writes a temporary ImageNet-format folder of 500x375 JPEGs (ImageNet's typical size),
then times one epoch per setting (worker start-up included, as each epoch of a training
starts its workers) and reports images/s and the CPU cores kept busy (CPU seconds of the
process and its finished workers over wall seconds).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from nasgep.augment import AugmentSettings, mobile_transform
from nasgep.data import FolderImages


def write_folder(root: Path, n: int, classes: int = 4) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / "train" / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.JPEG", quality=90)


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def epoch(images: FolderImages, workers: int, batch: int) -> tuple[float, float]:
    loader = DataLoader(images, batch_size=batch, shuffle=True, num_workers=workers)
    start_wall, start_cpu = time.perf_counter(), cpu_seconds()
    seen = 0
    for x, _ in loader:
        seen += len(x)
    del loader                                    # joins the workers, so their CPU time counts
    wall = time.perf_counter() - start_wall
    return seen / wall, (cpu_seconds() - start_cpu) / wall


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=240)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batch", type=int, default=32)
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(Path(tmp), args.images)
        train = FolderImages(Path(tmp) / "train", 224)
        images = train.augmented(mobile_transform(224, AugmentSettings(random_resized_crop=True,
                                                                       color_jitter=0.4)))
        epoch(images, 0, args.batch)               # warm the page cache and the imports
        print(f"{args.images} JPEGs 500x375 -> 224x224, batch {args.batch}, {os.cpu_count()} CPUs")
        print("| num_workers | images/s | CPU cores busy |\n|---|---|---|")
        for workers in args.workers:
            rate, busy = epoch(images, workers, args.batch)
            print(f"| {workers} | {rate:.0f} | {busy:.2f} |")


if __name__ == "__main__":
    main()
