"""How well does a short training rank genomes? (issue 9: short-horizon bias), not a test.

Takes the genomes a ``bench/search_phase.py`` run fully trained (random cells and the
searched picks), trains each on the *search* split exactly as the search trains a
candidate (config ``search``: E_max-epoch cosine schedule, no weight inheritance, one
seed), records the validation accuracy after every epoch, and reports Kendall's tau
between the accuracy after k epochs and the test accuracy after full training (mean
over its training seeds), for k = 1 .. E_max. Also tau between parameters and trained
accuracy. Every genome's curve is cached under OUT/proxy/.

  python bench/proxy_fidelity.py --config config/cifar10-cpu.yaml \
      --out results/cifar10-cpu/searchphase --workers 2
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def curve(cfg_path: str, dataset: str, name: str, genome: dict, out: str) -> str:
    import torch

    torch.set_num_threads(1)
    from nasgep.config import load_config
    from nasgep.io import atomic_write_json
    from nasgep.search.evaluator import TrainJob, job_seed
    from nasgep.search.torch_evaluator import TorchEvaluator
    from nasgep.space import Genome

    target = Path(out) / "proxy" / f"{name}.json"
    if target.exists():
        return str(target)
    config = load_config(cfg_path, ["tracking.enabled=false"])
    ev = TorchEvaluator(config, dataset, Path(out) / "proxy" / "states", seed=0, device="cpu")
    g = Genome.from_dict(genome)
    accs = []
    for epoch in range(1, config["search"]["max_epochs"] + 1):
        res = ev.train(TrainJob(name, g, epoch, job_seed(0, name, epoch), None))
        accs.append(res.fitness)
    atomic_write_json(target, {"name": name, "val": accs, "params": res.params})
    print(f"[proxy] {name}: {accs}", file=sys.stderr, flush=True)
    return str(target)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="the search_phase.py output folder")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    out = Path(a.out)

    import numpy as np

    rows = [json.loads(f.read_text()) for f in sorted((out / "train").glob("*/s*.json"))]
    trained: dict[str, list[float]] = {}
    genomes: dict[str, dict] = {}
    for f in sorted((out / "random").glob("r*.json")):
        genomes[f"random-{f.stem}"] = json.loads(f.read_text())["genome"]
    for seed_dir in sorted((out / "search").glob("seed*")):
        genomes[f"fitness-{seed_dir.name}"] = json.loads((seed_dir / "best.json").read_text())["genome"]
        fin = seed_dir / "finalists.json"
        if fin.exists():
            genomes[f"retrain-{seed_dir.name}"] = json.loads(fin.read_text())["genome"]
    for r in rows:
        key = {"random": f"random-{r['genome']}"}.get(r["group"]) or (
            f"{r.get('selection')}-{r['genome']}" if r["group"] == "searched" else None)
        if key:
            trained.setdefault(key, []).append(r["accuracy"])
    names = [n for n in genomes if n in trained]
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(curve, *zip(*[(a.config, a.dataset, n, genomes[n], str(out)) for n in names])))

    from scipy import stats

    curves = {n: json.loads((out / "proxy" / f"{n}.json").read_text()) for n in names}
    final = [float(np.mean(trained[n])) for n in names]
    print(f"{len(names)} genomes (random cells and searched picks), proxy = validation accuracy after k "
          f"epochs of the search's schedule, no inheritance; target = test accuracy after full training\n")
    print("| k epochs | Kendall tau | p |\n|---|---|---|")
    for k in range(len(next(iter(curves.values()))["val"])):
        res = stats.kendalltau([curves[n]["val"][k] for n in names], final)
        print(f"| {k + 1} | {res.statistic:.2f} | {res.pvalue:.3f} |")
    res = stats.kendalltau([curves[n]["params"] for n in names], final)
    print(f"\nparameters vs trained accuracy: tau {res.statistic:.2f} (p = {res.pvalue:.3f})")
    res = stats.kendalltau([curves[n]["params"] for n in names], [curves[n]["val"][0] for n in names])
    print(f"parameters vs 1-epoch accuracy: tau {res.statistic:.2f} (p = {res.pvalue:.3f})")
    # how reproducible is the target itself: tau between the two training seeds
    two = [n for n in names if len(trained[n]) >= 2]
    res = stats.kendalltau([trained[n][0] for n in two], [trained[n][1] for n in two])
    print(f"trained accuracy, training seed 0 vs seed 1: tau {res.statistic:.2f} (p = {res.pvalue:.3f}, "
          f"n = {len(two)})")


if __name__ == "__main__":
    main()
