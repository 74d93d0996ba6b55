"""Search-phase evaluation (Yu et al., "Evaluating the search phase of neural
architecture search", ICLR 2020): does the search find better cells than drawing them at
random, and does its fitness rank candidates the way full training does?

Input is a tidy table of full trainings, one row per (genome, training seed):

    group        "searched", "random" or "fidelity" (a history individual re-trained)
    genome       a name unique within its group (search seed, random draw, individual)
    search_seed  the search a searched / fidelity genome came from (None for random)
    train_seed   the training seed
    accuracy     test accuracy in percent after full training
    params       parameters of the trained network
    fitness      the search fitness (fidelity rows; the searched genome's best.json)

The unit of comparison is a *genome*: its accuracy is the mean over its training seeds,
and the spread of those seeds (training noise) is reported apart from the spread between
genomes. All tests come from :mod:`scipy.stats`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import integrate, stats

from ..io import atomic_save_figure, literal_text

#: the share of random genomes a searched genome must beat (issue 9's goal: the 90th percentile)
GOAL_PERCENTILE = 90.0
#: Fewer random cells or searches than these and the report warns that its statistics
#: say little: a 90th percentile of 2-4 values, a bootstrap resampling 2 values, and a
#: permutation test whose smallest possible p (1 / C(n_searched + n_random, n_searched))
#: is near or above 0.05 (2 searches and 5 random cells: 0.048).
MIN_RANDOM_CELLS = 5
MIN_SEARCHES = 3


def percentile_rank(value: float, population: Sequence[float]) -> float:
    """The percentile ``value`` sits at in ``population``: the inverse of numpy's (linear)
    ``np.percentile``, 0 below the smallest value and 100 above the largest. So a value
    lies above the population's 90th percentile exactly when its rank is above 90, the
    one definition the report's rank column and its "above p90" goal share (until
    2026-12-07 the column was scipy's ``percentileofscore``, which could show 80 beside
    "above p90")."""
    x = np.sort(np.asarray(population, float))
    if len(x) < 2 or not (np.isfinite(x).all() and math.isfinite(value)):
        return math.nan       # (a NaN among the random cells sorted last and gave a rank: 25 for 2 in 1, NaN, 3)
    q = np.linspace(0.0, 100.0, len(x))
    # tied values span a range of percentiles: a value equal to them sits at the lowest
    # (np.percentile of a tie is the tie), so it is never ranked above what it equals
    low = float(np.interp(value, x, q, right=100.0))
    ties = q[x == value]
    rank = float(ties.min()) if len(ties) else low
    # interpolating back can land a rounding error off np.percentile's own arithmetic: a
    # value equal to the 90th percentile (46.52 among 25 cells) came out at 90.00000000000006
    goal = float(np.percentile(x, GOAL_PERCENTILE))
    if (rank > GOAL_PERCENTILE) != (value > goal):
        rank = GOAL_PERCENTILE if value <= goal else float(np.nextafter(GOAL_PERCENTILE, math.inf))
    return rank


def _ri_statistic(a, b, axis=-1):
    return 100.0 * (np.mean(a, axis=axis) - np.mean(b, axis=axis)) / np.mean(b, axis=axis)


def _mean_difference(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def ri_interval(searched: Sequence[float], random: Sequence[float], confidence: float = 0.95,
                n_resamples: int = 9999, seed: int = 0) -> tuple[float, float, float]:
    """RI of the means and its bootstrap interval (each sample resampled on its own:
    searched genomes over search seeds, random genomes over draws). Returns (ri, low, high);
    the interval is NaN when a sample has fewer than two values."""
    a, b = np.asarray(searched, float), np.asarray(random, float)
    ri = float(_ri_statistic(a, b))
    if len(a) < 2 or len(b) < 2:
        return ri, math.nan, math.nan
    res = stats.bootstrap((a, b), _ri_statistic, confidence_level=confidence, n_resamples=n_resamples,
                          method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return ri, float(res.confidence_interval.low), float(res.confidence_interval.high)


def permutation_p(searched: Sequence[float], random: Sequence[float], n_resamples: int = 9999,
                  seed: int = 0) -> float:
    """One-sided permutation test of mean(searched) > mean(random) (exact when the number
    of relabellings is at most ``n_resamples``); NaN when a sample has fewer than two
    values (one search seed says nothing about the search's spread)."""
    a, b = np.asarray(searched, float), np.asarray(random, float)
    if len(a) < 2 or len(b) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan       # (a NaN accuracy gave p = 0.000)
    res = stats.permutation_test((a, b), _mean_difference, permutation_type="independent",
                                 alternative="greater", n_resamples=n_resamples, vectorized=True,
                                 rng=np.random.default_rng(seed))
    return float(res.pvalue)


def _above_goal_count(a, b, axis=-1):
    return np.sum(a > np.percentile(b, GOAL_PERCENTILE, axis=axis, keepdims=True), axis=axis)


def above_goal_p(searched: Sequence[float], random: Sequence[float], n_resamples: int = 9999,
                 seed: int = 0) -> tuple[float, float]:
    """One-sided permutation test of the number of searched genomes above the random
    genomes' 90th percentile, and the share of searched genomes expected above it by
    chance: ``(p, chance)``; NaN without searched genomes or with fewer than two random.

    The 90th percentile is estimated from the few random genomes, and every searched genome
    is compared with that one estimate, so a genome no better than a random one lands
    above it far more often than 10 % (about 29 % with 3 random cells, 16 % with 12, 13 %
    with 25), and a binomial test against 10 % (used until 2026-12-07) rejected a search
    no better than random sampling in up to 15 % of studies at the 5 % level. Relabelling
    the genomes and recounting gives the right null."""
    a, b = np.asarray(searched, float), np.asarray(random, float)
    if len(a) == 0 or len(b) < 2 or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan, math.nan
    if len(a) == 1:       # scipy wants two per sample: each of the pooled genomes in turn is "searched"
        pooled = np.concatenate([a, b])
        null = np.array([_above_goal_count(pooled[i:i + 1], np.delete(pooled, i)) for i in range(len(pooled))])
        return float(np.mean(null >= _above_goal_count(a, b))), float(np.mean(null))
    res = stats.permutation_test((a, b), _above_goal_count, permutation_type="independent",
                                 alternative="greater", n_resamples=n_resamples, vectorized=True,
                                 rng=np.random.default_rng(seed))
    return float(res.pvalue), float(np.mean(res.null_distribution)) / len(a)


def detectable_ri(random: Sequence[float], n_searched: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest RI this design detects with probability ``power`` in a one-sided
    test at level ``alpha``: (z_(1-alpha) + z_power) x sd x sqrt(1/n_searched + 1/n_random),
    as RI, with the random genomes' spread (training noise included) standing for both
    samples' (normal approximation; NaN for fewer than two random or no searched genomes,
    and when the random genomes' accuracies do not vary: a spread of 0 is no estimate of
    the spread, and gave 'detects an RI of +0.00 %'). A negative result is only
    informative against effects at least this large."""
    b = np.asarray(random, float)
    if len(b) < 2 or n_searched < 1 or float(np.ptp(b)) == 0.0:
        return math.nan
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)
    delta = z * float(np.std(b, ddof=1)) * math.sqrt(1 / n_searched + 1 / len(b))
    return 100.0 * delta / float(np.mean(b))


def expected_best(n: int) -> float:
    """E[max of n independent standard normal draws] (0 for n = 1)."""
    if n < 1:
        return math.nan
    if n == 1:
        return 0.0
    f = lambda x: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1)  # noqa: E731
    return float(integrate.quad(f, -np.inf, np.inf)[0])


def oracle_ri(genome_sd: float, candidates: int, random_mean: float) -> float:
    """The RI a search would reach on average if it reported, of ``candidates`` genomes
    drawn from the random cells' population, the one with the best noise-free accuracy:
    genome_sd x E[max of candidates normals], as RI. The ceiling of any fitness at this
    protocol (a real search's fitness is noisier; a search that breeds beyond the
    random population could exceed it). NaN when the genome spread is unknown."""
    if math.isnan(genome_sd) or candidates < 1:
        return math.nan
    return 100.0 * genome_sd * expected_best(candidates) / random_mean


def size_adjusted(searched: Sequence[float], searched_params: Sequence[float], random: Sequence[float],
                  random_params: Sequence[float]) -> dict[str, float]:
    """Is the search better than a random cell *of the same size*? A search under a
    parameter limit can win by picking cells near the limit, since larger cells of one
    space tend to train better. The random cells' accuracy is regressed on their parameter
    count (:func:`scipy.stats.linregress`; the searched cells take no part in the fit, so the
    search cannot move the reference line); ``gain`` is the searched cells' mean residual
    above that line minus the random cells' (0 by construction), in accuracy points,
    ``p`` its one-sided test (Welch's t with the line's own error: the searched cells'
    mean residual varies by their spread / m and by the line's error at their mean size,
    s^2 (1/n + (mean size - random mean size)^2 / Sxx); scipy's ``t``), and
    ``expected`` what the line predicts the searched cells' sizes alone are worth above the
    random mean. Until 2026-12-07 ``p`` was a permutation test of the residuals, which
    leaves the line's error out: with searched cells larger than the random ones it
    rejected a search that only prefers size in about 8 % (3,400 parameters larger, as on
    real CIFAR-10) to 12 % (6,000) of studies at the 5 % level. ``slope`` is in points per
    1,000 parameters, ``slope_p`` its two-sided p-value. All NaN with fewer than three
    random cells, fewer than two searched cells or random cells of a single size. A straight
    line through a noisy cloud: where the searched cells sit at the edge of the random
    cells' sizes it can mislead (on real CIFAR-10 it put 0.54 points on size that a direct
    test, the largest of 8 random cells, did not find: docs/search-quality.md), so read it
    as a hint and test it with a size-only baseline (``nasgep sample --largest-of K``)."""
    a, ap = np.asarray(searched, float), np.asarray(searched_params, float)
    b, bp = np.asarray(random, float), np.asarray(random_params, float)
    out = dict.fromkeys(("slope", "slope_p", "expected", "gain", "p"), math.nan)
    if len(b) < 3 or len(a) < 2 or np.ptp(bp) == 0:
        return out
    fit = stats.linregress(bp, b)
    line = lambda params: fit.intercept + fit.slope * params  # noqa: E731
    res_a, res_b = a - line(ap), b - line(bp)
    gain = float(np.mean(res_a) - np.mean(res_b))
    out.update(slope=1000.0 * float(fit.slope), slope_p=float(fit.pvalue),
               expected=float(np.mean(line(ap)) - np.mean(b)), gain=gain,
               p=_line_gain_p(gain, res_a, res_b, float(np.mean(ap)), bp))
    return out


def _line_gain_p(gain: float, res_a: np.ndarray, res_b: np.ndarray, size_a: float, bp: np.ndarray) -> float:
    """One-sided p of ``gain`` (the searched cells' mean residual above a line fitted to the
    random cells alone): Welch's t, its variance the searched residuals' spread / m plus
    the line's error at their mean size ``size_a``, s^2 (1/n + (size_a - mean(bp))^2 / Sxx)
    with s^2 the random residuals' variance (n - 2 degrees of freedom); Welch-Satterthwaite
    degrees of freedom. NaN when the residuals do not vary or are not finite."""
    m, n = len(res_a), len(res_b)
    if not (np.isfinite(res_a).all() and np.isfinite(res_b).all()):
        return math.nan
    s2 = float(np.sum(res_b ** 2)) / (n - 2)
    line_var = s2 * (1 / n + (size_a - float(np.mean(bp))) ** 2 / float(np.sum((bp - np.mean(bp)) ** 2)))
    own_var = float(np.var(res_a, ddof=1)) / m
    var = own_var + line_var
    if not var > 0:
        return math.nan
    # the line's variance has the n - 2 degrees of freedom of s^2 (n = 3: 1)
    df = var ** 2 / (own_var ** 2 / (m - 1) + line_var ** 2 / (n - 2))
    return float(stats.t.sf(gain / math.sqrt(var), df))


def kendall(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Kendall's tau-b and its two-sided p-value (NaN for fewer than 3 pairs)."""
    if len(x) < 3:
        return math.nan, math.nan
    res = stats.kendalltau(np.asarray(x, float), np.asarray(y, float))
    return float(res.statistic), float(res.pvalue)


def training_noise(accuracies: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Training-seed noise against the spread between genomes.

    ``within``: pooled standard deviation over training seeds of the same genome;
    ``between``: standard deviation of the genome means; ``genome``: the spread between
    genomes with the training noise taken out; ``share``: the share of the total
    variance that is training noise (one-way random-effects ANOVA estimate, clipped to
    [0, 1])."""
    groups = [np.asarray(v, float) for v in accuracies.values() if len(v) > 0]
    multi = [g for g in groups if len(g) > 1]
    if not multi:
        return {"within": math.nan, "between": math.nan, "genome": math.nan, "share": math.nan}
    within_var = float(np.sum([np.var(g, ddof=1) * (len(g) - 1) for g in multi])
                       / np.sum([len(g) - 1 for g in multi]))
    means = np.array([g.mean() for g in groups])
    between = float(np.std(means, ddof=1)) if len(means) > 1 else math.nan
    # E[var(genome means)] = var_genome + var_noise x mean(1 / n_i) -> var_genome estimate
    # (with genomes trained a different number of times; var_noise / mean(n_i), used until
    # 2026-12-07, took out too little noise: 3 genomes of 3 trainings and 10 of one
    # overstated the genome variance by 0.16 x the noise variance)
    inverse_n = float(np.mean([1.0 / len(g) for g in groups]))
    genome_var = max(0.0, between ** 2 - within_var * inverse_n) if not math.isnan(between) else math.nan
    total = genome_var + within_var
    return {"within": math.sqrt(within_var), "between": between, "genome": math.sqrt(genome_var),
            "share": within_var / total if total > 0 else math.nan}


@dataclass
class SearchedRow:
    search_seed: int
    accuracy: float                  # mean over training seeds
    accuracies: list[float]
    params: float
    percentile: float                # among the random genomes' means
    above_goal: bool


@dataclass
class SearchPhase:
    """Everything the report and Table I need from one dataset's search-phase evaluation."""

    dataset: str
    method: str
    searched: list[SearchedRow]
    random_mean: float
    random_std: float
    random_n: int
    random_p90: float
    ri: float
    ri_low: float
    ri_high: float
    p_value: float
    above_goal: int
    noise: dict[str, float]
    above_goal_p: float = math.nan      # above_goal_p: permutation test of the count above p90
    above_goal_chance: float = math.nan  # the share of searched genomes above p90 by chance
    ri_detectable: float = math.nan     # detectable_ri at alpha 0.05, power 0.8
    candidates: int = 0                 # distinct genomes a search ranked (mean over the searches)
    ri_oracle: float = math.nan         # oracle_ri: the best any fitness could do at this protocol
    noise_random_genome: float = math.nan   # the random cells' spread without training noise
    size: dict[str, float] = field(default_factory=dict)   # size_adjusted: the gain at equal size
    tau: float = math.nan
    tau_p: float = math.nan
    tau_n: int = 0
    fidelity: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return _json_safe(asdict(self))


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    return obj


def _by_genome(rows: Iterable[Mapping], group: str) -> dict[str, list[Mapping]]:
    out: dict[str, list[Mapping]] = {}
    for r in rows:
        if r["group"] == group:
            out.setdefault(str(r["genome"]), []).append(r)
    return out


def evaluate(rows: Sequence[Mapping], dataset: str = "", method: str = "search",
             n_resamples: int = 9999, seed: int = 0, candidates: int = 0) -> SearchPhase:
    """The search-phase statistics of one dataset from the trainings table (see module
    doc); ``candidates``, the number of distinct genomes a search ranked, sets the
    ceiling :func:`oracle_ri` (not computed when 0)."""
    random = _by_genome(rows, "random")
    if len(random) < 2:
        raise ValueError("search-phase evaluation needs at least two random genomes")
    rand_means = np.array([np.mean([r["accuracy"] for r in rs]) for rs in random.values()])
    rand_params = np.array([np.mean([r["params"] for r in rs]) for rs in random.values()])
    p90 = float(np.percentile(rand_means, GOAL_PERCENTILE))
    searched_rows = []
    for rs in _by_genome(rows, "searched").values():
        accs = [float(r["accuracy"]) for r in rs]
        mean = float(np.mean(accs))
        searched_rows.append(SearchedRow(int(rs[0]["search_seed"]), mean, accs,
                                         float(np.mean([r["params"] for r in rs])),
                                         percentile_rank(mean, rand_means), mean > p90))
    searched_rows.sort(key=lambda s: s.search_seed)
    s_means = [s.accuracy for s in searched_rows]
    ri, low, high = (ri_interval(s_means, rand_means, n_resamples=n_resamples, seed=seed)
                     if s_means else (math.nan, math.nan, math.nan))
    goal_p, chance = above_goal_p(s_means, rand_means, n_resamples=n_resamples, seed=seed)
    every = {**{f"random/{k}": [r["accuracy"] for r in v] for k, v in random.items()},
             **{f"searched/{s.search_seed}": s.accuracies for s in searched_rows}}
    result = SearchPhase(
        dataset=dataset, method=method, searched=searched_rows,
        random_mean=float(rand_means.mean()), random_std=float(rand_means.std(ddof=1)),
        random_n=len(rand_means), random_p90=p90, ri=ri, ri_low=low, ri_high=high,
        p_value=permutation_p(s_means, rand_means, n_resamples=n_resamples, seed=seed),
        above_goal=sum(s.above_goal for s in searched_rows), noise=training_noise(every),
        ri_detectable=detectable_ri(rand_means, len(s_means)), candidates=candidates,
        above_goal_p=goal_p, above_goal_chance=chance,
        size=size_adjusted(s_means, [s.params for s in searched_rows], rand_means, rand_params))
    if candidates:
        per_genome = {k: [r["accuracy"] for r in v] for k, v in random.items()}
        result.noise_random_genome = training_noise(per_genome)["genome"]
        result.ri_oracle = oracle_ri(result.noise_random_genome, candidates, result.random_mean)
    fid = _by_genome(rows, "fidelity")
    if fid:
        points = [{"genome": k, "search_seed": rs[0].get("search_seed"),
                   "fitness": float(rs[0]["fitness"]),
                   "accuracy": float(np.mean([r["accuracy"] for r in rs])),
                   "epochs": rs[0].get("epochs")} for k, rs in sorted(fid.items())]
        result.fidelity = points
        result.tau, result.tau_p = kendall([p["fitness"] for p in points], [p["accuracy"] for p in points])
        result.tau_n = len(points)
    return result


def fidelity_sample(history: Sequence[Mapping], best: int, spread: int) -> list[Mapping]:
    """Individuals of a search's history to re-train: the ``best`` fittest and ``spread``
    more spaced evenly across the fitness range of the rest. An individual's fitness is
    its last one recorded without a failure (what the search knew of it at the end; one
    that failed in a later epoch keeps the fitness it had before)."""
    last: dict[str, Mapping] = {}
    for row in history:
        if row.get("failure") is None:
            last[row["id"]] = row
    last = {k: r for k, r in last.items() if math.isfinite(r["fitness"])}   # NaN would not sort
    ranked = sorted(last.values(), key=lambda r: (-r["fitness"], r["id"]))
    chosen = ranked[:best]
    rest = ranked[best:]
    if spread > 0 and rest:
        positions = np.unique(np.linspace(0, len(rest) - 1, min(spread, len(rest))).round().astype(int))
        chosen += [rest[i] for i in positions]
    return chosen


def scatter(result: SearchPhase, path, title: str | None = None,
            fitness_label: str = "validation top-1, %"):
    """Search fitness against trained test accuracy, one point per re-trained individual
    (``fitness_label``: what the fitness is, ``nasgep.search.fitness.FITNESSES``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 3.8), dpi=120)
    seeds = sorted({p["search_seed"] for p in result.fidelity}, key=str)
    for s in seeds:
        pts = [p for p in result.fidelity if p["search_seed"] == s]
        ax.scatter([p["fitness"] for p in pts], [p["accuracy"] for p in pts], label=f"search seed {s}", s=24)
    ax.set_xlabel(f"search fitness ({fitness_label})")
    ax.set_ylabel("test accuracy after full training (%)")
    tau = "n/a" if math.isnan(result.tau) else f"{result.tau:.2f} (p = {result.tau_p:.3f}, n = {result.tau_n})"
    ax.set_title(literal_text(title or f"{result.dataset}: search fitness vs trained accuracy\nKendall's tau {tau}"),
                 fontsize=9)
    if len(seeds) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path)
    plt.close(fig)
    return path


def design_warning(result: SearchPhase) -> str:
    """One line when the design is too small for its statistics to say much (fewer than
    :data:`MIN_SEARCHES` searches or :data:`MIN_RANDOM_CELLS` random cells), else ''."""
    searches, cells = len(result.searched), result.random_n
    if searches >= MIN_SEARCHES and cells >= MIN_RANDOM_CELLS:
        return ""
    smallest = f"; the permutation test cannot give a p below {1 / math.comb(searches + cells, searches):.3f}" \
        if searches >= 2 else ""      # with one search it gives none
    return (f"warning: {searches} search(es) against {cells} random cells is too few for the p-values, the "
            f"interval and the percentiles below to mean much{smallest}; give at least {MIN_SEARCHES} searches "
            f"(--search) and {MIN_RANDOM_CELLS} random cells (search_phase.random_cells)")


def _summary_lines(result: SearchPhase) -> list[str]:
    warning = design_warning(result)
    lines = [warning] if warning else []
    lines += [f"random cells: {result.random_mean:.2f} ± {result.random_std:.2f} % "
              f"(90th percentile {result.random_p90:.2f} %)",
              f"searched above the random 90th percentile: {result.above_goal} of {len(result.searched)} seeds "
              f"({_fmt(100 * result.above_goal_chance, 0)} % expected by chance, the 90th percentile being "
              f"estimated from {result.random_n} random cells; one-sided permutation p = "
              f"{_fmt(result.above_goal_p, 3)})",
              f"RI = {_pct(result.ri)} (relative improvement of the searched cells' mean accuracy over the random "
              f"cells': 100 x (searched - random) / random; 95 % bootstrap CI {_pct(result.ri_low)} to "
              f"{_pct(result.ri_high)}), one-sided permutation p = {_fmt(result.p_value, 3)}; {_power(result)}"]
    size = result.size or {}
    if not math.isnan(size.get("gain", math.nan)):
        lines.append(f"at equal size: random cells gain {_fmt(size['slope'])} points per 1,000 parameters "
                     f"(p = {_fmt(size['slope_p'], 3)}); the searched cells' sizes alone are worth "
                     f"{_fmt(size['expected'])} points above the random mean, the rest "
                     f"{_fmt(size['gain'])} points (one-sided p = {_fmt(size['p'], 3)}, the line's error included)")
    if math.isnan(result.noise["within"]):
        lines.append("training-seed noise: not measured (each random cell trained with one training seed; two or "
                     "more separate it from the genomes and give the ceiling a perfect fitness could reach)")
    else:
        lines.append(f"training-seed noise over the searched and random genomes: within-genome sd "
                     f"{_fmt(result.noise['within'])} points, between-genome sd {_fmt(result.noise['between'])} "
                     f"points (noise share of variance {_fmt(result.noise['share'])})")
        if result.candidates:
            lines.append(f"ceiling: reporting the truly best of {result.candidates} random-like candidates gives "
                         f"RI {_pct(result.ri_oracle)} on average (a perfect fitness; the random genomes' "
                         f"sd {_fmt(result.noise_random_genome)} points without training noise)")
    if result.tau_n:
        lines.append(f"fidelity: Kendall's tau between search fitness and trained accuracy "
                     f"{_fmt(result.tau)} (p = {_fmt(result.tau_p, 3)}, n = {result.tau_n})")
    return lines


def _power(result: SearchPhase) -> str:
    if not math.isnan(result.ri_detectable):
        return f"this design detects an RI of {_pct(result.ri_detectable)} or more with 80 % power (one-sided, 5 %)"
    if result.random_n >= 2 and math.isclose(result.random_std, 0.0, abs_tol=1e-9):
        return ("this design's power is unknown: every random cell scored the same "
                f"({result.random_mean:.2f} %), so their spread cannot be estimated")
    return "this design's power is unknown"


def _seed_rows(result: SearchPhase) -> list[list[str]]:
    rows = []
    for s in result.searched:
        sd = f" ± {np.std(s.accuracies, ddof=1):.2f}" if len(s.accuracies) > 1 else ""
        rows.append([str(s.search_seed), f"{s.accuracy:.2f}{sd}", str(len(s.accuracies)), f"{s.params:,.0f}",
                     f"{s.percentile:.0f}{' (above p90)' if s.above_goal else ''}"])
    return rows


_HEADERS = ["search seed", "test accuracy (%)", "training seeds", "params", "percentile among random"]


def html(result: SearchPhase) -> str:
    """The same section as :func:`markdown`, as an HTML page (for the workflow report)."""
    from html import escape

    from tabulate import tabulate

    items = "".join(f"<li>{escape(line)}</li>" for line in _summary_lines(result))
    return (f"<html><body><h2>Search vs random: {escape(result.dataset)}</h2>"
            f"<p>Searched cells ({escape(result.method)}) against {result.random_n} random cells trained "
            f"the same way (test accuracy, mean over training seeds).</p>"
            f"{tabulate(_seed_rows(result), headers=_HEADERS, tablefmt='html')}<ul>{items}</ul></body></html>\n")


def markdown(result: SearchPhase) -> str:
    """The "search vs random" section: per-seed percentiles, RI with interval and p, τ."""
    lines = [f"Searched cells ({result.method}) against {result.random_n} random cells trained the same way "
             f"on {result.dataset} (test accuracy, mean over training seeds).", "",
             "| " + " | ".join(_HEADERS) + " |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in _seed_rows(result)]
    lines += [""] + [f"- {line}" for line in _summary_lines(result)]
    return "\n".join(lines) + "\n"


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    """An RI, which is in percent of the random mean (not accuracy points), signed."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.2f} %"
