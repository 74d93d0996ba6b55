"""Draw a random genome (the random-sampling baseline) within the search's limits.

  nasgep sample --config config/paper.yaml --dataset cifar10 --seed 0 --out results/r0

With --largest-of K, the genome is the largest (by parameters) of K such draws: the
size-only baseline, for a search that may win by picking larger cells.

Writes OUT/best.json in the same form as a search (method "random", fitness null), so
`nasgep train --genome OUT/best.json` trains it exactly like searched cells, and
OUT/settings.json (the settings it was drawn with). A folder holding a search, a training
or another sample (other settings or seed) is refused; running the same sample again
changes nothing. --restart moves the old files into OUT/.previous-<time>/ first.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..cli import add_restart_arguments, check_run_start, draws_value, load_args_config
from .search import add_common

NAME = "sample"
HELP = "draw random normal and reduction cells (random-sampling baseline)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_common(p)
    p.add_argument("--largest-of", type=draws_value, default=1, metavar="K",
                   help="keep the largest of K random genomes (a size-only baseline; default 1: one draw)")
    add_restart_arguments(p, "OUT", "sample")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .. import outdir, tracking
    from ..config import dataset_name
    from ..io import atomic_write_bytes
    from ..search.loop import SearchSettings
    from ..search.runner import result_settings
    from ..search.sample import largest_of, sample_genome
    from ..search.torch_evaluator import search_param_counter

    config = load_args_config(args)
    dataset = dataset_name(config, args.dataset)
    check_run_start(config, args.out, "a sample")
    settings = SearchSettings.from_config(config)
    counter = search_param_counter(config, dataset)
    if args.largest_of == 1:
        genome, params, rejections = sample_genome(settings, args.seed, counter)
        extra = {"param_rejections": rejections}
    else:
        genome, params, drawn = largest_of(settings, args.seed, counter, args.largest_of)
        extra = {"largest_of": args.largest_of, "drawn_params": drawn}
    out = Path(args.out)
    best = {"genome": genome.to_dict(), "fitness": None, "params": params, "dataset": dataset,
            "seed": args.seed, "method": "random", "generation": None, "individual": None, **extra}
    content = (json.dumps(best, indent=2) + "\n").encode()
    fingerprint = result_settings(config, dataset, args.seed)   # what shapes a search shapes its sample
    with outdir.locked(out):
        same = _holds_exactly(out / "best.json", content) and outdir.another_run(out, "sample") is None
        if args.restart or not same:   # the same sample again: nothing to write but its settings
            # checks_itself: a sample held without a settings.json is compared with this one
            if outdir.claim(out, fingerprint, "sample", resume=True, restart=args.restart,
                            restart_if_changed=args.restart_if_changed, log=print, checks_itself=True):
                damage = _damage(out / "best.json")
                held = (f"is damaged ({damage})" if damage else "holds another random genome than this sample "
                        "draws (other settings, or another nasgep version)")
                raise outdir.FolderError(
                    f"{out / 'best.json'} {held}; pass --restart to start over (the old files "
                    "are moved aside), or choose another --out")
            outdir.drop_workflow_mark(out)
            atomic_write_bytes(out / "best.json", content)
        outdir.record(out, fingerprint, "sample")
        how = (f"{extra['param_rejections']} rejections" if args.largest_of == 1
               else f"the largest of {args.largest_of} draws")
        if params > settings.max_params:      # every draw was over: the smallest is kept, as the search does
            print(f"warning: no draw within search.max_params = {settings.max_params} in search.rebreed_tries = "
                  f"{settings.rebreed_tries} tries; the smallest, {params} parameters, is kept", file=sys.stderr)
        logged = {"dataset": dataset, "seed": args.seed, "max_params": settings.max_params,
                  "genome": tracking.genome_text(genome)}
        if same and not args.restart:
            try:
                logged_before = tracking.finished_run_of(config, "random", logged)   # not twice
            except tracking.TrackingError as e:      # the store is down: tried again next time
                print(f"warning: {e}; not checked whether this sample is in MLflow", file=sys.stderr)
                logged_before = True
            if logged_before:
                print(f"random genome ({params} parameters at search size, {how}): already in "
                      f"{out / 'best.json'}, nothing to do")
                return 0
            print(f"random genome already in {out / 'best.json'}; logging it to MLflow, where it is missing")
        with tracking.start_run(config, "random", f"{dataset}-random-seed{args.seed}", params=logged,
                                tags=tracking.run_tags(config, dataset=dataset, seed=args.seed, method="random"),
                                folder=out) as run:
            run.log_metrics({"params": params, **{k: v for k, v in extra.items() if k != "drawn_params"}})
            run.log_artifact(out / "best.json")
            run.log_dict(genome.to_dict(), "genome.json")
    print(f"random genome ({params} parameters at search size, {how}) -> {out / 'best.json'}")
    return 0


def _holds_exactly(path, content: bytes) -> bool:
    try:
        return path.is_file() and path.read_bytes() == content
    except OSError:
        return False


def _damage(path) -> str | None:
    """Why ``path`` is no sample's best.json (None when it reads as one)."""
    from ..io import load_json

    try:
        doc = load_json(path.read_bytes() or b"null")
    except (OSError, ValueError) as e:
        return f"not JSON: {type(e).__name__}"
    if not isinstance(doc, dict) or not isinstance(doc.get("genome"), dict):
        return "empty" if doc is None else "no genome in it"
    return None
