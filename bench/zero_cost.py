"""Do zero-cost proxies rank this space's cells? (issue 9), not a test.

Zero-cost proxies score an untrained network from one mini-batch: NASWOT (Mellor et
al., ICML 2021: log-determinant of the kernel of the ReLU activation patterns), SynFlow
(Tanaka et al., 2020), SNIP and the gradient norm (Abdelfattah et al., ICLR 2021).
Each score is the mean over three initialisation seeds, on the final training's network
(config ``train``: channels, cells_per_stage) and 128 (NASWOT: 64) training images.

1. Fidelity: every genome already trained fully under OUT (bench/cell_features.py's
   ``trained_genomes``) is scored, and Kendall's tau against its mean trained accuracy
   is printed for each proxy and for the parameter count, with Benjamini-Hochberg
   adjusted p-values (several proxies are screened at once).
2. Selection (``--draws N``): ``--groups`` groups of N random genomes (``nasgep
   sample``'s draw, the search's parameter limit, draw seeds from ``--seed0``) are
   scored with NASWOT; the top and the bottom genome of each group are trained like the
   random cells (``--train-seeds`` each), under OUT/zero-cost/train. Is the best of N by
   NASWOT better than a random cell?

  OMP_NUM_THREADS=1 python bench/zero_cost.py --config config/cifar10-cpu.yaml \\
      --set datasets.cifar10.image_size=null --out /work/runs/sp32 --draws 100 --workers 2
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def _batch(config: dict, dataset: str, n: int):
    import torch

    from nasgep.data import load_dataset

    data = load_dataset(config, dataset, purpose="search", seed=0)
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))[:n]
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return (data.train.x[idx].float() / 255 - mean) / std, data.train.y[idx], data


def naswot(net, x) -> float:
    """log|K|, K[i, j] = number of ReLUs on which images i and j agree (both on or both off)."""
    import torch

    codes = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: codes.append((o.detach() > 0).flatten(1).double()))
             for m in net.modules() if isinstance(m, torch.nn.ReLU)]
    net.train()
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    c = torch.cat(codes, 1)
    return torch.linalg.slogdet(c @ c.T + (1 - c) @ (1 - c).T)[1].item()


def gradient_scores(net, x, y) -> tuple[float, float]:
    """(gradient norm, SNIP = sum |w * dL/dw|) of the cross-entropy on one batch."""
    import torch

    net.train()
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    grads = [(p, p.grad) for p in net.parameters() if p.grad is not None]
    return (math.sqrt(sum(float(g.pow(2).sum()) for _, g in grads)),
            sum(float((p.detach() * g).abs().sum()) for p, g in grads))


def synflow(net, shape) -> float:
    """log of sum |w * dR/dw|, R = sum of the outputs of the network with |w| on an input of ones."""
    import torch

    net = net.double().eval()
    with torch.no_grad():
        for p in net.state_dict().values():
            p.abs_()
    net.zero_grad()
    net(torch.ones(1, *shape, dtype=torch.double)).sum().backward()
    return math.log(sum(float((p * p.grad).abs().sum()) for p in net.parameters() if p.grad is not None) + 1e-300)


def scores(genome, macro, x, y, which: tuple[str, ...]) -> dict[str, float]:
    from nasgep.nn import build_network

    found: dict[str, list[float]] = {k: [] for k in which}
    for seed in range(3):
        if "naswot" in which:
            found["naswot"].append(naswot(build_network(genome, macro, seed=seed), x[:64]))
        if "snip" in which or "grad_norm" in which:
            norm, snip = gradient_scores(build_network(genome, macro, seed=seed), x, y)
            found["grad_norm"].append(norm)
            found["snip"].append(snip)
        if "synflow" in which:
            found["synflow"].append(synflow(build_network(genome, macro, seed=seed), tuple(x.shape[1:])))
    return {k: float(np.mean(v)) for k, v in found.items()}


def main() -> None:
    import pandas as pd
    import torch
    from cell_features import trained_genomes
    from scipy import stats
    from search_phase import _config, job_train

    from nasgep.fulltrain import macro_for
    from nasgep.io import atomic_write_json
    from nasgep.space import Genome

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE (repeatable)")
    p.add_argument("--out", required=True, type=Path, help="bench/search_phase.py's output folder")
    p.add_argument("--draws", type=int, default=0, help="random genomes per group to pick from by NASWOT (0: no picks)")
    p.add_argument("--groups", type=int, default=3)
    p.add_argument("--seed0", type=int, default=5000, help="first draw seed (the random cells use 1000 onwards)")
    p.add_argument("--train-seeds", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.workers)
    config = _config(a.config, a.set)
    dataset = config["search"]["dataset"]
    x, y, data = _batch(config, dataset, 128)
    macro = macro_for(config, "cifar", data)
    proxies = ("naswot", "synflow", "snip", "grad_norm")

    df = trained_genomes(a.out)
    table = pd.DataFrame([scores(Genome.from_json(g), macro, x, y, proxies) for g in df["genome"]])
    table["params"] = df["params"].values
    rows = [{"proxy": k, "tau": (t := stats.kendalltau(table[k], df["accuracy"])).statistic, "p": t.pvalue}
            for k in table.columns]
    result = pd.DataFrame(rows)
    result["p_bh"] = stats.false_discovery_control(result["p"])
    random = (df["group"] == "random").values
    result["tau_random_only"] = [stats.kendalltau(table[k][random], df["accuracy"][random]).statistic
                                 for k in table.columns]
    print(f"{len(df)} trained genomes ({random.sum()} random cells): Kendall tau against the mean trained accuracy")
    print(result.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if not a.draws:
        return

    from nasgep.search.sample import sample_genome
    from nasgep.search.settings import SearchSettings
    from nasgep.search.torch_evaluator import search_param_counter

    folder = a.out / "zero-cost"
    drawn_path = folder / f"naswot-{a.draws}x{a.groups}-s{a.seed0}.json"
    if drawn_path.exists():
        drawn = json.loads(drawn_path.read_text())
    else:
        settings, counter = SearchSettings.from_config(config), search_param_counter(config, dataset)
        drawn = []
        for i in range(a.draws * a.groups):
            genome, params, _ = sample_genome(settings, a.seed0 + i, counter)
            drawn.append({"group": i // a.draws, "seed": a.seed0 + i, "search_params": params,
                          "naswot": scores(genome, macro, x, y, ("naswot",))["naswot"], "genome": genome.to_dict()})
        atomic_write_json(drawn_path, drawn)
    jobs = []
    for group in range(a.groups):
        ranked = sorted((d for d in drawn if d["group"] == group), key=lambda d: d["naswot"])
        for tag, d in (("top", ranked[-1]), ("bottom", ranked[0])):
            for t in range(a.train_seeds):
                meta = {"group": f"naswot-{tag}", "draw_group": group, "draw_seed": d["seed"], "naswot": d["naswot"]}
                jobs.append((d["genome"], t, str(folder / "train" / f"{tag}-g{group}" / f"s{t}.json"), meta))
    from nasgep.processes import die_with_parent
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn"), initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:     # workers end with the driver
        for f in [pool.submit(job_train, a.config, a.set, dataset, *job) for job in jobs]:
            f.result()
    picks = pd.DataFrame([{**json.loads(Path(j[2]).read_text()), "name": Path(j[2]).parent.name} for j in jobs])
    means = picks.groupby(["group", "name"])["accuracy"].mean().reset_index()
    rand = df[random]["accuracy"]
    print(f"\nrandom cells: {rand.mean():.2f} +- {rand.std():.2f} % (n {len(rand)}, p90 {np.percentile(rand, 90):.2f})")
    for tag, rows in means.groupby("group"):
        u = stats.mannwhitneyu(rows["accuracy"], rand)
        accs = ", ".join(f"{v:.2f}" for v in rows["accuracy"])
        print(f"{tag.removeprefix('naswot-')} of {a.draws} by NASWOT: " + accs
              + f" %; mean {rows['accuracy'].mean():.2f}; Mann-Whitney p against random {u.pvalue:.3f}")


if __name__ == "__main__":
    main()
