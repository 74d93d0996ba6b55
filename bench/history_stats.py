"""What a search's history says about its fitness (issue 9), not a test: for each search
folder, Kendall's tau between epochs trained and fitness over all rows, between the
inherited share and a child's first-generation fitness, between parameters and
first-epoch fitness, and where the result (best.json) stands in training age.

  python bench/history_stats.py results/cifar10-cpu/searchphase/search/seed*
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from scipy import stats


def main() -> None:
    print("| search | rows | tau(epochs, fitness) | tau(inherited, child fitness) | "
          "tau(params, 1st-gen fitness) | best.json: epochs (max in history), born |")
    print("|---|---|---|---|---|---|")
    for folder in map(Path, sys.argv[1:]):
        h = pd.read_parquet(folder / "history.parquet")
        h = h[h["failure"].isna()]
        best = json.loads((folder / "best.json").read_text())
        first = h[h["generation"] == h["born"]]
        children = first[first["born"] > 0]
        t_e = stats.kendalltau(h["epochs"], h["fitness"])
        t_i = stats.kendalltau(children["inherited"], children["fitness"])
        t_p = stats.kendalltau(first["params"], first["fitness"])
        born = h[h["id"] == best["individual"]]["born"].min()
        print(f"| {folder.name} | {len(h)} | {t_e.statistic:.2f} (p {t_e.pvalue:.3f}) | "
              f"{t_i.statistic:.2f} (p {t_i.pvalue:.3f}, n {len(children)}) | "
              f"{t_p.statistic:.2f} (p {t_p.pvalue:.3f}) | {best['epochs']} ({h['epochs'].max()}), gen {born} |")


if __name__ == "__main__":
    main()
