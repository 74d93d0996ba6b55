"""Download (if allowed) and check a dataset of the config, and summarise it.

  nasgep prepare --config config/paper.yaml --dataset cifar10 --out results/paper/data/cifar10.json

Loads the dataset both ways the other commands will (the search's training/validation
split, and the full training set with the test set), so that a missing file, a wrong
layout or an unreachable download shows up here, once, before a search or a training
starts. A folder dataset's images are all decoded once, before anything else is read
(a progress bar; ``--no-image-check`` skips it), so every unreadable file is named here,
in one line, and not hours into a search. The batch sizes of the config
(``search.batch_size``, ``train.batch_size``; ``transfer.batch_size`` for the transfer's
dataset) are checked against the training images. The summary (counts, classes,
channels, image size, mean/std) goes to ``--out`` as JSON, or to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..cli import add_config_arguments, load_args_config, output_file, seed_value, whole_number
from ..config import MAX_PROCESSES
from ..io import atomic_write_text

NAME = "prepare"
HELP = "download/validate a dataset and write a JSON summary (counts, classes, mean/std)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--dataset", required=True, help="dataset name in the config's 'datasets'")
    p.add_argument("--out", help="JSON file to write (default, or '-': print to stdout)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of the search's validation split (default 0)")
    p.add_argument("--no-image-check", action="store_true",
                   help="folder datasets: do not decode every image to find unreadable files")
    p.add_argument("--workers", type=lambda text: whole_number(text, 0, MAX_PROCESSES, "a number of processes"),
                   default=min(8, len(os.sched_getaffinity(0))),
                   help="processes decoding a folder dataset's images (default: min(8, the CPUs this "
                        "process may use))")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _class_counts(source, num_classes: int) -> list[int]:
    counts = [0] * num_classes
    for label in source.targets:
        counts[int(label)] += 1
    return counts


def _check_every_image(config: dict, name: str, workers: int, progress: bool | None) -> None:
    """Decode every image of a folder dataset (train/ and val/), and name all the
    unreadable ones in one error. Before the dataset is loaded: loading decodes a sample
    for the mean/std, which would stop at its first unreadable file."""
    from ..data import check_images, folder_images, unreadable_error

    train, test = folder_images(name, config["datasets"][name])
    problems = []
    for part, images in (("training", train), ("test", test)):
        problems += check_images(images, f"{name}: reading the {part} images", workers=max(0, workers),
                                 progress=progress)
    if problems:
        raise unreadable_error(problems)


def _check_batch_sizes(config: dict, name: str, search, final) -> None:
    """Fewer training images than one batch of the config's trainings of ``name``: the
    search's (after the validation split) and the full training's, or the transfer's
    for the transfer's dataset (the one such check: :func:`nasgep.data.check_batch`)."""
    from ..data import check_batch

    if name == config["transfer"]["dataset"] and name not in config["workflow"]["search_datasets"]:
        check_batch(final, config["transfer"]["batch_size"], "transfer.batch_size")
        return
    check_batch(search, config["search"]["batch_size"], "search.batch_size")
    check_batch(final, config["train"]["batch_size"], "train.batch_size")


def run(args: argparse.Namespace) -> int:
    from ..config import dataset_name
    from ..data import load_dataset

    config = load_args_config(args)
    dataset_name(config, args.dataset)
    if args.out == "-":
        args.out = None
    if args.out:
        from .. import outdir

        output_file(args.out, "the data summary", f"{args.dataset}.json")
        outdir.refuse_inside_run(Path(args.out), "the data summary")    # before the (long) image check
        outdir.refuse_foreign_file(Path(args.out), "a data summary", "class_counts")
    entry = config["datasets"][args.dataset]
    if entry["kind"] == "folder" and not args.no_image_check:
        from ..data import listed_folder_dataset

        # the quick checks first: decoding every image may take many minutes
        _check_batch_sizes(config, args.dataset, *(listed_folder_dataset(config, args.dataset, purpose, args.seed)
                                                    for purpose in ("search", "final")))
        _check_every_image(config, args.dataset, args.workers, False if args.no_progress else None)
    final = load_dataset(config, args.dataset, "final", seed=args.seed)     # DataError: one line, exit 2
    search = load_dataset(config, args.dataset, "search", seed=args.seed)
    _check_batch_sizes(config, args.dataset, search, final)
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
