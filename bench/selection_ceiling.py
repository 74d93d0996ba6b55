"""What issue 9's goal asks of a search's fitness, at a given protocol (not a test).

A search that ranks its candidates by a fitness and reports the best can only do better
than random cells as far as its fitness predicts the trained accuracy. This script takes
the random cells' trainings of a bench/search_phase.py run, splits their variance into
the spread between genomes and the training noise (nasgep.report.searchphase.training_noise,
a one-way random-effects estimate), and simulates the study under a normal model:

- random baseline: ``--random`` genomes, each trained ``--train-seeds`` times;
- each of ``--seeds`` searches: ``--candidates`` genomes drawn from the same population,
  ranked by a fitness whose correlation with a genome's true (noise-free) accuracy is
  rho, the top one reported and trained ``--train-seeds`` times.

For each rho it prints the chance that the issue's goals hold: the pick above the random
cells' 90th percentile in at least 2 of the seeds, and a one-sided Welch t-test of the
picks against the random cells at p < 0.025 (standing in for "the RI interval lies above
0"); plus the expected gain in points. rho = 1 is an oracle, the best any fitness can
do; rho = 0 is a blind fitness (the search then reports a random draw of its candidates);
the last row is a fitness that is itself one full training of the final network (its
correlation with the true accuracy is limited by the training noise).
Also printed: the Kendall tau that such a fitness would show against the 2-seed mean
accuracy, the figure bench/proxy_fidelity.py and the search-phase report measure.

The model is the best case for the search: it assumes the searched candidates are drawn
from the random cells' population (the searches measured here drew worse ones) and gives
the search nothing beyond that population (a search that moves the population would).

  python bench/selection_ceiling.py /work/runs/sp32
  python bench/selection_ceiling.py - --genome-sd 0.76 --noise-sd 0.60 --candidates 16 --train-seeds 1
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from cell_features import trained_genomes  # noqa: E402

from nasgep.report.searchphase import training_noise  # noqa: E402


def simulate(rho: float, genome_sd: float, noise_sd: float, candidates: int, n_random: int,
             seeds: int, train_seeds: int, trials: int, rng: np.random.Generator) -> dict[str, float]:
    """Chance of the goals and expected gain for a fitness of correlation ``rho`` with the
    true accuracy (all accuracies relative to the population mean, in points)."""
    noise = noise_sd / math.sqrt(train_seeds)
    random = rng.normal(0, genome_sd, (trials, n_random)) + rng.normal(0, noise, (trials, n_random))
    p90 = np.percentile(random, 90, axis=1)
    true = rng.normal(0, 1, (trials, seeds, candidates))
    fitness = rho * true + math.sqrt(max(0.0, 1 - rho ** 2)) * rng.normal(0, 1, true.shape)
    pick = np.take_along_axis(true, fitness.argmax(axis=2)[..., None], axis=2)[..., 0] * genome_sd
    observed = pick + rng.normal(0, noise, pick.shape)
    above = (observed > p90[:, None]).sum(axis=1)
    p = stats.ttest_ind(observed, random, axis=1, equal_var=False, alternative="greater").pvalue
    return {"p_goal_p90": float(np.mean(above >= 2)), "p_goal_ri": float(np.mean(p < 0.025)),
            "gain": float(pick.mean())}


def measured_tau(rho: float, genome_sd: float, noise_sd: float, train_seeds: int) -> float:
    """Kendall tau of such a fitness against the mean of ``train_seeds`` trainings
    (bivariate normal: tau = 2/pi arcsin r)."""
    reliability = genome_sd / math.sqrt(genome_sd ** 2 + noise_sd ** 2 / train_seeds)
    return 2 / math.pi * math.asin(rho * reliability)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="bench/search_phase.py's output folder (its random cells' trainings)")
    p.add_argument("--candidates", type=int, default=24,
                   help="distinct genomes a search ranks (23-24 in the CPU protocol's histories)")
    p.add_argument("--random", type=int, default=12, help="random genomes in the baseline")
    p.add_argument("--seeds", type=int, default=3, help="search seeds")
    p.add_argument("--train-seeds", type=int, default=2, help="trainings per genome")
    p.add_argument("--trials", type=int, default=20000)
    p.add_argument("--genome-sd", type=float, default=None,
                   help="between-genome sd (points) instead of the estimate from OUT's random cells")
    p.add_argument("--noise-sd", type=float, default=None,
                   help="training noise sd per training (points), e.g. bench/eval_noise.py's figure for "
                        "a larger test set")
    a = p.parse_args()
    if a.genome_sd is not None and a.noise_sd is not None:
        noise = {"genome": a.genome_sd, "within": a.noise_sd,
                 "share": a.noise_sd ** 2 / (a.noise_sd ** 2 + a.genome_sd ** 2)}
    else:
        df = trained_genomes(a.out)
        random = df[df["group"] == "random"]
        noise = training_noise(dict(zip(random["name"], random["accuracies"])))
        if not noise["share"] > 0:
            sys.exit(f"{a.out}: no training noise measured (each random genome needs two trainings)")
        if a.genome_sd is not None or a.noise_sd is not None:
            noise = {"genome": a.genome_sd or noise["genome"], "within": a.noise_sd or noise["within"]}
            noise["share"] = noise["within"] ** 2 / (noise["within"] ** 2 + noise["genome"] ** 2)
    genome_sd = noise["genome"]
    print(f"random cells: between-genome sd {genome_sd:.2f} points (noise-free), training noise sd "
          f"{noise['within']:.2f}, noise share {noise['share']:.2f}; {a.candidates} candidates per search, "
          f"{a.random} random genomes, {a.seeds} seeds, {a.train_seeds} trainings each")
    print(f"{'rho':>5} {'tau vs target':>14} {'P(>=2 above p90)':>17} {'P(t-test p<0.025)':>18} {'gain (points)':>14}")
    rng = np.random.default_rng(0)
    one_training = genome_sd / math.hypot(genome_sd, noise["within"])
    for rho in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, one_training):
        r = simulate(rho, genome_sd, noise["within"], a.candidates, a.random, a.seeds, a.train_seeds, a.trials, rng)
        print(f"{rho:5.2f} {measured_tau(rho, genome_sd, noise['within'], a.train_seeds):14.2f} "
              f"{r['p_goal_p90']:17.2f} {r['p_goal_ri']:18.2f} {r['gain']:14.2f}"
              + ("   <- a fitness that is one full training of the final network" if rho == one_training else ""))


if __name__ == "__main__":
    main()
