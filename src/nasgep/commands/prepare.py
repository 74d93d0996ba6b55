"""Download (if allowed) and check a dataset of the config, and summarise it.

  nasgep prepare --config config/paper.yaml --dataset cifar10 --out results/paper/data/cifar10.json

Loads the dataset both ways the other commands will (the search's training/validation
split, and the full training set with the test set), so that a missing file, a wrong
layout or an unreachable download shows up here, once, before a search or a training
starts. A folder dataset's images are all decoded once (a progress bar; ``--no-image-check``
skips it), so an unreadable file is named here and not hours into a search. The summary
(counts, classes, channels, image size, mean/std) goes to ``--out`` as JSON, or to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..cli import add_config_arguments, load_args_config, seed_value, whole_number
from ..io import atomic_write_text

NAME = "prepare"
HELP = "download/validate a dataset and write a JSON summary (counts, classes, mean/std)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--dataset", required=True, help="dataset name in the config's 'datasets'")
    p.add_argument("--out", help="JSON file to write (default: print to stdout)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of the search's validation split (default 0)")
    p.add_argument("--no-image-check", action="store_true",
                   help="folder datasets: do not decode every image to find unreadable files")
    p.add_argument("--workers", type=lambda text: whole_number(text, 0, 1024, "a number of processes"),
                   default=min(8, len(os.sched_getaffinity(0))),
                   help="processes decoding a folder dataset's images (default: min(8, the CPUs this "
                        "process may use))")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _class_counts(source, num_classes: int) -> list[int]:
    counts = [0] * num_classes
    for label in source.targets:
        counts[int(label)] += 1
    return counts


def _check_every_image(name: str, data, workers: int, progress: bool | None) -> None:
    from ..data import DataError, check_images

    problems = []
    for part, images in (("training", data.train), ("test", data.eval)):
        problems += check_images(images, f"{name}: reading the {part} images", workers=max(0, workers),
                                 progress=progress)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataError(f"{len(problems)} unreadable image(s): {'; '.join(problems[:3])}{more}")


def run(args: argparse.Namespace) -> int:
    from ..config import dataset_name
    from ..data import load_dataset

    config = load_args_config(args)
    dataset_name(config, args.dataset)
    if args.out:
        from .. import outdir

        outdir.refuse_inside_run(Path(args.out), "the data summary")    # before the (long) image check
    final = load_dataset(config, args.dataset, "final", seed=args.seed)     # DataError: one line, exit 2
    search = load_dataset(config, args.dataset, "search", seed=args.seed)
    entry = config["datasets"][args.dataset]
    if final.kind == "folder" and not args.no_image_check:
        _check_every_image(args.dataset, final, args.workers, False if args.no_progress else None)
    summary = {
        "dataset": args.dataset,
        "kind": final.kind,
        "label": entry.get("label"),
        "num_classes": final.num_classes,
        "classes": list(final.classes),
        "in_channels": final.in_channels,
        "image_size": final.image_size,
        "train": len(final.train),
        "test": len(final.eval),
        "search": {"train": len(search.train), "val": len(search.eval), "seed": args.seed},
        "mean": list(final.mean),
        "std": list(final.std),
        "class_counts": {"train": _class_counts(final.train, final.num_classes),
                         "test": _class_counts(final.eval, final.num_classes)},
    }
    text = json.dumps(summary, indent=2) + "\n"
    if args.out:
        out = Path(args.out)
        atomic_write_text(out, text)
        print(f"{args.dataset} ({final.kind}): {summary['train']} training images ({summary['search']['train']} + "
              f"{summary['search']['val']} validation in the search), {summary['test']} test images, "
              f"{final.num_classes} classes, {final.in_channels}x{final.image_size}x{final.image_size} -> {out}")
    else:
        print(text, end="")
    return 0
