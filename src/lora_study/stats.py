"""Honest statistics for per-example scores: seeded bootstrap intervals, paired tests,
and comparisons that account for seed-to-seed variation.

Every function takes an explicit seed and draws from `numpy.random.default_rng(seed)`,
so identical inputs give identical numbers on every run and machine (unlike `evaluate`'s
ROUGE, whose bootstrap is unseeded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

ALPHA = 0.05  # significance level of the verdicts


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison:
    """b minus a on the same examples (and seeds)."""

    difference: Interval
    p_value: float
    examples: int
    seeds_a: int
    seeds_b: int
    seed_spread: float  # the larger of the two variants' seed standard deviations (0 with one seed)
    test: str

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "difference": self.difference.to_dict()}


def bootstrap_ci(values: Sequence[float], *, resamples: int, seed: int, confidence: float = 0.95) -> Interval:
    """Percentile bootstrap interval of the mean over examples."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(mean=float(data.mean()), low=float(low), high=float(high), confidence=confidence)


def sign_flip_p_value(differences: Sequence[float], *, resamples: int, seed: int) -> float:
    """Two-sided paired permutation test of mean difference 0: each example's difference
    keeps or flips its sign at random. p = (1 + #{|permuted mean| >= |observed|}) / (1 + R),
    so identical inputs give p = 1 and p is never exactly 0."""
    data = np.asarray(differences, dtype=float)
    observed = abs(data.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(resamples, data.size))
    permuted = np.abs((signs * data).mean(axis=1))
    # A small tolerance so that float noise never makes an exact tie look like a difference.
    extreme = np.count_nonzero(permuted >= observed - 1e-12)
    return float((1 + extreme) / (1 + resamples))


def paired_comparison(
    *, a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], resamples: int, seed: int, confidence: float = 0.95
) -> PairedComparison:
    """Compare variant b with variant a on the same examples.

    `a` and `b` are per-seed lists of per-example scores (one list for a deterministic
    variant such as the base model). With one seed on each side the test is over examples
    only (paired bootstrap interval, sign-flip p-value). With several seeds the interval
    and p-value come from a two-level bootstrap that resamples examples (paired) and, for
    each variant, its seeds, so seed-to-seed variation widens the interval as it should.
    """
    scores_a, scores_b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if scores_a.ndim != 2 or scores_b.ndim != 2 or scores_a.shape[1] != scores_b.shape[1]:
        raise ValueError("a and b must be [seeds][examples] over the same examples")
    examples = scores_a.shape[1]
    per_example = scores_b.mean(axis=0) - scores_a.mean(axis=0)
    spread = max(_seed_std(scores_a), _seed_std(scores_b))
    if scores_a.shape[0] == 1 and scores_b.shape[0] == 1:
        interval = bootstrap_ci(per_example, resamples=resamples, seed=seed, confidence=confidence)
        p_value = sign_flip_p_value(per_example, resamples=resamples, seed=seed + 1)
        test = "paired bootstrap over examples; sign-flip permutation p-value"
    else:
        interval, p_value = _two_level_bootstrap(scores_a, scores_b, resamples=resamples, seed=seed, confidence=confidence)
        test = "two-level bootstrap over examples (paired) and seeds; p = 2 x share of resamples on the other side of 0"
    return PairedComparison(
        difference=interval,
        p_value=p_value,
        examples=examples,
        seeds_a=scores_a.shape[0],
        seeds_b=scores_b.shape[0],
        seed_spread=spread,
        test=test,
    )


def verdict(comparison: PairedComparison, *, alpha: float = ALPHA) -> tuple[bool, str]:
    """Whether the data support a real difference, and why (in plain words)."""
    interval = comparison.difference
    excludes_zero = interval.low > 0 or interval.high < 0
    if not excludes_zero or comparison.p_value >= alpha:
        return False, f"the {interval.confidence:.0%} interval includes 0 (p = {comparison.p_value:.3g})"
    if abs(interval.mean) <= comparison.seed_spread:
        return False, f"the difference is smaller than the seed-to-seed spread ({comparison.seed_spread:.4f})"
    if min(comparison.seeds_a, comparison.seeds_b) < 2 and max(comparison.seeds_a, comparison.seeds_b) > 1:
        return True, "supported over examples, but one side has a single seed"
    if comparison.seeds_a == comparison.seeds_b == 1:
        return True, "supported over examples; one seed, so seed-to-seed variation is not measured"
    return True, f"supported over examples and {min(comparison.seeds_a, comparison.seeds_b)}+ seeds"


def _seed_std(scores: np.ndarray) -> float:
    means = scores.mean(axis=1)
    return float(means.std(ddof=1)) if means.size > 1 else 0.0


def _two_level_bootstrap(
    scores_a: np.ndarray, scores_b: np.ndarray, *, resamples: int, seed: int, confidence: float
) -> tuple[Interval, float]:
    rng = np.random.default_rng(seed)
    examples = scores_a.shape[1]
    differences = np.empty(resamples)
    for index in range(resamples):
        rows = rng.integers(0, examples, size=examples)  # the same examples for both: paired
        seeds_a = rng.integers(0, scores_a.shape[0], size=scores_a.shape[0])
        seeds_b = rng.integers(0, scores_b.shape[0], size=scores_b.shape[0])
        differences[index] = scores_b[np.ix_(seeds_b, rows)].mean() - scores_a[np.ix_(seeds_a, rows)].mean()
    observed = float(scores_b.mean() - scores_a.mean())
    low, high = np.quantile(differences, [(1 - confidence) / 2, (1 + confidence) / 2])
    other_side = np.count_nonzero(differences <= 0) if observed > 0 else np.count_nonzero(differences >= 0)
    p_value = min(1.0, 2 * (1 + other_side) / (1 + resamples))
    return Interval(mean=observed, low=float(low), high=float(high), confidence=confidence), float(p_value)
