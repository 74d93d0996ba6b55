"""Fully train a genome and report its test error (paper IV-A, SPEC section 4).

  nasgep train --genome best.json --config config/paper.yaml --out results/train/c10_s0
  nasgep train --genome best.json --config config/paper.yaml --out DIR --variant cutout_dp
  nasgep train --genome best.json --config config/paper.yaml --out DIR --stem imagenet --dataset imagenet

Settings come from the config's ``train`` section; ``--variant NAME`` applies the
ablation ``ablations.NAME`` (CutOut, AutoAugment and drop-path switches); ``--stem
imagenet`` takes epochs, channels, batch size and lr from ``transfer`` and builds the
ImageNet stem. The network trains on the whole training set and is tested once on the
test set at the end.

A checkpoint (DIR/checkpoint.pt) is written after every epoch; running the same command
again resumes from it (``--no-resume`` starts over). Results: DIR/metrics.json (test
error, top-5 error, accuracy, parameters, epochs, seconds, dataset, variant, seed, stem)
and DIR/model.pt (the final state_dict, loadable with ``torch.load(weights_only=True)``).
"""
from __future__ import annotations

from ..cli import add_config_arguments, load_args_config

import argparse
import json
import os
import sys
from pathlib import Path

NAME = "train"
HELP = "fully train a genome (with checkpoints) and write its test metrics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--genome", required=True, help="genome JSON (or a result file with a 'genome' key, e.g. best.json)")
    add_config_arguments(p)
    p.add_argument("--out", required=True, help="output folder (checkpoint.pt, metrics.json, model.pt)")
    p.add_argument("--dataset", help="dataset name in the config (default: search.dataset; "
                                     "with --stem imagenet: transfer.dataset when set)")
    p.add_argument("--variant", help="ablation name from the config's 'ablations' (switches CutOut, AA, drop-path)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, shuffling and augmentation (default 0)")
    p.add_argument("--stem", choices=("cifar", "imagenet"), help="network stem (default: train.stem)")
    p.add_argument("--epochs", type=int, help="override the number of epochs (a different schedule: resume only "
                                              "a checkpoint made with the same number)")
    p.add_argument("--no-resume", action="store_true", help="ignore DIR/checkpoint.pt and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (they only show on a terminal anyway)")


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..cli import UserError
    from ..data import DataError, load_dataset
    from ..space import Genome
    from ..train import CandidateFailure, Trainer, atomic_save, resolve_device, training_settings

    if args.epochs is not None and args.epochs < 1:
        raise UserError("--epochs must be at least 1")
    config = load_args_config(args)
    genome = Genome.load(args.genome)
    stem = args.stem or config["train"]["stem"]
    dataset = args.dataset
    if dataset is None:
        transfer_to = config["transfer"]["dataset"]
        dataset = transfer_to if stem == "imagenet" and transfer_to else config["search"]["dataset"]
    if dataset not in config["datasets"]:
        raise UserError(f"unknown dataset {dataset!r} (the config's datasets: {sorted(config['datasets'])})")
    try:
        settings = training_settings(config, variant=args.variant, stem=stem, epochs=args.epochs)
        device = resolve_device(config["device"])
    except ValueError as e:
        raise UserError(str(e)) from None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True   # one input shape for the whole run: let cuDNN pick
    shape = config["transfer"] if stem == "imagenet" else config["train"]
    channels, cells_per_stage = shape["channels"], config["train"]["cells_per_stage"]
    try:
        data = load_dataset(config, dataset, "final", seed=args.seed)
    except DataError as e:
        raise UserError(str(e)) from None

    from ..nn import build_network

    torch.manual_seed(args.seed)
    model = build_network(genome, channels=channels, cells_per_stage=cells_per_stage,
                          num_classes=data.num_classes, in_channels=data.in_channels, stem=stem, seed=args.seed)
    params = sum(p.numel() for p in model.parameters())
    variant = args.variant or "none"
    trainer = Trainer(model, data, settings, device=device, seed=args.seed,
                      progress=False if args.no_progress else None, desc=f"{dataset}/{variant}/s{args.seed}")
    trainer.meta = {"genome": genome.to_dict(), "dataset": dataset, "variant": variant, "seed": args.seed,
                    "stem": stem, "channels": channels, "cells_per_stage": cells_per_stage}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists() and not args.no_resume:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state.get("meta") != trainer.meta:
            raise UserError(f"{checkpoint} belongs to another training (genome, dataset, variant, seed or "
                            f"network differ); use --no-resume to start over or another --out")
        try:
            trainer.load_state_dict(state)
        except ValueError as e:
            raise UserError(f"{checkpoint}: {e}; use --no-resume to start over") from None
        print(f"resuming from {checkpoint} after epoch {trainer.epoch}/{settings.epochs}", flush=True)

    print(f"training {args.genome} on {dataset} ({len(data.train)} images, {data.num_classes} classes), "
          f"{params:,} parameters, {settings.epochs} epochs, variant {variant}, seed {args.seed}, {device}",
          flush=True)

    from .. import tracking

    experiment = "transfer" if stem == "imagenet" else ("ablation" if args.variant else "train")
    with tracking.start_run(config, experiment, f"{dataset}-{variant}-seed{args.seed}",
                            params={"train": settings.to_dict(), "dataset": dataset, "variant": variant,
                                    "seed": args.seed, "stem": stem, "channels": channels,
                                    "cells_per_stage": cells_per_stage, "params": params,
                                    "genome": str(args.genome)},
                            tags={"dataset": dataset, "variant": variant, "seed": args.seed,
                                  "resumed_at_epoch": trainer.epoch}) as run:
        def report(stats) -> None:
            print(f"epoch {stats.epoch}/{settings.epochs}  loss {stats.loss:.4f}  train top-1 {stats.top1:.2f}%  "
                  f"lr {stats.lr:.5f}  drop-path {stats.drop_path:.3f}  {stats.seconds:.1f}s  "
                  f"{stats.images_per_second:.0f} img/s", flush=True)
            run.log_metrics({"train_loss": stats.loss, "train_top1": stats.top1, "lr": stats.lr,
                             "drop_path": stats.drop_path, "images_per_second": stats.images_per_second},
                            step=stats.epoch)

        try:
            trainer.fit(checkpoint, on_epoch=report)
            test = trainer.evaluate("eval")
        except CandidateFailure as e:
            run.set_tags({"failure": e.reason})
            print(f"nasgep train: error: {e.reason}", file=sys.stderr)
            return 1
        run.log_metrics({"test_error": 100.0 - test["top1"], "test_top1": test["top1"],
                         "test_top5": test["top5"], "params": params})

    atomic_save({k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}, out / "model.pt")
    metrics = {
        "test_error": 100.0 - test["top1"],
        "test_top5_error": 100.0 - test["top5"] if data.num_classes > 5 else None,
        "test_accuracy": test["top1"],
        "params": int(params),
        "epochs": trainer.epoch,
        "seconds": round(trainer.seconds, 3),
        "dataset": dataset,
        "variant": variant,
        "seed": args.seed,
        "stem": stem,
    }
    _write_json(out / "metrics.json", metrics)
    top5 = "" if metrics["test_top5_error"] is None else f", top-5 error {metrics['test_top5_error']:.2f}%"
    print(f"test error {metrics['test_error']:.2f}%{top5} -> {out / 'metrics.json'}", flush=True)
    return 0
