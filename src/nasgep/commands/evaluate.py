"""Search-phase evaluation (issue 9): do the searched cells beat random cells, and does
the search's fitness rank candidates the way full training does?

  nasgep evaluate --config config/paper.yaml --dataset cifar10 \\
      --search results/paper/search/cifar10/search/seed0 ... --out results/paper/searchphase/cifar10

Trains, with the config's ``train`` settings and ``search_phase.train_seeds`` training
seeds each: every search's result (``best.json``) and ``search_phase.random_cells``
random genomes (``nasgep sample``'s draw); and, with one training seed, a fidelity sample
of each search's ``history.parquet`` (``search_phase.fidelity_best`` fittest individuals
and ``fidelity_spread`` more across the fitness range). Then writes OUT/searchphase.json
(percentile ranks, RI with its 95 % bootstrap interval, one-sided permutation p,
training-seed noise, Kendall's tau), OUT/searchphase.md (and .html), OUT/fidelity.png and
OUT/trainings.csv. Every training is cached in OUT/runs/ (running the command again
resumes; nothing finished is redone).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..cli import add_config_arguments, load_args_config

NAME = "evaluate"
HELP = "search-phase evaluation: searched vs random cells, fitness fidelity (statistics + plot)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--dataset", help="dataset name in the config (default: search.dataset)")
    p.add_argument("--search", nargs="+", required=True, metavar="DIR",
                   help="finished search folders (best.json, history.parquet), one per search seed")
    p.add_argument("--out", required=True, metavar="DIR")


def train_genome(config: dict, dataset: str, genome, seed: int) -> dict:
    """Full training (config ``train``) of ``genome``; test accuracy and parameters."""
    from ..data import load_dataset
    from ..fulltrain import macro_for
    from ..nn import build_network, count_parameters
    from ..train import Trainer, resolve_device, training_settings

    data = load_dataset(config, dataset, purpose="final", seed=seed)
    net = build_network(genome, macro_for(config, "cifar", data), seed=seed)
    trainer = Trainer(net, data, training_settings(config), device=resolve_device(config["device"]),
                      seed=seed, progress=False)
    trainer.fit()
    return {"accuracy": trainer.evaluate("eval")["top1"], "params": count_parameters(net)}


def histories(searches: list[Path]) -> dict[Path, list[dict]]:
    """Each search folder's ``history.parquet`` as rows (``failure`` None where none)."""
    import pandas as pd

    out = {}
    for folder in searches:
        rows = pd.read_parquet(folder / "history.parquet").to_dict("records")
        for r in rows:
            r["failure"] = r["failure"] if isinstance(r.get("failure"), str) else None
        out[folder] = rows
    return out


def candidates(history_of: dict[Path, list[dict]]) -> int:
    """Distinct genomes the searches trained without failure, rounded mean per search."""
    counts = [len({r["genome"] for r in rows if r["failure"] is None}) for rows in history_of.values()]
    return round(sum(counts) / len(counts)) if counts else 0


def plan(config: dict, dataset: str, history_of: dict[Path, list[dict]]) -> list[dict]:
    """Every training the evaluation needs: name, genome, training seed, and the row
    fields of nasgep.report.searchphase. ``history_of``: :func:`histories` of the searches."""
    from ..report.searchphase import fidelity_sample
    from ..search.sample import sample_genome
    from ..search.settings import SearchSettings
    from ..search.torch_evaluator import search_param_counter
    from ..space import Genome

    sp = config["search_phase"]
    jobs = []
    for folder, history in history_of.items():
        best = json.loads((folder / "best.json").read_text())
        seed = int(best["seed"])
        for t in range(sp["train_seeds"]):
            jobs.append({"name": f"searched-seed{seed}-t{t}", "genome": best["genome"], "train_seed": t,
                         "group": "searched", "search_seed": seed, "fitness": best.get("fitness"),
                         "label": f"seed{seed}"})
        if history and "genome" not in history[0]:
            from ..errors import UserError

            raise UserError(f"{folder / 'history.parquet'}: no 'genome' column (a search from an older "
                            "version); run the search again to evaluate its fidelity")
        for r in fidelity_sample(history, sp["fidelity_best"], sp["fidelity_spread"]):
            jobs.append({"name": f"fidelity-seed{seed}-{r['id']}", "genome": Genome.from_json(r["genome"]).to_dict(),
                         "train_seed": 0, "group": "fidelity", "search_seed": seed, "fitness": r["fitness"],
                         "epochs": int(r["epochs"]), "label": f"seed{seed}-{r['id']}"})
    settings = SearchSettings.from_config(config)
    counter = search_param_counter(config, dataset)
    for r in range(sp["random_cells"]):
        genome, _, _ = sample_genome(settings, 1000 + r, counter)     # 1000+: apart from `nasgep sample`'s seeds
        for t in range(sp["train_seeds"]):
            jobs.append({"name": f"random-r{r}-t{t}", "genome": genome.to_dict(), "train_seed": t,
                         "group": "random", "search_seed": None, "label": f"r{r}"})
    return jobs


def run(args: argparse.Namespace) -> int:
    import csv

    from ..errors import UserError
    from ..io import atomic_write_json
    from ..report import searchphase as sp
    from ..search.fitness import FITNESSES
    from ..space import Genome

    config = load_args_config(args)
    dataset = args.dataset or config["search"]["dataset"]
    if dataset not in config["datasets"]:
        raise UserError(f"--dataset {dataset!r} is not in the config's datasets {sorted(config['datasets'])}")
    searches = [Path(s) for s in args.search]
    for s in searches:
        for name in ("best.json", "history.parquet"):
            if not (s / name).exists():
                raise UserError(f"{s / name}: missing (is the search finished?)")
    out = Path(args.out)
    rows = []
    history_of = histories(searches)
    jobs = plan(config, dataset, history_of)
    for i, job in enumerate(jobs):
        cache = out / "runs" / f"{job['name']}.json"
        if cache.exists():
            result = json.loads(cache.read_text())
        else:
            result = train_genome(config, dataset, Genome.from_dict(job["genome"]), job["train_seed"])
            atomic_write_json(cache, result)
        print(f"[{i + 1}/{len(jobs)}] {job['name']}: {result['accuracy']:.2f} %", file=sys.stderr, flush=True)
        rows.append({"group": job["group"], "genome": job["label"], "search_seed": job["search_seed"],
                     "train_seed": job["train_seed"], "accuracy": result["accuracy"], "params": result["params"],
                     "fitness": job.get("fitness"), "epochs": job.get("epochs")})
    result = sp.evaluate(rows, dataset=config["datasets"][dataset].get("label") or dataset,
                         n_resamples=config["search_phase"]["resamples"], candidates=candidates(history_of))
    atomic_write_json(out / "searchphase.json", result.to_dict())
    (out / "searchphase.md").write_text(sp.markdown(result))
    (out / "searchphase.html").write_text(sp.html(result))
    sp.scatter(result, out / "fidelity.png", fitness_label=FITNESSES[config["search"]["fitness"]])
    with open(out / "trainings.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(sp.markdown(result))
    return 0
