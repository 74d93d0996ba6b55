"""Run a NASGEP search (SPEC section 3) on a configured dataset.

  nasgep search --config config/paper.yaml --dataset cifar10 --seed 0 --out results/s0
  nasgep search --config config/paper.yaml --seed 0 --out results/s0 --resume   # after a crash
  nasgep search --config config/paper.yaml --seed 0 --out results/s0 --restart  # start over

One run at a time uses a folder (OUT/.lock names its PID). OUT/settings.json records the
settings that shape the result; --resume with other settings is refused, naming the keys
that differ (raising search.max_generations, search.budget_epochs or search.budget_hours
is allowed and lets a finished search go on; a limit lowered below what the search
already ran stops it there, keeping everything, and says so). A folder holding a search
is never started over implicitly: --restart moves its files into OUT/.previous-<time>/
first, nothing is deleted. A folder holding a training or a sample is refused, and so is
a search whose settings.json is lost (restore it, or --restart), and an OUT inside
another run's folder.

Writes OUT/best.json (best individual ever seen), OUT/history.parquet (a row per
individual per generation), OUT/search.json (summary), OUT/weights/ (the weight store),
OUT/cells/ (drawings of the best cells) and OUT/checkpoints/ (one per generation; the newest two are kept).
Several devices (search.devices: [cuda:0, cuda:1] or [all]) train the candidates of a
generation in parallel, one worker process per device, with the same result; so does
search.concurrency: K (K candidates at once per device). On a CPU each candidate trains with
search.cpu_threads threads (default 1): set concurrency to the number of cores.
"""
from __future__ import annotations

import argparse

from ..cli import add_config_arguments, add_restart_arguments, check_run_start, load_args_config, output_dir, seed_value

NAME = "search"
HELP = "run (or resume) a NASGEP architecture search"


def add_common(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--dataset", help="dataset name from the config's datasets (default: search.dataset)")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of every random draw (default: 0)")
    p.add_argument("--out", type=output_dir, required=True, metavar="DIR", help="output directory")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the search in OUT from its last good checkpoint, with the same "
                        "settings (a finished one only when the limit it stopped at was raised: "
                        "search.max_generations, search.budget_epochs or search.budget_hours); "
                        "start one if OUT holds none; with --restart, the restart wins")
    add_restart_arguments(p, "OUT", "search")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per generation)")


def run(args: argparse.Namespace) -> int:
    from ..config import dataset_name
    from ..errors import UserError
    from ..search.runner import SearchExists, run_search

    config = load_args_config(args)
    dataset = dataset_name(config, args.dataset)
    check_run_start(config, args.out, "a search")
    try:
        run_search(config, dataset=dataset, seed=args.seed, out_dir=args.out, resume=args.resume,
                   restart=args.restart, restart_if_changed=args.restart_if_changed,
                   progress=False if args.no_progress else None)
    except SearchExists as e:
        raise UserError(str(e)) from None
    return 0
