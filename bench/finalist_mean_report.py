"""The planned comparison of bench/finalist_mean.sh (docs/search-quality.md, "does
re-evaluating the top candidates lift the `full` pick?"), not a test: for each search
seed, the fitness pick and the re-evaluated pick (both the mean of two trainings), the
paired one-sided Wilcoxon signed-rank test over the seeds where the pick changed, how
often the re-training alone would have chosen another finalist, and, for the finalists,
how far a re-training lands from the search's own measurement of the same genome.
The RI and p90 statistics of the re-evaluated picks are bench/search_phase.py's report
(``bench/finalist_mean.sh OUT --report-only``).

  python bench/finalist_mean_report.py [OUT] [--seeds 14-19]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

V = "full8g2v4"


def mean_accuracy(out: Path, name: str, seeds: int = 2) -> float | None:
    runs = [out / "train" / name / f"s{t}.json" for t in range(seeds)]
    if not all(r.exists() for r in runs):
        return None
    return statistics.fmean(json.loads(r.read_text())["accuracy"] for r in runs)


def main(argv: list[str] | None = None) -> None:
    from nasgep.space import Genome

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", default="/work/runs/finalmean", type=Path)
    p.add_argument("--seeds", default="14-19", help="FIRST-LAST")
    a = p.parse_args(argv)
    first, last = (int(x) for x in a.seeds.split("-"))
    diffs, changed, alone, gaps = [], 0, 0, []
    print("| seed | fitness pick | its accuracy | re-evaluated pick | its accuracy | difference |")
    print("|---|---|---|---|---|---|")
    for seed in range(first, last + 1):
        search = a.out / f"search-{V}" / f"seed{seed}"
        fin = json.loads((search / "finalists.json").read_text())
        finalists = fin["finalists"]
        # the fitness pick is best.json's (the genome trained as fitness-seed<N>), not the first
        # finalist: on a tie of fitness the search keeps the earlier individual, the finalists
        # rank by id ('i10' before 'i2'), and a genome bred twice is one finalist under one id
        paper = json.loads((search / "best.json").read_text())
        pick = next(f for f in finalists if f["id"] == fin["chosen"])
        same = Genome.from_json(pick["genome"]).to_dict() == Genome.from_dict(paper["genome"]).to_dict()
        by_retraining = max(finalists, key=lambda f: (f["retrained"] or 0.0, f["score"]))
        alone += by_retraining["id"] != pick["id"]
        gaps += [f["retrained"] - f["fitness"] for f in finalists]
        old = mean_accuracy(a.out, f"{V}-fitness-seed{seed}")
        new = mean_accuracy(a.out, f"{V}-retrain-seed{seed}")
        if old is None or new is None:
            print(f"| {seed} | {paper['individual']} | {old} | {pick['id']} | {new} | (not trained yet) |")
            continue
        changed += not same
        diffs.append(new - old)
        print(f"| {seed} | {paper['individual']} ({paper['fitness']:.2f}) | {old:.2f} | {pick['id']} "
              f"({(pick['fitness'] + pick['retrained']) / 2:.2f}) | {new:.2f} | {new - old:+.2f} |")
    nonzero = [d for d in diffs if d != 0]
    print(f"\nseeds compared: {len(diffs)}; pick changed in {changed}; the re-training alone would have "
          f"chosen another finalist in {alone}")
    if diffs:
        print(f"mean difference over all seeds: {statistics.fmean(diffs):+.2f} points")
    if nonzero:
        w = stats.wilcoxon(nonzero, alternative="greater")
        print(f"paired one-sided Wilcoxon over the {len(nonzero)} changed seeds: statistic {w.statistic:.1f}, "
              f"p = {w.pvalue:.3f}")
    if gaps:
        print(f"re-training minus search fitness, same genome (all finalists, n = {len(gaps)}): mean "
              f"{statistics.fmean(gaps):+.2f}, sd {statistics.stdev(gaps):.2f} points "
              f"(the top candidates' winner's curse, and one measurement's noise)")


if __name__ == "__main__":
    main()
