"""Bootstrap intervals, paired tests and verdicts on known data."""

from __future__ import annotations

import numpy as np
import pytest

from lora_study.stats import bootstrap_ci, paired_comparison, sign_flip_p_value, verdict


def scores(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 0.5, size=n)


def test_interval_contains_the_mean_and_narrows_with_more_examples() -> None:
    widths = []
    for n in (10, 100, 1000):
        interval = bootstrap_ci(scores(n), resamples=2000, seed=1)
        assert interval.low <= interval.mean <= interval.high
        assert interval.mean == pytest.approx(scores(n).mean())
        widths.append(interval.high - interval.low)
    assert widths[0] > widths[1] > widths[2]
    # Standard error shrinks as 1/sqrt(n): ten times the examples, about a third of the width.
    assert widths[1] / widths[2] == pytest.approx(np.sqrt(10), rel=0.25)


def test_bootstrap_is_identical_across_runs_with_one_seed_and_differs_with_another() -> None:
    values = scores(50)
    assert bootstrap_ci(values, resamples=1000, seed=7) == bootstrap_ci(values, resamples=1000, seed=7)
    assert bootstrap_ci(values, resamples=1000, seed=7) != bootstrap_ci(values, resamples=1000, seed=8)


def test_constant_values_give_a_zero_width_interval() -> None:
    interval = bootstrap_ci([0.3] * 20, resamples=500, seed=0)
    assert interval.low == interval.high == pytest.approx(0.3)


def test_identical_predictions_give_difference_zero_and_p_one() -> None:
    values = scores(30)
    comparison = paired_comparison(a=[values], b=[values], resamples=2000, seed=0)
    assert comparison.difference.mean == 0 and comparison.difference.low == 0 and comparison.difference.high == 0
    assert comparison.p_value == 1.0
    supported, reason = verdict(comparison)
    assert not supported and "includes 0" in reason


def test_planted_large_improvement_gives_a_small_p() -> None:
    base = scores(40)
    better = base + 0.1 + np.random.default_rng(3).normal(0, 0.02, size=40)
    comparison = paired_comparison(a=[base], b=[better], resamples=5000, seed=0)
    assert comparison.p_value < 0.001
    assert 0.09 < comparison.difference.low < comparison.difference.mean < comparison.difference.high < 0.11
    assert verdict(comparison)[0]


def test_noise_gives_a_large_p() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.uniform(0, 1, 40), rng.uniform(0, 1, 40)
    p_values = [paired_comparison(a=[a], b=[b], resamples=2000, seed=s).p_value for s in range(3)]
    assert all(p > 0.05 for p in p_values)


def test_sign_flip_p_value_matches_the_exact_enumeration() -> None:
    """With 4 examples there are 16 sign patterns; the Monte-Carlo p converges to the exact one."""
    differences = np.array([0.3, 0.2, 0.25, -0.05])
    patterns = np.array(np.meshgrid(*[[-1, 1]] * 4)).reshape(4, -1).T
    exact = np.mean(np.abs((patterns * differences).mean(axis=1)) >= abs(differences.mean()) - 1e-12)
    assert sign_flip_p_value(differences, resamples=50_000, seed=0) == pytest.approx(exact, abs=0.01)


def test_seed_spread_larger_than_the_difference_is_not_supported() -> None:
    """Two variants whose seeds scatter more than they differ: not a real difference."""
    examples = scores(60)
    a = [examples + shift for shift in (-0.05, 0.0, 0.05)]
    b = [examples + 0.01 + shift for shift in (-0.05, 0.0, 0.05)]
    comparison = paired_comparison(a=a, b=b, resamples=2000, seed=0)
    assert comparison.seeds_a == comparison.seeds_b == 3
    assert comparison.seed_spread == pytest.approx(0.05)
    assert comparison.difference.mean == pytest.approx(0.01)
    # Examples alone would call 0.01 on identical examples certain; the seeds do not.
    assert not verdict(comparison)[0]


def test_consistent_difference_across_seeds_is_supported() -> None:
    examples = scores(60)
    a = [examples + shift for shift in (-0.002, 0.0, 0.002)]
    b = [examples + 0.05 + shift for shift in (-0.002, 0.0, 0.002)]
    comparison = paired_comparison(a=a, b=b, resamples=2000, seed=0)
    assert comparison.p_value < 0.01 and comparison.difference.low > 0.04
    supported, reason = verdict(comparison)
    assert supported and "seeds" in reason


def test_mismatched_examples_are_rejected() -> None:
    with pytest.raises(ValueError, match="same examples"):
        paired_comparison(a=[[0.1, 0.2]], b=[[0.1, 0.2, 0.3]], resamples=10, seed=0)
