"""Which cell structures go with trained accuracy (issue 9), not a test.

Reads the output folder of bench/search_phase.py, finds the genome behind every full
training in it (random cells, both selections' picks, the fidelity sample, of every
variant), and prints Kendall's tau between simple structure counts and the genome's mean
trained test accuracy, with p-values and the Benjamini-Hochberg adjustment over all the
counts screened (a screen of ~20 counts finds a p < 0.05 by chance alone). With
``--since NAME`` it also checks, on the genomes that are NOT in an earlier list (written
by ``--save NAME``), the direction found before: a hypothesis tested on fresh genomes.
Last, per search variant: the trained accuracy of every genome the searches produced
(picks and fidelity sample) against the random cells (Mann-Whitney U): is the search's
population itself worse or better than random draws, whichever individual it reports?

Structure counts per cell (normal, reduction): the cell's ``add`` and ``cat`` nodes, the
operations of its coding genes by family (pw, dw, sep, isep), raw input reads, and the
inputs (h1, h2) its genes read; plus the network's parameters.

  python bench/cell_features.py /work/runs/sp32 --save first27
  python bench/cell_features.py /work/runs/sp32 --since first27 --feature normal_cat
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from nasgep.space import OPERATIONS, Genome, parse_terminal  # noqa: E402


def structure(genome: Genome) -> Counter:
    """Structure counts of both cells, keyed ``<pool>_<what>``."""
    counts: Counter = Counter()
    for pool in ("normal", "reduction"):
        cell = getattr(genome, pool).used_only()
        tree = cell.tree()
        for node in tree.walk():
            if node.children:
                counts[f"{pool}_{node.symbol}"] += 1
                continue
            for sym in (n.symbol for n in cell.gene_tree(node.symbol).walk()):
                if sym == "add":
                    counts[f"{pool}_gene_add"] += 1
                    continue
                op, inp = (sym, None) if sym in OPERATIONS else parse_terminal(sym)
                if op is None:
                    counts[f"{pool}_raw"] += 1
                else:
                    counts[f"{pool}_{op.split('_')[0]}"] += 1
                    counts[f"{pool}_ops"] += 1
                if inp is not None:
                    counts[f"{pool}_reads_{inp}"] += 1
    return counts


@functools.cache
def _history_genomes(search_dir: Path) -> dict[str, str]:
    h = pd.read_parquet(search_dir / "history.parquet", columns=["id", "genome"])
    return dict(zip(h["id"], h["genome"]))


def trained_genomes(out: Path) -> pd.DataFrame:
    """One row per distinct genome fully trained under OUT/train (the same genome picked
    under two names counts once): its first name, group and variant, the genome as JSON,
    the accuracy of every training, their mean, and the structure counts."""
    found: dict[str, dict] = {}
    for folder in sorted(p for p in (out / "train").iterdir() if p.is_dir()):
        results = [json.loads(f.read_text()) for f in sorted(folder.glob("s*.json"))]
        results = [r for r in results if "copied_from" not in r]   # the same training under a second name
        if not results:
            continue
        meta = results[0]
        variant = meta.get("variant", "paper")
        search = out / ("search" if variant == "paper" else f"search-{variant}") / f"seed{meta['search_seed']}"
        if meta["group"] == "random":
            genome = Genome.from_dict(json.loads((out / "random" / f"{meta['genome']}.json").read_text())["genome"])
        elif meta["group"] == "fidelity":
            genome = Genome.from_json(_history_genomes(search)[meta["genome"].split("-", 1)[1]])
        elif meta.get("selection") == "retrain":
            genome = Genome.from_dict(json.loads((search / "finalists.json").read_text())["genome"])
        else:
            genome = Genome.from_dict(json.loads((search / "best.json").read_text())["genome"])
        text = genome.to_json()
        if text not in found:
            found[text] = {"name": folder.name, "group": meta["group"], "variant": variant, "genome": text,
                           "accuracies": [], "params": meta["params"], **structure(genome)}
        found[text]["accuracies"] += [r["accuracy"] for r in results]
    df = pd.DataFrame(list(found.values())).fillna(0)
    df["accuracy"] = df["accuracies"].apply(lambda a: sum(a) / len(a))
    return df


def screen(df: pd.DataFrame) -> pd.DataFrame:
    features = [c for c in df.columns if c not in ("name", "group", "variant", "genome", "accuracies", "accuracy")]
    rows = []
    for c in features:
        if df[c].nunique() < 2:
            continue
        t = stats.kendalltau(df[c], df["accuracy"])
        rows.append({"feature": c, "mean": df[c].mean(), "tau": t.statistic, "p": t.pvalue})
    table = pd.DataFrame(rows)
    table["p_bh"] = stats.false_discovery_control(table["p"])
    return table.sort_values("p")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="bench/search_phase.py's output folder")
    p.add_argument("--save", metavar="NAME", help="remember the genomes seen now as OUT/features-NAME.json")
    p.add_argument("--since", metavar="NAME", help="test --feature on the genomes not in that list")
    p.add_argument("--feature", default="normal_cat", help="the count tested with --since (one-sided, tau > 0)")
    a = p.parse_args()
    df = trained_genomes(a.out)
    print(f"{len(df)} trained genomes ({', '.join(f'{k} {v}' for k, v in df['group'].value_counts().items())})")
    print(screen(df).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    random = df[df["group"] == "random"]["accuracy"]
    for variant, rows in df[df["group"] != "random"].groupby("variant"):
        t = stats.mannwhitneyu(rows["accuracy"], random)
        print(f"genomes of the {variant} searches (picks and fidelity sample, n {len(rows)}): "
              f"{rows['accuracy'].mean():.2f} %, random cells {random.mean():.2f} % (n {len(random)}); "
              f"Mann-Whitney p {t.pvalue:.3f}")
    if a.save:
        (a.out / f"features-{a.save}.json").write_text(json.dumps(sorted(df["name"])) + "\n")
    if a.since:
        seen = set(json.loads((a.out / f"features-{a.since}.json").read_text()))
        fresh = df[~df["name"].isin(seen)]
        t = stats.kendalltau(fresh[a.feature], fresh["accuracy"], alternative="greater")
        print(f"\n{a.feature} on the {len(fresh)} genomes not in {a.since}: tau {t.statistic:+.2f}, "
              f"one-sided p {t.pvalue:.3f}")
        print(fresh.groupby(a.feature)["accuracy"].agg(["mean", "count"]).to_string(float_format=lambda x: f"{x:.2f}"))


if __name__ == "__main__":
    main()
