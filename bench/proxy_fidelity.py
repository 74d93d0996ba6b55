"""How well does a short training rank genomes? (issue 9: short-horizon bias), not a test.

Takes every genome a ``bench/search_phase.py`` run fully trained (random cells, the
searched picks, the fidelity sample), trains each on the *search* split exactly as the
search trains a candidate (config ``search``, with ``--set`` overrides to try another
proxy, e.g. ``search.channels=8``: E_max-epoch cosine schedule, no weight inheritance,
one seed), records the validation accuracy after every epoch, and reports Kendall's tau
between the accuracy after k epochs and the test accuracy after full training (mean
over its training seeds), for k = 1 .. E_max. Also tau between parameters and trained
accuracy, and between two training seeds of the full training (how reproducible the
target itself is). Every genome's curve is cached under OUT/proxy[-NAME]/.

  python bench/proxy_fidelity.py --config config/cifar10-cpu.yaml \\
      --out results/cifar10-cpu/searchphase --workers 2
  python bench/proxy_fidelity.py ... --set search.channels=8 --name c8
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def curve(cfg_path: str, overrides: list[str], dataset: str, name: str, genome: str, cache: str,
          last_only: bool = False) -> str:
    import torch

    torch.set_num_threads(1)
    from nasgep.config import load_config
    from nasgep.io import atomic_write_json
    from nasgep.search.evaluator import TrainJob, job_seed
    from nasgep.search.torch_evaluator import TorchEvaluator
    from nasgep.space import Genome

    target = Path(cache) / f"{name}.json"
    if target.exists():
        return str(target)
    config = load_config(cfg_path, ["tracking.enabled=false", *overrides])
    ev = TorchEvaluator(config, dataset, Path(cache) / "states", seed=0, device="cpu")
    g = Genome.from_json(genome)
    accs = []
    last = config["search"]["max_epochs"]
    for epoch in range(1, last + 1):
        evaluate = epoch == last or not last_only     # the weights are the same either way
        res = ev.train(TrainJob(name, g, epoch, job_seed(0, name, epoch), None, evaluate=evaluate))
        accs.append(res.fitness if evaluate else None)
    atomic_write_json(target, {"name": name, "val": accs, "params": res.params})
    print(f"[proxy] {name}: {accs}", file=sys.stderr, flush=True)
    return str(target)


def pick_report(proxy: list[float], target: list[float], m: int, draws: int = 20000, seed: int = 0) -> str:
    """What a search that ranks ``m`` of these genomes by ``proxy`` would pick: over ``draws``
    subsets of ``m`` drawn without replacement, the mean target of the proxy's pick above
    the sample's mean, and the share of picks above the sample's 90th percentile, beside
    the same for a perfect proxy (the target itself). In-sample: the same genomes give the
    picks and the percentile, so the shares are point estimates of a small sample."""
    import numpy as np

    proxy, target = np.asarray(proxy, float), np.asarray(target, float)
    rng = np.random.default_rng(seed)
    subsets = np.argsort(rng.random((draws, len(target))), axis=1)[:, :m]
    p90 = np.percentile(target, 90)
    rows = []
    for label, score in (("this proxy", proxy), ("a perfect proxy", target)):
        picks = target[subsets[np.arange(draws), np.argmax(score[subsets], axis=1)]]
        rows.append(f"{label}: {picks.mean() - target.mean():+.2f} points above the sample's mean, "
                    f"{100 * (picks > p90).mean():.0f} % of picks above its 90th percentile")
    return f"picking the best of {m} genomes drawn from the sample ({draws} draws), by the last epoch's " \
           f"accuracy: {'; '.join(rows)}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE for the proxy (repeatable)")
    p.add_argument("--name", default="", help="cache the proxy's curves under OUT/proxy-NAME "
                                                  "(one per --set combination)")
    p.add_argument("--out", required=True, help="the search_phase.py output folder")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--group", choices=["random", "searched", "fidelity"],
                   help="only the genomes of this group (e.g. the random cells: a sample of the space)")
    p.add_argument("--pick-from", type=int, default=8, metavar="M",
                   help="also report the genome a proxy picks from M genomes drawn at random from the sample "
                        "(a search ranking M candidates; default 8)")
    p.add_argument("--last-only", action="store_true",
                   help="validate after the last epoch only (cheaper; the weights are the same)")
    p.add_argument("--same-as", metavar="NAME", help="only the genomes an earlier proxy measured (OUT/proxy-NAME): "
                   "the same sample, at a lower cost")
    a = p.parse_args()
    out = Path(a.out)
    cache = out / (f"proxy-{a.name}" if a.name else "proxy")

    from cell_features import trained_genomes
    from scipy import stats

    df = trained_genomes(out)
    if a.group:
        df = df[df["group"] == a.group]
    if a.same_as:
        df = df[[(out / f"proxy-{a.same_as}" / f"{n}.json").exists() for n in df["name"]]]
    names = list(df["name"])
    from nasgep.processes import die_with_parent
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn"), initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:     # workers end with the driver
        list(pool.map(curve, *zip(*[(a.config, a.set, a.dataset, n, g, str(cache), a.last_only)
                                    for n, g in zip(df["name"], df["genome"])])))

    curves = {n: json.loads((cache / f"{n}.json").read_text()) for n in names}
    final = list(df["accuracy"])
    print(f"{len(names)} genomes ({', '.join(f'{k} {v}' for k, v in df['group'].value_counts().items())}), "
          "proxy = validation accuracy after k epochs of the search's schedule"
          f"{' with ' + ', '.join(a.set) if a.set else ''}, "
          f"no inheritance; target = test accuracy after full training, mean over its training seeds\n")
    print("| k epochs | Kendall tau | p |\n|---|---|---|")
    for k in range(len(next(iter(curves.values()))["val"])):
        if any(curves[n]["val"][k] is None for n in names):
            continue        # not validated after k + 1 epochs (--last-only)
        res = stats.kendalltau([curves[n]["val"][k] for n in names], final)
        print(f"| {k + 1} | {res.statistic:.2f} | {res.pvalue:.3f} |")
    res = stats.kendalltau([curves[n]["params"] for n in names], final)
    print(f"\nparameters vs trained accuracy: tau {res.statistic:.2f} (p = {res.pvalue:.3f})")
    if all(curves[n]["val"][0] is not None for n in names):
        res = stats.kendalltau([curves[n]["params"] for n in names], [curves[n]["val"][0] for n in names])
        print(f"parameters vs 1-epoch accuracy: tau {res.statistic:.2f} (p = {res.pvalue:.3f})")
    last = [curves[n]["val"][-1] for n in names]
    print(f"\n{pick_report(last, final, a.pick_from)}")
    print(f"{pick_report(last, final, max(2, a.pick_from // 2))}")
    two = df[df["accuracies"].apply(len) >= 2]
    res = stats.kendalltau(two["accuracies"].str[0], two["accuracies"].str[1])
    print(f"trained accuracy, first vs second training: tau {res.statistic:.2f} (p = {res.pvalue:.3f}, "
          f"n = {len(two)})")


if __name__ == "__main__":
    main()
