"""Statistics for per-example scores at 20 examples: studentised bootstrap intervals, the
Bonett-Price interval for paired 0/1 outcomes, paired tests over examples and over seeds, and
Holm's correction.

Why these methods (docs/STATISTICS.md gives the coverage measured per data shape by
bench/interval_coverage.py): the percentile bootstrap is too narrow at n = 20; the studentised
bootstrap (bootstrap-t), never narrower than Student's t, keeps its level on normal, exponential
and ROUGE-like differences but not on every shape (lognormal, differences that are nearly all
ties, and paired 0/1 outcomes fall short). Paired 0/1 outcomes (accuracy, exact match, one seed a
side) take Bonett and Price's adjusted Wald interval for paired proportions instead. With several
training seeds, resampling seeds inside a bootstrap treats 3 seeds as a population and
is too narrow too; a Welch t-test on the per-seed means, with its few degrees of
freedom, is not, and the verdict takes the more conservative of the two levels.

Every function takes an explicit seed and draws from `numpy.random.default_rng(seed)`,
so identical inputs give identical numbers on every run and machine (unlike `evaluate`'s
ROUGE, whose bootstrap is unseeded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from lora_study.stats.distributions import normal_cdf, normal_quantile, t_quantile, t_two_sided_p
from lora_study.stats.power import Detectable

ALPHA = 0.05  # significance level of the verdicts
# Interval methods, as recorded with each interval; "t floor": never narrower than Student's t.
STUDENTISED = "studentised bootstrap, t floor"
BCA = "expanded BCa, t floor"  # the fallback where bootstrap-t is undefined (near-constant data)
PAIRED_PROPORTIONS = "Bonett-Price adjusted Wald (paired proportions)"


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    confidence: float
    method: str = STUDENTISED

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


@dataclass(frozen=True)
class LevelTest:
    """One level of inference: over examples, or over training seeds."""

    interval: Interval
    p_value: float
    test: str

    def to_dict(self) -> dict[str, object]:
        return {"interval": self.interval.to_dict(), "p_value": self.p_value, "test": self.test}


@dataclass(frozen=True)
class PairedComparison:
    """b minus a on the same examples (and seeds). `difference` and `p_value` are the more
    conservative of the example level and (with several seeds) the seed level."""

    difference: Interval
    p_value: float
    examples: int
    seeds_a: int
    seeds_b: int
    seed_spread: float  # the larger of the two variants' seed standard deviations (0 with one seed)
    test: str
    # What the detectable effect is computed from (power.detectable): the sd of the per-example
    # differences of the seed-averaged scores (0 with one example or none), and each side's sd
    # of its per-seed means (0 with one seed).
    example_sd: float
    seed_std_a: float
    seed_std_b: float
    example_level: LevelTest
    seed_level: LevelTest | None  # None: one seed on each side, seed variation not measured

    def to_dict(self) -> dict[str, object]:
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("example_level", "seed_level")},
            "difference": self.difference.to_dict(),
            "example_level": self.example_level.to_dict(),
            "seed_level": self.seed_level.to_dict() if self.seed_level else None,
        }


def bootstrap_ci(values: Sequence[float], *, resamples: int, seed: int, confidence: float = 0.95) -> Interval:
    """Studentised bootstrap interval of the mean over examples (BCa where it is undefined)."""
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError("no values to bootstrap")
    low, high, studentised = bootstrap_intervals(
        data[None, :], resamples=resamples, rng=np.random.default_rng(seed), confidence=confidence
    )
    method = STUDENTISED if studentised[0] else BCA
    return Interval(
        mean=float(data.mean()), low=float(low[0]), high=float(high[0]), confidence=confidence, method=method
    )


def bootstrap_intervals(
    data: np.ndarray, *, resamples: int, rng: np.random.Generator, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, studentised?) of the mean of each row of `data` (datasets x examples).

    Vectorised over rows so that the coverage simulation runs the very same code. The
    studentised interval inverts the bootstrap distribution of t* = (mean* - mean) / se*:
    [mean - t*_(1-a/2) se, mean - t*_(a/2) se]. It is undefined when too many resamples
    have se* = 0 (nearly all values equal, e.g. two precisions with the same output on 17
    of 20 examples); those rows get the expanded BCa interval instead. Either is widened
    to the Student-t interval where that is wider (the "t floor").
    """
    data = np.asarray(data, dtype=float)
    rows, n = data.shape
    if n < 2:
        raise ValueError("a bootstrap interval needs at least 2 values")
    return intervals_from_resamples(data, rng.integers(0, n, size=(rows, resamples, n)), confidence=confidence)


def intervals_from_resamples(
    data: np.ndarray, indices: np.ndarray, *, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`bootstrap_intervals` on given resamples (rows x resamples x examples indices into
    each row), so a test can pass every possible resample: the exact bootstrap."""
    n, alpha = data.shape[1], 1 - confidence
    samples = np.take_along_axis(data[:, None, :], indices, axis=2)
    means, theta = samples.mean(axis=2), data.mean(axis=1)
    se_star, se = samples.std(axis=2, ddof=1) / math.sqrt(n), data.std(axis=1, ddof=1) / math.sqrt(n)
    constant = np.ptp(data, axis=1) == 0
    se[constant] = 0.0  # not float noise from the mean of equal values
    se_star[se_star < 1e-12 * (1 + np.abs(means))] = 0.0  # likewise for resamples of one repeated value
    shift = means - theta[:, None]
    shift[np.abs(shift) < 1e-12] = 0.0  # float noise: a resample whose mean equals the estimate
    with np.errstate(divide="ignore", invalid="ignore"):
        # A resample without spread: its t is 0 when its mean is the estimate, else +-inf.
        t_star = np.where(se_star > 0, shift / se_star, np.where(shift == 0, 0.0, np.sign(shift) * np.inf))
    t_low, t_high = np.quantile(t_star, [alpha / 2, 1 - alpha / 2], axis=1, method="inverted_cdf")
    low, high = theta - t_high * se, theta - t_low * se
    low[constant] = high[constant] = theta[constant]
    studentised = np.isfinite(low) & np.isfinite(high)
    if not studentised.all():
        fallback = ~studentised
        low[fallback], high[fallback] = _bca(data[fallback], means[fallback], confidence=confidence)
    # Never narrower than Student's t: at 20 examples the bootstrap sees too little of the
    # tails of tied or heavy-tailed data (ROUGE differences with many exact zeros: 93%).
    half = t_quantile(1 - alpha / 2, df=n - 1) * se
    return np.minimum(low, theta - half), np.maximum(high, theta + half), studentised


def acceleration(data: np.ndarray) -> np.ndarray:
    """BCa's acceleration of the mean from the jackknife, per row:
    sum(d^3) / (6 sum(d^2)^1.5) with d = mean of the leave-one-out means - each of them."""
    data = np.atleast_2d(np.asarray(data, dtype=float))
    n = data.shape[1]
    leave_one_out = (data.sum(axis=1, keepdims=True) - data) / (n - 1)
    d = leave_one_out.mean(axis=1, keepdims=True) - leave_one_out
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (d**3).sum(axis=1) / (6 * (d**2).sum(axis=1) ** 1.5)
    return np.nan_to_num(value)


def _bca(data: np.ndarray, means: np.ndarray, *, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """BCa interval from the resampled means, with the normal quantile widened to
    sqrt(n / (n - 1)) t_(n-1) (Hesterberg's expansion): plain BCa inherits the plug-in
    variance's (n - 1) / n and covers ~93% at n = 20."""
    n, resamples = data.shape[1], means.shape[1]
    theta = data.mean(axis=1)
    below = (means < theta[:, None]).sum(axis=1) + 0.5 * (means == theta[:, None]).sum(axis=1)
    z0 = normal_quantile(np.clip(below / resamples, 1 / resamples, 1 - 1 / resamples))
    a = acceleration(data)
    z = math.sqrt(n / (n - 1)) * t_quantile(1 - (1 - confidence) / 2, df=n - 1)
    bounds = []
    for z_alpha in (-z, z):
        level = normal_cdf(z0 + (z0 + z_alpha) / (1 - a * (z0 + z_alpha)))
        bounds.append(np.array([np.quantile(row, q) for row, q in zip(means, level, strict=True)]))
    return bounds[0], bounds[1]


def paired_proportion_intervals(a: np.ndarray, b: np.ndarray, *, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of p_b - p_a for each row of paired 0/1 outcomes `a`, `b` (datasets x examples):
    Bonett and Price's adjusted Wald interval (J. Educ. Behav. Stat. 37, 2012). With n12 examples
    only a gets right and n21 only b: p12 = (n12 + 1) / (n + 2), p21 = (n21 + 1) / (n + 2),
    interval p21 - p12 -+ z sqrt((p12 + p21 - (p21 - p12)^2) / (n + 2)), cut to [-1, 1].

    Why not the bootstrap of the differences: on 0/1 outcomes whose disagreements mostly go one
    way (one model right where the other is wrong, rarely the reverse) the studentised bootstrap
    covers ~91% at 20 examples; this one keeps near its level across the range of disagreement
    (bench/interval_coverage.py measures both, exactly over a grid). Vectorised over rows so that
    the coverage computation runs this very code."""
    a, b = np.atleast_2d(np.asarray(a, dtype=float)), np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape != b.shape or a.shape[1] == 0:
        raise ValueError("a and b must be paired outcomes on the same examples")
    if not (np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()):
        raise ValueError("the paired-proportion interval is for 0/1 outcomes")
    n = a.shape[1]
    only_a, only_b = ((a == 1) & (b == 0)).sum(axis=1), ((a == 0) & (b == 1)).sum(axis=1)
    p12, p21 = (only_a + 1) / (n + 2), (only_b + 1) / (n + 2)
    centre = p21 - p12
    half = float(normal_quantile(1 - (1 - confidence) / 2)) * np.sqrt((p12 + p21 - centre**2) / (n + 2))
    return np.maximum(-1.0, centre - half), np.minimum(1.0, centre + half)


def paired_proportion_interval(*, a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Interval:
    """`paired_proportion_intervals` of one pair of outcome lists; the estimate is the observed
    difference of the shares (the interval is centred on an adjusted one)."""
    low, high = paired_proportion_intervals(np.asarray([a]), np.asarray([b]), confidence=confidence)
    return Interval(
        mean=float(np.mean(b) - np.mean(a)),
        low=float(low[0]),
        high=float(high[0]),
        confidence=confidence,
        method=PAIRED_PROPORTIONS,
    )


def sign_flip_p_value(differences: Sequence[float], *, resamples: int, seed: int) -> float:
    """Two-sided paired permutation test of mean difference 0: each example's difference
    keeps or flips its sign at random. p = (1 + #{|permuted mean| >= |observed|}) / (1 + R),
    so identical inputs give p = 1 and p is never exactly 0. Exact under the null that the
    two variants are exchangeable on each example, at any number of examples."""
    data = np.asarray(differences, dtype=float)
    observed = abs(data.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(resamples, data.size))
    permuted = np.abs((signs * data).mean(axis=1))
    # A small tolerance so that float noise never makes an exact tie look like a difference.
    extreme = np.count_nonzero(permuted >= observed - 1e-12)
    return float((1 + extreme) / (1 + resamples))


def seed_level_test(*, means_a: Sequence[float], means_b: Sequence[float], confidence: float = 0.95) -> LevelTest:
    """Welch's t on per-seed means (b - a): the seeds are the replicates, so the degrees of
    freedom are few (k - 1 for one-sided replication) and the interval wide, as it should
    be with 3 seeds. A side with one seed (the base model, or an untrained-seed FFT)
    contributes no variance: its seed variation is not measured."""
    a, b = np.asarray(means_a, dtype=float), np.asarray(means_b, dtype=float)
    # (variance of the side's mean, its degrees of freedom) for each side with several seeds
    parts = [(x.var(ddof=1) / x.size, x.size - 1) for x in (a, b) if x.size > 1]
    if not parts:
        raise ValueError("the seed level needs several seeds on at least one side")
    difference = float(b.mean() - a.mean())
    variance = sum(v for v, _ in parts)
    se = math.sqrt(variance)
    # Welch-Satterthwaite degrees of freedom (k - 1 when only one side varies).
    df = variance**2 / sum(v**2 / k for v, k in parts) if se > 0 else float(sum(k for _, k in parts))
    if se == 0:
        p_value, half = (1.0 if difference == 0 else 0.0), 0.0
    else:
        p_value, half = float(t_two_sided_p(difference / se, df=df)), t_quantile(1 - (1 - confidence) / 2, df=df) * se
    interval = Interval(
        mean=difference, low=difference - half, high=difference + half, confidence=confidence, method="Welch t"
    )
    return LevelTest(interval=interval, p_value=p_value, test=f"Welch t on per-seed means ({df:.1f} df)")


def paired_comparison(
    *,
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    resamples: int,
    seed: int,
    confidence: float = 0.95,
    binary: bool = False,
) -> PairedComparison:
    """Compare variant b with variant a on the same examples.

    `a` and `b` are per-seed lists of per-example scores (one list for a deterministic
    variant such as the base model). Example level: the per-example differences of the
    seed-averaged scores, studentised bootstrap interval and sign-flip p-value; `binary` (a 0/1
    metric: accuracy, exact match) with one seed a side: the paired-proportion interval instead
    (with several seeds the seed-averaged outcomes are no longer 0/1, and the bootstrap stays).
    Seed level (several seeds on a side): Welch t on per-seed means. The result carries both
    and, as its headline, the envelope of the two intervals and the larger p.
    """
    scores_a, scores_b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if scores_a.ndim != 2 or scores_b.ndim != 2 or scores_a.shape[1] != scores_b.shape[1]:
        raise ValueError("a and b must be [seeds][examples] over the same examples")
    per_example = scores_b.mean(axis=0) - scores_a.mean(axis=0)
    if binary and scores_a.shape[0] == scores_b.shape[0] == 1:
        interval = paired_proportion_interval(a=scores_a[0], b=scores_b[0], confidence=confidence)
    else:
        interval = bootstrap_ci(per_example, resamples=resamples, seed=seed, confidence=confidence)
    name = "Bonett-Price paired-proportion" if interval.method == PAIRED_PROPORTIONS else "studentised bootstrap"
    example_level = LevelTest(
        interval=interval,
        p_value=sign_flip_p_value(per_example, resamples=resamples, seed=seed + 1),
        test=f"paired over examples: {name} interval, sign-flip permutation p",
    )
    seed_level = None
    if max(scores_a.shape[0], scores_b.shape[0]) > 1:
        seed_level = seed_level_test(
            means_a=scores_a.mean(axis=1), means_b=scores_b.mean(axis=1), confidence=confidence
        )
    difference, p_value, test = example_level.interval, example_level.p_value, example_level.test
    if seed_level is not None:
        # The more conservative of the two: the envelope of both intervals, the larger p.
        difference = Interval(
            mean=difference.mean,
            low=min(difference.low, seed_level.interval.low),
            high=max(difference.high, seed_level.interval.high),
            confidence=confidence,
            method=f"envelope of {difference.method} (examples) and Welch t (seeds)",
        )
        p_value = max(p_value, seed_level.p_value)
        test = f"{test}; {seed_level.test}; the larger p and the wider interval"
    return PairedComparison(
        difference=difference,
        p_value=p_value,
        examples=scores_a.shape[1],
        seeds_a=scores_a.shape[0],
        seeds_b=scores_b.shape[0],
        seed_spread=max(_seed_std(scores_a), _seed_std(scores_b)),
        test=test,
        example_sd=_spread(per_example),
        seed_std_a=_seed_std(scores_a),
        seed_std_b=_seed_std(scores_b),
        example_level=example_level,
        seed_level=seed_level,
    )


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the k-th smallest raw p is
    multiplied by (m - k + 1), then made monotone and capped at 1. Rejecting where the
    adjusted p < alpha keeps the chance of any false rejection in the family <= alpha."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return [float(x) for x in adjusted]


def verdict(
    comparison: PairedComparison,
    *,
    p_adjusted: float,
    holm: bool,
    family: str,
    alpha: float = ALPHA,
    detectable: Detectable | None = None,
) -> tuple[bool, str]:
    """Whether the data support a real difference, and why (in plain words, naming the p
    the decision used). Supported: the decision's p (Holm-adjusted in its family, or the raw
    p of a lone primary question) is below alpha and the interval excludes 0. A "not
    supported" ends with what the run could have detected (`detectable`'s sentence), so that
    it is never read as "no difference"."""
    supported, reason = _verdict(comparison, p_adjusted=p_adjusted, holm=holm, family=family, alpha=alpha)
    if supported or detectable is None:
        return supported, reason
    return supported, f"{reason}; {detectable.text}"


def _verdict(
    comparison: PairedComparison, *, p_adjusted: float, holm: bool, family: str, alpha: float
) -> tuple[bool, str]:
    interval = comparison.difference
    used = (
        f"Holm-adjusted p = {p_adjusted:.3g} (raw {comparison.p_value:.3g}; {family})"
        if holm
        else f"p = {p_adjusted:.3g} ({family}, unadjusted)"
    )
    if p_adjusted >= alpha:
        return False, f"{used} is not below {alpha:g}"
    if not (interval.low > 0 or interval.high < 0):
        return False, f"the {interval.confidence:.0%} interval includes 0, although {used}"
    if comparison.seed_level is None:
        return True, f"{used} < {alpha:g}; one seed, so seed-to-seed variation is not measured"
    if min(comparison.seeds_a, comparison.seeds_b) < 2:
        return True, f"{used} < {alpha:g} over examples and seeds, but one side has a single seed"
    return True, f"{used} < {alpha:g} over examples and over {min(comparison.seeds_a, comparison.seeds_b)}+ seeds"


def _spread(values: np.ndarray) -> float:
    """The sample standard deviation, 0 for fewer than 2 values or float noise around one value
    (b = a + 0.01 gives differences that differ in the 17th digit)."""
    if values.size < 2:
        return 0.0
    sd = float(values.std(ddof=1))
    return sd if sd > 1e-12 * (1 + abs(float(values.mean()))) else 0.0


def _seed_std(scores: np.ndarray) -> float:
    means = scores.mean(axis=1)
    return float(means.std(ddof=1)) if means.size > 1 else 0.0


def mcnemar_exact(*, correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, int | float | str]:
    """McNemar's exact test of two models' accuracy on the same examples.

    Only discordant examples (one model right, the other wrong) carry information about
    which is better; under the null each is equally likely to favour either model, so
    the count favouring a is Binomial(n, 1/2). Two-sided p = min(1, 2 P(X <= min count)).
    The tail is summed in integers (binomial coefficients) and divided by 2^n once, so
    nothing underflows on the way, even for thousands of discordant pairs; only a p
    below ~1e-308 rounds to 0.0 at the final division. No discordant pair gives p = 1.
    """
    if len(correct_a) != len(correct_b):
        raise ValueError(f"{len(correct_a)} results for a but {len(correct_b)} for b")
    a_only = sum(bool(a) and not bool(b) for a, b in zip(correct_a, correct_b, strict=True))
    b_only = sum(bool(b) and not bool(a) for a, b in zip(correct_a, correct_b, strict=True))
    n, smaller = a_only + b_only, min(a_only, b_only)
    # Sum of C(n, k) for k <= smaller, each coefficient from the previous one (exact integers).
    tail, coefficient = 0, 1
    for k in range(smaller + 1):
        tail += coefficient
        coefficient = coefficient * (n - k) // (k + 1)
    p_value = min(2 * tail, 2**n) / 2**n
    return {
        "a_only_correct": a_only,
        "b_only_correct": b_only,
        "discordant": n,
        "p_value": float(p_value),
        "test": "McNemar exact (two-sided binomial on discordant pairs)",
    }


def wilson_interval(outcomes: Sequence[float], *, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of a proportion (per-example outcomes 0 or 1, e.g. accuracy).
    Bootstrap intervals collapse to a point when every outcome is the same (4 of 4 right gives
    [1, 1]); Wilson's stays inside [0, 1], is never empty, and keeps close to its level at
    small n, where the normal-approximation interval does not."""
    data = np.asarray(outcomes, dtype=float)
    if data.size == 0:
        raise ValueError("no outcomes")
    if not np.all((data == 0) | (data == 1)):
        raise ValueError("the Wilson interval is for 0/1 outcomes")
    n, share = data.size, float(data.mean())
    z = float(normal_quantile(1 - (1 - confidence) / 2))
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return Interval(
        mean=share,
        low=max(0.0, centre - half),
        high=min(1.0, centre + half),
        confidence=confidence,
        method="Wilson score",
    )


def within(interval: Interval, *, low: float, high: float) -> Interval:
    """`interval` cut to the values the quantity can take ([0, 1] for a mean of scores in [0, 1],
    [-1, 1] for a difference of two): the true value lies inside, so cutting keeps the coverage,
    and an accuracy interval reaching 1.2 would be a wrong number in the report."""
    if interval.low >= low and interval.high <= high:
        return interval
    return Interval(
        mean=interval.mean,
        low=max(low, interval.low),
        high=min(high, interval.high),
        confidence=interval.confidence,
        method=f"{interval.method}, cut to [{low:g}, {high:g}]",
    )
