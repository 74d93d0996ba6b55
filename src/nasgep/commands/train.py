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
again resumes from it, with the same settings only (DIR/settings.json; one run per
folder, DIR/.lock); ``--restart`` starts over after moving the old files into
DIR/.previous-<time>/. A folder holding a search or a sample is refused. Results:
DIR/metrics.json (test error, top-5 error, accuracy, parameters, epochs, seconds,
dataset, variant, seed, stem) and DIR/model.pt (the final state_dict, loadable with ``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import argparse

from ..cli import add_config_arguments, add_restart_arguments, check_run_start, load_args_config, output_dir, seed_value

NAME = "train"
HELP = "fully train a genome (with checkpoints) and write its test metrics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--genome", required=True, help="genome JSON (or a result file with a 'genome' key, e.g. best.json)")
    add_config_arguments(p)
    p.add_argument("--out", type=output_dir, required=True,
                   help="output folder (checkpoint.pt, metrics.json, model.pt)")
    p.add_argument("--dataset", help="dataset name in the config (default: search.dataset; "
                                     "with --stem imagenet: transfer.dataset when set)")
    p.add_argument("--variant", help="ablation name from the config's 'ablations' (switches CutOut, AA, drop-path)")
    p.add_argument("--seed", type=seed_value, default=0,
                   help="seed of the weights, shuffling and augmentation (default 0)")
    p.add_argument("--stem", choices=("cifar", "imagenet"), help="network stem (default: train.stem)")
    p.add_argument("--epochs", type=int, help="override the number of epochs (a different schedule: resume only "
                                              "a checkpoint made with the same number)")
    add_restart_arguments(p, "DIR", "training")
    p.add_argument("--no-resume", action="store_true", help="the same as --restart")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (they only show on a terminal anyway)")


def run(args: argparse.Namespace) -> int:
    from ..errors import RunFailed
    from ..fulltrain import TrainRequest, full_train
    from ..train import CandidateFailure

    config = load_args_config(args)
    check_run_start(config, args.out, "a training")
    request = TrainRequest(genome_path=args.genome, out=args.out, dataset=args.dataset, variant=args.variant,
                           seed=args.seed, stem=args.stem, epochs=args.epochs, resume=not args.no_resume,
                           restart=args.restart, restart_if_changed=args.restart_if_changed,
                           progress=False if args.no_progress else None)
    try:   # bad input (TrainSetupError, DataError, GenomeError ...) is a UserError: one line, exit 2
        full_train(config, request)
    except CandidateFailure as e:
        raise RunFailed(e.reason) from None   # NaN loss, out of memory: one line, exit 1
    return 0
