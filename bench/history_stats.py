"""What a search's history says about its fitness (issue 9), not a test: for each search
folder, Kendall's tau between epochs trained and fitness over all rows, between the
inherited share and a child's first-generation fitness, between parameters and
first-epoch fitness, and where the result (best.json) stands in training age; then
whether breeding lifts the fitness: the mean fitness of the individuals born in each
generation, in their birth generation, minus that of the random initial population
(generation 0), per search, with a one-sided t-test over the searches (scipy) of the
later generations' gain; and whether fitness is inherited at all, without which
selection cannot act: Kendall's tau between a child's fitness and its parents' mean
fitness (each parent's latest before the child's birth), pooled over the searches.
Under ``search.evaluation: full`` every birth-generation fitness is a full E_max
training from scratch, so the gain is the breeding's alone.

  python bench/history_stats.py results/cifar10-cpu/searchphase/search/seed*
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from scipy import stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path, help="search output folders")
    p.add_argument("--generations", type=int, default=None,
                   help="read only generations 0..N-1 (a longer search's history as a shorter one's)")
    a = p.parse_args()
    print("| search | rows | tau(epochs, fitness) | tau(inherited, child fitness) | "
          "tau(params, 1st-gen fitness) | best.json: epochs (max in history), born |")
    print("|---|---|---|---|---|---|")
    histories = {}   # folder -> its history's rows without failures, read once
    for folder in a.folders:
        h = pd.read_parquet(folder / "history.parquet")
        if a.generations is not None:
            h = h[h["generation"] < a.generations]
        h = histories[folder.name] = h[h["failure"].isna()]
        best = json.loads((folder / "best.json").read_text())
        if a.generations is not None:   # the best of the generations read, as that search's best.json
            best = h.sort_values(["fitness", "generation"], ascending=[False, True]).iloc[0]
            best = {"individual": best["id"], "epochs": best["epochs"]}
        first = h[h["generation"] == h["born"]]
        children = first[first["born"] > 0]
        t_e = stats.kendalltau(h["epochs"], h["fitness"])
        t_i = stats.kendalltau(children["inherited"], children["fitness"])
        t_p = stats.kendalltau(first["params"], first["fitness"])
        born = h[h["id"] == best["individual"]]["born"].min()
        print(f"| {folder.name} | {len(h)} | {t_e.statistic:.2f} (p {t_e.pvalue:.3f}) | "
              f"{t_i.statistic:.2f} (p {t_i.pvalue:.3f}, n {len(children)}) | "
              f"{t_p.statistic:.2f} (p {t_p.pvalue:.3f}) | {best['epochs']} ({h['epochs'].max()}), gen {born} |")

    breeding_gain(histories)


def breeding_gain(histories: dict[str, pd.DataFrame]) -> None:
    """Mean birth-generation fitness per generation, as a gain over generation 0."""
    rows, pairs = {}, []
    for name, h in histories.items():
        pairs += parent_child(h)
        h = h[h["generation"] == h["born"]]
        means = h.groupby("born")["fitness"].mean()
        rows[name] = {g: m - means[0] for g, m in means.items() if g > 0} | {0: means[0]}
    gens = sorted({g for r in rows.values() for g in r if g > 0})
    print("\n| search | gen 0 mean fitness | " + " | ".join(f"gen {g} - gen 0" for g in gens)
          + " | later gens - gen 0 |")
    print("|---|---|" + "---|" * (len(gens) + 1))
    gains = []   # one per search that had a generation after the first
    for name, r in rows.items():
        later = [r[g] for g in gens if g in r]
        gain = sum(later) / len(later) if later else None
        gains += [gain] if later else []
        print(f"| {name} | {r[0]:.2f} | " + " | ".join(f"{r[g]:+.2f}" if g in r else "" for g in gens)
              + (f" | {gain:+.2f} |" if later else " | |"))
    if len(gains) > 1:
        t = stats.ttest_1samp(gains, 0.0, alternative="greater")
        print(f"\nmean gain of the later generations {sum(gains) / len(gains):+.2f} over "
              f"{len(gains)} searches, one-sided t-test p = {t.pvalue:.3f}")
    if len(pairs) > 1:
        mid, child = zip(*pairs)
        tau = stats.kendalltau(mid, child)
        print(f"heritability: tau(parents' mean fitness, child's fitness) {tau.statistic:.2f} "
              f"(p {tau.pvalue:.3f}, n {len(pairs)}); child minus parents' mean "
              f"{sum(c - m for m, c in pairs) / len(pairs):+.2f} points")


def parent_child(h: pd.DataFrame) -> list[tuple[float, float]]:
    """(parents' mean fitness, child's birth-generation fitness) for every bred child."""
    pairs = []
    for child in h[(h["generation"] == h["born"]) & (h["born"] > 0)].itertuples():
        parents = [p for p in child.parents.split(",") if p]
        before = h[h["id"].isin(parents) & (h["generation"] < child.born)]
        latest = before.sort_values("generation").groupby("id")["fitness"].last()
        if parents and all(p in latest for p in parents):
            pairs.append((sum(latest[p] for p in parents) / len(parents), child.fitness))
    return pairs


if __name__ == "__main__":
    main()
