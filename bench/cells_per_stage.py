"""Do cells matter more with two cells per stage? (issue 9, docs/search-quality.md; not a test)

Reads the trainings of the same random genomes at two protocols, N = 1 cell per stage
(the powered confirmation's random cells, bench/ledger/powered and bench/ledger/twoseeds)
and N = 2 (OUT, made by bench/cells_per_stage.sh), and prints for each protocol the
spread between genomes without the training noise, the training noise and its share
(nasgep.report.searchphase.training_noise); the ratio of genome variance to noise
variance at N = 2 over N = 1 with a percentile bootstrap interval over genomes
(scipy.stats.bootstrap, the genomes resampled together at both protocols); Kendall's tau
between the genomes' means at the two protocols; and what a perfect fitness would reach
at each protocol (bench/selection_ceiling.py's model and defaults).

  python bench/cells_per_stage.py /work/runs/n2
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from selection_ceiling import simulate  # noqa: E402

from nasgep.report.searchphase import training_noise  # noqa: E402


def accuracies(folders: list[Path]) -> dict[str, dict[int, float]]:
    """Random genome name -> {training seed: test accuracy} over the ``train/random-*`` of
    ``folders`` (a training kept in two folders counts once)."""
    found: dict[str, dict[int, float]] = {}
    for folder in folders:
        for f in sorted(folder.glob("train/random-*/s*.json")):
            r = json.loads(f.read_text())
            found.setdefault(r["genome"], {})[int(r["train_seed"])] = float(r["accuracy"])
    return found


def variance_ratio(table: np.ndarray) -> float:
    """Genome variance over noise variance of a (genomes x trainings) table."""
    n = training_noise({str(i): row for i, row in enumerate(table)})
    return n["genome"] ** 2 / n["within"] ** 2 if n["within"] > 0 else math.inf


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="the N = 2 trainings (bench/search_phase.py's output folder)")
    p.add_argument("--n1", type=Path, nargs="+",
                   default=[ROOT / "bench/ledger/powered", ROOT / "bench/ledger/twoseeds"],
                   help="folders holding the same genomes' N = 1 trainings")
    a = p.parse_args()
    two, one = accuracies([a.out]), accuracies(a.n1)
    names = sorted(n for n in two if n in one and len(two[n]) >= 2 and len(one[n]) >= 2)
    if len(names) < 3:
        sys.exit(f"{a.out}: fewer than 3 genomes trained twice at both protocols ({len(names)})")
    seeds = sorted(set.intersection(*(set(two[n]) & set(one[n]) for n in names)))
    table = {1: np.array([[one[n][s] for s in seeds] for n in names]),
             2: np.array([[two[n][s] for s in seeds] for n in names])}
    print(f"{len(names)} genomes ({names[0]}..{names[-1]}), training seeds {seeds} at both protocols")
    print(f"{'N':>2} {'mean':>6} {'genome sd':>10} {'noise sd':>9} {'noise share':>12} "
          f"{'P_oracle(>=2 above p90)':>24} {'P_oracle(t p<0.025)':>20} {'oracle gain':>12}")
    rng = np.random.default_rng(0)
    for n, t in table.items():
        est = training_noise({str(i): row for i, row in enumerate(t)})
        ceiling = simulate(1.0, est["genome"], est["within"], candidates=24, n_random=12, seeds=3,
                           train_seeds=2, trials=20000, rng=rng)
        print(f"{n:>2} {t.mean():6.2f} {est['genome']:10.2f} {est['within']:9.2f} {est['share']:12.2f} "
              f"{ceiling['p_goal_p90']:24.2f} {ceiling['p_goal_ri']:20.2f} {ceiling['gain']:12.2f}")

    def ratio(idx: np.ndarray) -> float:
        idx = idx.astype(int)
        return variance_ratio(table[2][idx]) / max(variance_ratio(table[1][idx]), 1e-12)

    point = ratio(np.arange(len(names)))
    boot = stats.bootstrap((np.arange(len(names)),), ratio, vectorized=False, method="percentile",
                           n_resamples=5000, random_state=np.random.default_rng(1))
    lo, hi = boot.confidence_interval
    print(f"genome/noise variance ratio, N = 2 over N = 1: {point:.2f} [{lo:.2f}, {hi:.2f}] "
          f"(95 % percentile bootstrap over genomes)")
    tau = stats.kendalltau(table[1].mean(axis=1), table[2].mean(axis=1))
    print(f"Kendall tau between the genomes' N = 1 and N = 2 means: {tau.statistic:.2f} (p = {tau.pvalue:.3f})")


if __name__ == "__main__":
    main()
