"""Search-phase evaluation protocol (issue 9), not a test: does the search beat random cells?

For one config and dataset:
  1. a search per seed of ``config.seeds`` (``nasgep search``'s code path, paper setting);
  2. the ``retrain`` final selection on each search's history (search/finalists.py): the
     top finalists by epoch-cohort percentile, re-trained from scratch for E_max epochs;
  3. ``--random`` random genomes (``nasgep sample``'s draw, same parameter limit);
  4. full training (config ``train``) of each search's pick under both selections and of
     every random genome, ``--train-seeds`` training seeds each, and of a fidelity sample
     of each search's history (``--fidelity-best`` fittest + ``--fidelity-spread`` across
     the fitness range, one training seed);
  5. the statistics of nasgep.report.searchphase for each selection, written to
     OUT/searchphase-<selection>.{json,md,png}.

``--variant NAME:KEY=VALUE[,KEY=VALUE...]`` (repeatable) adds a search setting beyond the
paper, measured side by side on the same protocol: its own searches (OUT/search-NAME),
picks under both selections and fidelity sample, against the same random cells; results
in OUT/searchphase-NAME-<selection>.*. The paper's setting is run too, as ``paper``,
unless ``--skip-paper``.

Every result is cached as JSON under OUT (default: the config's results_dir/searchphase),
so an interrupted run continues where it stopped. Jobs run in ``--workers`` processes of
one thread each.

  python bench/search_phase.py --config config/cifar10-cpu.yaml --workers 2 \
      --variant cohort:search.fitness=cohort
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from nasgep.io import atomic_write_json  # noqa: E402


def _threads() -> None:
    import torch

    torch.set_num_threads(1)


def _config(path: str, overrides: list[str]):
    from nasgep.config import load_config

    return load_config(path, ["tracking.enabled=false", *overrides])


# --- jobs (run in worker processes) -------------------------------------------------------

def job_search(cfg_path: str, overrides: list[str], dataset: str, seed: int, out: str,
               blind: bool = False) -> str:
    _threads()
    from nasgep.search.runner import run_search

    config = _config(cfg_path, overrides)
    summary = Path(out) / "search.json"
    if summary.exists() and json.loads(summary.read_text()).get("finished"):
        return out

    def log(message: str) -> None:
        if blind:   # progress only: the fitness stays unseen until the study is read
            message = blind_line(message)
        print(f"[search {seed}] {message}", file=sys.stderr, flush=True)

    run_search(config, dataset=dataset, seed=seed, out_dir=out, resume=True, progress=False, log=log)
    return out


def job_finalists(cfg_path: str, overrides: list[str], dataset: str, seed: int, out: str, k: int) -> str:
    _threads()
    import pandas as pd

    from nasgep.search.evaluator import SerialExecutor
    from nasgep.search.finalists import select
    from nasgep.search.torch_evaluator import TorchEvaluator
    from nasgep.space import Genome

    target = Path(out) / "finalists.json"
    if target.exists():
        return str(target)
    config = _config(cfg_path, [*overrides, f"search.finalists={k}"])
    history = pd.read_parquet(Path(out) / "history.parquet").to_dict("records")
    for r in history:
        r["failure"] = None if r["failure"] is None or r["failure"] != r["failure"] else r["failure"]
    evaluator = TorchEvaluator(config, dataset, Path(out) / "finalists", seed, device="cpu")
    pick, record = select(history, config, SerialExecutor(evaluator), seed)
    # the runner's record, plus the pick's genome and ranking measure (what the trainings read)
    atomic_write_json(target, {**record, "genome": Genome.from_json(pick.genome).to_dict(),
                               "fitness": pick.estimate(config["search"]["evaluation"] == "full")})
    return str(target)


def blind_line(message: str) -> str:
    """A search's log line without its fitness: a generation line keeps its number, the
    candidates trained and the time; the closing line loses its best fitness."""
    words = message.split()
    if words[:1] == ["gen"]:
        trained = message[message.find("trained"):message.find("pools")].strip()
        return f"gen {words[1]} done: {trained}, {words[-1]}"
    return message.split(": best fitness")[0]


def job_train(cfg_path: str, overrides: list[str], dataset: str, genome: dict, seed: int, out: str,
              meta: dict, blind: bool = False) -> str:
    _threads()
    from nasgep.fulltrain import build_trainer
    from nasgep.nn import count_parameters
    from nasgep.space import Genome

    target = Path(out)
    if target.exists():
        return out
    config = _config(cfg_path, overrides)
    t0 = time.perf_counter()
    trainer, data, _ = build_trainer(config, Genome.from_dict(genome), dataset, seed, progress=False)
    trainer.fit()
    acc = trainer.evaluate("eval")["top1"]
    atomic_write_json(target, {**meta, "train_seed": seed, "accuracy": acc, "params": count_parameters(trainer.model),
                               "seconds": round(time.perf_counter() - t0, 1),
                               "correct": _correct_bits(trainer, data.eval)})
    shown = "done" if blind else f"{acc:.2f}%"
    print(f"[train] {target.relative_to(target.parents[2])}: {shown}", file=sys.stderr, flush=True)
    return out


def _correct_bits(trainer, split) -> str:
    """Which test images the trained network classifies correctly, as base64 of packed
    bits in test-set order: lets bench/eval_noise.py split accuracy differences into
    test-set sampling and training noise without re-training."""
    import base64

    import numpy as np
    import torch

    trainer.model.eval()
    hits = []
    with torch.no_grad():
        for x, y in trainer._eval_batches(split):
            hits.append((trainer._forward(x).argmax(dim=1) == y).cpu().numpy())
    return base64.b64encode(np.packbits(np.concatenate(hits))).decode()


def job_sample(cfg_path: str, overrides: list[str], dataset: str, seed: int, out: str,
               largest_of: int = 1) -> str:
    """A random genome (``nasgep sample``'s draw with ``seed``), or with ``largest_of`` K > 1
    the largest of K draws (``nasgep.search.sample.largest_of``, ``nasgep sample
    --largest-of K``): a baseline that picks by parameter count alone."""
    _threads()
    from nasgep.search import sample
    from nasgep.search.settings import SearchSettings
    from nasgep.search.torch_evaluator import search_param_counter

    target = Path(out)
    if not target.exists():
        config = _config(cfg_path, overrides)
        genome, params, drawn = sample.largest_of(SearchSettings.from_config(config), seed,
                                                  search_param_counter(config, dataset), largest_of)
        extra = {} if largest_of == 1 else {"largest_of": largest_of, "drawn_params": drawn}
        atomic_write_json(target, {"genome": genome.to_dict(), "params": params, "seed": seed, "method": "random",
                                   **extra})
    return out


# --- the driver ---------------------------------------------------------------------------

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE (repeatable)")
    p.add_argument("--dataset", default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--random", type=int, default=10)
    p.add_argument("--random-seed0", type=int, default=1000, help="first draw seed of the random genomes")
    p.add_argument("--random-largest-of", type=int, default=1, metavar="K",
                   help="each random cell is the largest (by parameters) of K draws: a size-only baseline")
    p.add_argument("--train-seeds", type=int, default=2)
    p.add_argument("--finalists", type=int, default=3,
                   help="finalists of the retrain selection; 0 skips it (with search.evaluation=full "
                        "every candidate is already trained from scratch, and it re-trains the pick)")
    p.add_argument("--fidelity-best", type=int, default=2)
    p.add_argument("--fidelity-spread", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE...]",
                   help="a search setting measured beside the paper's (repeatable)")
    p.add_argument("--report-only", action="store_true", help="only compute the statistics from the cache")
    p.add_argument("--blind", action="store_true",
                   help="a study planned in advance: print progress but no fitness or accuracy, and "
                        "no report, so that nothing is read before every job is done")
    p.add_argument("--skip-paper", action="store_true",
                   help="run and report only the --variant settings (e.g. more seeds of one variant)")
    a = p.parse_args()
    variants = {} if a.skip_paper else {"paper": []}
    for v in a.variant:
        name, _, sets = v.partition(":")
        if not name.isidentifier() or name == "paper" or not sets:
            p.error(f"--variant {v!r}: expected NAME:KEY=VALUE[,KEY=VALUE...]")
        variants[name] = sets.split(",")

    config = _config(a.config, a.set)
    dataset = a.dataset or config["search"]["dataset"]
    out = Path(a.out or Path(config["results_dir"]) / "searchphase")
    seeds = list(config["seeds"])
    args = (a.config, a.set, dataset)
    t_start = time.time()

    if not a.report_only:
        ctx = get_context("spawn")
        # workers end with the driver (killing it left them training for half an hour)
        from nasgep.processes import die_with_parent

        with ProcessPoolExecutor(a.workers, mp_context=ctx, initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            running = {}

            def submit(fn, *fargs, then=None):
                running[pool.submit(fn, *fargs)] = then

            first_training: dict[tuple[str, int], Path] = {}   # (genome, training seed) -> its result
            copies: dict[Path, list[tuple[Path, dict]]] = {}      # that result -> other names it answers

            def copy_result(source: Path) -> None:
                for target, meta in copies.pop(source, []):
                    if not target.exists():
                        r = json.loads(source.read_text())
                        kept = {k: r[k] for k in ("train_seed", "accuracy", "params", "seconds")}
                        atomic_write_json(target, {**meta, **kept, "copied_from": str(source.relative_to(out))})

            def train(genome: dict, meta: dict, name: str, n_seeds: int):
                """Train ``genome`` with ``n_seeds`` training seeds; a genome already trained
                with that seed under another name (two selections picking the same
                individual) is trained once and its result copied."""
                text = json.dumps(genome, sort_keys=True)
                for t in range(n_seeds):
                    target = out / "train" / name / f"s{t}.json"
                    source = first_training.setdefault((text, t), target)
                    if source == target:
                        submit(job_train, *args, genome, t, str(target), meta, a.blind,
                               then=lambda _r, s=source: copy_result(s))
                        continue
                    copies.setdefault(source, []).append((target, meta))
                    if source.exists():
                        copy_result(source)

            def after_search(variant: str, seed: int, sdir: str):
                prefix = "" if variant == "paper" else f"{variant}-"
                vargs = (a.config, a.set + variants[variant], dataset)
                best = json.loads((Path(sdir) / "best.json").read_text())
                train(best["genome"], {"group": "searched", "selection": "fitness", "variant": variant,
                                       "search_seed": seed, "genome": f"seed{seed}", "fitness": best["fitness"],
                                       "epochs": best["epochs"]}, f"{prefix}fitness-seed{seed}", a.train_seeds)
                if a.finalists > 0:
                    submit(job_finalists, *vargs, seed, sdir, a.finalists,
                           then=lambda path: after_finalists(variant, seed, path))
                from nasgep.commands.evaluate import histories
                from nasgep.report.searchphase import fidelity_sample

                hist = histories([Path(sdir)])[Path(sdir)]
                for r in fidelity_sample(hist, a.fidelity_best, a.fidelity_spread):
                    from nasgep.space import Genome

                    train(Genome.from_json(r["genome"]).to_dict(),
                          {"group": "fidelity", "variant": variant, "search_seed": seed,
                           "genome": f"seed{seed}-{r['id']}", "fitness": r["fitness"],
                           "epochs": int(r["epochs"])},
                          f"{prefix}fidelity-seed{seed}-{r['id']}", 1)

            def after_finalists(variant: str, seed: int, path: str):
                prefix = "" if variant == "paper" else f"{variant}-"
                fin = json.loads(Path(path).read_text())
                train(fin["genome"], {"group": "searched", "selection": "retrain", "variant": variant,
                                      "search_seed": seed, "genome": f"seed{seed}", "fitness": fin["fitness"]},
                      f"{prefix}retrain-seed{seed}", a.train_seeds)

            for variant in variants:
                for seed in seeds:
                    sdir = str(out / ("search" if variant == "paper" else f"search-{variant}") / f"seed{seed}")
                    submit(job_search, a.config, a.set + variants[variant], dataset, seed, sdir, a.blind,
                           then=lambda d, variant=variant, seed=seed: after_search(variant, seed, d))
            for r in range(a.random):
                rs = a.random_seed0 + r
                path = out / "random" / f"r{rs}.json"

                def after_sample(_p, rs=rs, path=path):
                    g = json.loads(path.read_text())
                    train(g["genome"], {"group": "random", "genome": f"r{rs}", "search_seed": None},
                          f"random-r{rs}", a.train_seeds)
                submit(job_sample, *args, rs, str(path), a.random_largest_of, then=after_sample)

            while running:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    then = running.pop(fut)
                    result = fut.result()
                    if then is not None:
                        then(result)
                print(f"[driver] {len(running)} jobs left, {time.time() - t_start:.0f}s", file=sys.stderr, flush=True)

    if a.blind:
        print(f"[driver] every job is done; read the study with --report-only (without --blind): {out}",
              file=sys.stderr)
        return
    for variant in variants:
        fitness = _config(a.config, a.set + variants[variant])["search"]["fitness"]
        # the random cells this command draws, not every one under OUT (a study that restores
        # another's ledger holds that study's random cells too)
        names = {f"r{a.random_seed0 + r}" for r in range(a.random)} or None
        report(out, dataset, variant, fitness, names)


def report_rows(out: Path, variant: str, random_names: set[str] | None = None) -> list[dict]:
    """The trainings under ``out`` that the report of ``variant`` compares: the searched and
    fidelity genomes of that setting, and the random cells named ``random_names`` (None:
    every one)."""
    rows = [json.loads(f.read_text()) for f in sorted((out / "train").glob("*/s*.json"))]
    return [r for r in rows if (r["group"] == "random" and (random_names is None or r["genome"] in random_names))
            or (r["group"] != "random" and r.get("variant", "paper") == variant)]


def report(out: Path, dataset: str, variant: str = "paper", fitness: str = "accuracy",
           random_names: set[str] | None = None) -> None:
    """Print and write the search-phase statistics of ``variant`` against the random cells
    named ``random_names`` (None: every random cell trained under ``out``)."""
    from nasgep.commands.evaluate import candidates, histories
    from nasgep.report import searchphase as sp
    from nasgep.search.fitness import FITNESSES

    rows = report_rows(out, variant, random_names)
    if sum(r["group"] == "random" for r in rows) < 2:
        print(f"## {variant} setting: no report, fewer than 2 random cells trained under {out / 'train'}")
        return
    prefix = "" if variant == "paper" else f"{variant}-"
    search_dir = out / ("search" if variant == "paper" else f"search-{variant}")
    seeds = {r["search_seed"] for r in rows if r["group"] == "searched"}
    n_candidates = candidates(histories([search_dir / f"seed{s}" for s in sorted(seeds)]))
    for selection in ("fitness", "retrain"):
        chosen = [r for r in rows if r["group"] == "random" or r.get("selection") == selection
                  or r["group"] == "fidelity"]
        if not any(r.get("selection") == selection for r in chosen):
            continue
        result = sp.evaluate(chosen, dataset=dataset, candidates=n_candidates,
                             method=f"search ({variant} setting), final selection {selection}")
        atomic_write_json(out / f"searchphase-{prefix}{selection}.json", result.to_dict())
        (out / f"searchphase-{prefix}{selection}.md").write_text(sp.markdown(result))
        if result.fidelity:
            sp.scatter(result, out / f"searchphase-{prefix}{selection}.png", fitness_label=FITNESSES[fitness])
        print(f"## {variant} setting, final selection: {selection}\n\n{sp.markdown(result)}")
    # fidelity with the epoch-cohort percentile instead of raw fitness
    fid = [r for r in rows if r["group"] == "fidelity"]
    if fid:
        import pandas as pd

        from nasgep.search.fitness import epoch_rank_scores

        scores = {}
        for seed in {r["search_seed"] for r in fid}:
            hist = pd.read_parquet(search_dir / f"seed{seed}" / "history.parquet").to_dict("records")
            for r in hist:
                r["failure"] = r["failure"] if isinstance(r["failure"], str) else None
            scores.update({f"seed{seed}-{k}": v for k, v in epoch_rank_scores(hist).items()})
        tau, p = sp.kendall([scores[r["genome"]] for r in fid], [r["accuracy"] for r in fid])
        tau_e, p_e = sp.kendall([r["epochs"] for r in fid], [r["accuracy"] for r in fid])
        tau_fe, p_fe = sp.kendall([r["epochs"] for r in fid], [r["fitness"] for r in fid])
        print(f"fidelity with the epoch-cohort percentile: tau {tau:.2f} (p = {p:.3f}, n = {len(fid)})\n"
              f"epochs trained vs trained accuracy: tau {tau_e:.2f} (p = {p_e:.3f}); "
              f"epochs vs search fitness: tau {tau_fe:.2f} (p = {p_fe:.3f})")


if __name__ == "__main__":
    main()
