"""The hand-written statistics against trusted libraries, on many inputs and the edge cases.

The workflow computes its statistics with numpy and the standard library only (the report's
environment has no scipy); here each one is held to scipy or statsmodels, which only the tests
install (requirements.txt). Tolerances are relative unless said otherwise; where one is looser
than 1e-9 or a point is left out, the comment beside it says why.

Not here: the studentised bootstrap and its expanded-BCa fallback (scipy has neither; their
coverage is measured, tests/test_stats.py and bench/interval_coverage.py), and Bonett and
Price's paired-proportion interval (in neither library; checked by hand in tests/test_stats.py).
"""

from __future__ import annotations

import ast
import math
import re
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from conftest import REPO
from lora_study.stats.distributions import normal_cdf, normal_quantile, t_cdf, t_quantile, t_two_sided_p
from lora_study.stats.inference import holm_adjust, mcnemar_exact, seed_level_test, sign_flip_p_value, wilson_interval

RELATIVE = 1e-9  # every pytest.approx below names its abs too: the default 1e-12 would pass 0 for 1e-156

# Degrees of freedom from Cauchy (1) to effectively normal, both sides of the switch from the
# continued fraction to Hill's series at 5000, and non-integer ones (Welch's are).
DEGREES = [
    0.5,
    1,
    1.5,
    2,
    3,
    4.7,
    7,
    19,
    30,
    99.5,
    1e3,
    2e3,
    4999,
    5e3,
    5001,
    1e4,
    3e4,
    1e5,
    1e6,
    1e7,
    1e10,
    1e15,
    1e300,
]
POINTS = [0.0, 1e-12, 1e-8, 1e-4, 0.01, 0.3, 1.0, 1.5, 1.7, 2.0, 3.0, 5.0, 10.0, 37.5, 100.0, 1e4, 1e8, 1e150]


def t_points() -> list[tuple[float, float]]:
    """(x, df): the grid, both signs, and 400 seeded random pairs (df log-uniform in [0.3, 1e12])."""
    rng = np.random.default_rng(0)
    grid = [(sign * x, df) for df in DEGREES for x in POINTS for sign in (1, -1)]
    random = zip(
        rng.standard_t(3, 400) * rng.choice([0.1, 1, 10], 400), np.exp(rng.uniform(-1.2, 27.6, 400)), strict=True
    )
    return grid + [(float(x), float(df)) for x, df in random]


def scipy_t_is_off(x: float, df: float) -> bool:
    """scipy 1.17's t at df = 1 (its Cauchy branch) is off by up to 3e-9 relative for |x| below
    1e-6: mpmath and the closed form 1/2 + atan(x)/pi agree with ours there (checked below)."""
    return df == 1 and 0 < abs(x) < 1e-6


def test_t_cdf_and_two_sided_p_equal_scipy() -> None:
    for x, df in t_points():
        if scipy_t_is_off(x, df):
            continue
        assert t_cdf(x, df=df) == pytest.approx(stats.t.cdf(x, df), rel=RELATIVE, abs=1e-300), (x, df)
        # The two-sided p from the tail itself: relative accuracy down to the smallest p.
        expected = min(1.0, 2 * stats.t.sf(abs(x), df))
        assert t_two_sided_p(x, df=df) == pytest.approx(expected, rel=RELATIVE, abs=1e-300), (x, df)


def test_t_at_one_degree_of_freedom_is_the_cauchy_closed_form() -> None:
    """Where scipy is left out above, P(T <= x) = 1/2 + atan(x)/pi at df = 1: near 0, and
    beyond x^2 = 1e308, where scipy's cdf is 0 (ours from log(x), not from x^2)."""
    for x in (1e-12, 1e-8, -1e-8, 1e-7):
        assert t_cdf(x, df=1) == pytest.approx(0.5 + math.atan(x) / math.pi, rel=1e-15, abs=0)
        assert t_two_sided_p(x, df=1) == pytest.approx(1 - 2 * math.atan(abs(x)) / math.pi, rel=1e-15, abs=0)
    for x in (1e155, 1e200, 1e300):
        assert t_cdf(-x, df=1) == pytest.approx(math.atan(1 / x) / math.pi, rel=1e-12, abs=0)


PROBABILITIES = [1e-100, 1e-12, 1e-6, 0.001, 0.025, 0.05, 0.3, 0.45, 0.5, 0.55, 0.7, 0.95, 0.975, 0.999, 1 - 1e-9]


def test_t_quantile_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    cases = [(p, df) for df in DEGREES for p in PROBABILITIES]
    cases += [
        (float(p), float(df)) for p, df in zip(rng.uniform(0, 1, 200), np.exp(rng.uniform(-1, 25, 200)), strict=True)
    ]
    for p, df in cases:
        if df < 1 and p < 1e-12:
            continue  # the quantile is beyond 1e150, where scipy's ppf stops (it returns 4.7e153 for ~1e199)
        assert t_quantile(p, df=df) == pytest.approx(stats.t.ppf(p, df), rel=RELATIVE, abs=1e-300), (p, df)


def test_normal_cdf_and_quantile_equal_scipy() -> None:
    """To 1e-12: both are the standard library's (erfc, Wichura's quantile) to a few ulps."""
    x = np.concatenate([np.linspace(-37, 38, 1501), [-1e-10, 0.0, 1e-10]])  # below -37.5 scipy's cdf is 0
    np.testing.assert_allclose(normal_cdf(x), stats.norm.cdf(x), rtol=1e-12, atol=0)
    p = np.concatenate([np.logspace(-300, -1, 300), np.linspace(0.01, 0.99, 99), 1 - np.logspace(-16, -2, 50)])
    np.testing.assert_allclose(normal_quantile(p), stats.norm.ppf(p), rtol=1e-12, atol=0)


def test_holm_equals_statsmodels() -> None:
    """The same operations in another order: equal to rounding (1e-14)."""
    rng = np.random.default_rng(2)
    families = [[0.5], [0.0], [1.0], [0.01, 0.01, 0.01], [0.04, 0.03, 0.02, 0.01], [1e-300, 0.5, 1.0, 0.2]]
    for size in (2, 3, 5, 8, 20, 50):
        families.append(list(rng.uniform(0, 1, size)))
        families.append(list(rng.uniform(0, 0.1, size)))
        families.append(list(np.round(rng.uniform(0, 0.2, size), 2)))  # ties
    for p_values in families:
        expected = multipletests(p_values, method="holm")[1]
        np.testing.assert_allclose(holm_adjust(p_values), expected, rtol=1e-14, atol=0, err_msg=str(p_values))


def outcomes(a_only: int, b_only: int, both: int, neither: int) -> tuple[list[bool], list[bool]]:
    correct_a = [True] * a_only + [False] * b_only + [True] * both + [False] * neither
    correct_b = [False] * a_only + [True] * b_only + [True] * both + [False] * neither
    return correct_a, correct_b


def test_mcnemar_exact_equals_scipy_binomtest_and_statsmodels() -> None:
    """Two-sided binomial on the discordant pairs: scipy's binomtest (its "minlike" two-sided p
    equals twice the smaller tail at p = 1/2) and statsmodels' mcnemar(exact=True), to 1e-9
    (theirs go through the binomial cdf in floating point, ours sums exact integers)."""
    rng = np.random.default_rng(3)
    counts = [
        (0, 0),
        (1, 0),
        (0, 1),
        (1, 1),
        (2, 0),
        (5, 5),
        (6, 5),
        (0, 12),
        (3, 17),
        (40, 60),
        (700, 800),
        (30, 2000),
    ]
    counts += [tuple(int(c) for c in rng.integers(0, 80, 2)) for _ in range(40)]
    for a_only, b_only in counts:
        result = mcnemar_exact(**dict(zip(("correct_a", "correct_b"), outcomes(a_only, b_only, 7, 3), strict=True)))
        assert (result["a_only_correct"], result["b_only_correct"]) == (a_only, b_only)
        n = a_only + b_only
        binom = stats.binomtest(min(a_only, b_only), n, 0.5).pvalue if n else 1.0
        table = [[7, a_only], [b_only, 3]]
        assert result["p_value"] == pytest.approx(binom, rel=RELATIVE, abs=1e-300), (a_only, b_only)
        assert result["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue, rel=RELATIVE, abs=1e-300)


def test_wilson_interval_equals_statsmodels() -> None:
    """Every count of every n up to 60, and some larger, at four levels: to 1e-12 absolute
    (ours is cut to [0, 1] where theirs may stray by a rounding error)."""
    cases = [(k, n) for n in range(1, 61) for k in range(n + 1)] + [(0, 1000), (1, 1000), (517, 1000), (1000, 1000)]
    for k, n in cases:
        for confidence in (0.8, 0.9, 0.95, 0.99):
            interval = wilson_interval([1] * k + [0] * (n - k), confidence=confidence)
            low, high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
            assert interval.low == pytest.approx(low, abs=1e-12) and interval.high == pytest.approx(high, abs=1e-12)
            assert interval.mean == k / n


def welch_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(4)
    cases = [
        (np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])),
        (np.array([0.2, 0.3]), np.array([0.25, 0.31])),  # n = 2 a side
        (np.array([0.2, 0.2, 0.2]), np.array([0.25, 0.26, 0.30])),  # one side without spread
        (np.array([0.1, 0.2, 0.3]), np.array([0.3, 0.2, 0.1])),  # equal means: t = 0, p = 1
        (rng.normal(0, 1, 20_000), rng.normal(0.01, 2, 15_000)),  # ~24,000 df: Hill's branch
    ]
    for size_a, size_b in ((2, 5), (3, 3), (5, 2), (10, 7), (4, 30)):
        cases.append((rng.normal(0.3, 0.05, size_a), rng.normal(0.33, 0.02, size_b)))
        cases.append((rng.exponential(0.1, size_a), rng.exponential(0.2, size_b)))
    return cases


def test_seed_level_welch_equals_scipy_ttest_ind() -> None:
    """p, the interval and the degrees of freedom of Welch's t on per-seed means (b - a)."""
    for a, b in welch_cases():
        ours = seed_level_test(means_a=a, means_b=b, confidence=0.95)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # t = 0 / 0-variance side: scipy warns, still right
            theirs = stats.ttest_ind(b, a, equal_var=False)
        low, high = theirs.confidence_interval(confidence_level=0.95)
        assert ours.p_value == pytest.approx(theirs.pvalue, rel=RELATIVE, abs=0), (a, b)
        assert ours.interval.mean == pytest.approx(b.mean() - a.mean(), rel=1e-12, abs=1e-15)
        assert (ours.interval.low, ours.interval.high) == pytest.approx((low, high), rel=RELATIVE, abs=0)
        assert re.search(r"\(([\d.]+) df\)", ours.test).group(1) == f"{theirs.df:.1f}"


def test_seed_level_with_one_seed_a_side_equals_scipy_one_sample_t() -> None:
    """A side with one seed (the base model) adds no variance: a one-sample t of the other
    side's seeds against its value, k - 1 df."""
    rng = np.random.default_rng(5)
    for size in (2, 3, 5, 12):
        single, several = rng.uniform(0.1, 0.3), rng.normal(0.25, 0.02, size)
        for means_a, means_b, sign in (([single], several, 1), (several, [single], -1)):
            ours = seed_level_test(means_a=means_a, means_b=means_b, confidence=0.9)
            theirs = stats.ttest_1samp(several, popmean=single)
            low, high = (sign * (bound - single) for bound in theirs.confidence_interval(confidence_level=0.9))
            assert ours.p_value == pytest.approx(theirs.pvalue, rel=RELATIVE, abs=0)
            assert sorted((ours.interval.low, ours.interval.high)) == pytest.approx(
                sorted((low, high)), rel=RELATIVE, abs=0
            )
            assert f"({size - 1:.1f} df)" in ours.test


def mean_difference(x: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(x, axis=axis)


def exact_sign_flip(differences: np.ndarray) -> float:
    """scipy's exact permutation test: one sample, permutation_type="samples" flips each sign,
    and with 2^n <= n_resamples it enumerates every pattern."""
    return stats.permutation_test(
        (differences,), mean_difference, permutation_type="samples", alternative="two-sided", n_resamples=np.inf
    ).pvalue


RESAMPLES = 20_000


def within_binomial_noise(ours: float, exact: float, *, resamples: int = RESAMPLES) -> bool:
    """Ours is (1 + X) / (1 + R) with X ~ Binomial(R, exact): its mean is within 1 / (1 + R) of
    exact and its sd is sqrt(exact (1 - exact) / R). 5 sd: seeded draws, so a failure is a
    wrong definition, not chance (a false alarm in any of these ~50 checks: < 3e-5)."""
    return abs(ours - exact) <= 1 / (1 + resamples) + 5 * math.sqrt(exact * (1 - exact) / resamples)


def sign_flip_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(6)
    cases = [
        np.array([0.3, 0.1]),  # n = 2: four patterns, exact p = 1/2
        np.array([0.3, -0.1]),  # n = 2: every pattern as far from 0, exact p = 1
        np.array([0.3, 0.3]),  # n = 2, tied: exact p = 1/2 (two patterns reach |0.3|)
        np.array([0.2, 0.1, 0.4]),  # n = 3: exact p = 1/4
        np.array([0.3, 0.2, 0.25, -0.05]),
        np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0]),  # ties and a zero: exact p = 4/64
        np.array([1.0, -1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]),  # differences of 0/1 outcomes
        np.round(rng.normal(0.05, 0.1, 10), 2),  # ROUGE-like ties
    ]
    for size in (5, 8, 11, 12):
        cases.append(rng.normal(0.1, 0.2, size))
        cases.append(rng.exponential(0.1, size) - 0.05)
    return cases


def test_sign_flip_p_is_scipy_exact_permutation_p_within_monte_carlo_noise() -> None:
    """sign_flip_p_value draws its sign patterns (there is no exact mode); scipy enumerates
    all 2^n. The small n make a wrong convention visible (strict > instead of >=, one tail):
    at n = 2 or 3 either moves p by 1/4 or more, 50 times the tolerance."""
    for seed, differences in enumerate(sign_flip_cases()):
        exact = exact_sign_flip(differences)
        ours = sign_flip_p_value(differences, resamples=RESAMPLES, seed=seed)
        assert within_binomial_noise(ours, exact), (differences, ours, exact)
    assert exact_sign_flip(np.array([0.3, 0.1])) == 0.5 and exact_sign_flip(np.array([0.2, 0.1, 0.4])) == 0.25


def test_sign_flip_p_of_no_difference_is_one_as_scipy_and_never_below_one_over_r_plus_one() -> None:
    for size in (2, 5, 20):
        zeros = np.zeros(size)
        assert sign_flip_p_value(zeros, resamples=500, seed=0) == 1.0
        assert exact_sign_flip(zeros[:12]) == 1.0
    # The +1 of p = (1 + #extreme) / (1 + R): 30 equal differences leave 2 extreme patterns of
    # 2^30, which 1000 draws all but surely miss, so p is 1 / 1001 (exact: 2^-29), never 0.
    assert sign_flip_p_value(np.ones(30), resamples=1000, seed=0) == 1 / 1001


def test_sign_flip_p_at_many_examples_agrees_with_scipy_monte_carlo() -> None:
    """Beyond enumeration (2^40 patterns): both draw; the tolerance is 5 sd of the difference
    of two independent binomial estimates, plus each one's +1 bias."""
    rng = np.random.default_rng(7)
    for differences in (rng.normal(0.02, 0.1, 40), rng.normal(0.0, 0.1, 60), np.round(rng.normal(0.03, 0.1, 40), 1)):
        ours = sign_flip_p_value(differences, resamples=RESAMPLES, seed=1)
        theirs = stats.permutation_test(
            (differences,),
            mean_difference,
            permutation_type="samples",
            alternative="two-sided",
            n_resamples=50_000,
            rng=np.random.default_rng(8),
        ).pvalue
        p = (ours + theirs) / 2
        bound = 2 / (1 + RESAMPLES) + 5 * math.sqrt(p * (1 - p) * (1 / RESAMPLES + 1 / 50_000))
        assert abs(ours - theirs) <= bound, (ours, theirs)


def test_no_workflow_code_imports_the_reference_libraries() -> None:
    """scipy and statsmodels are test dependencies: no job environment has them."""
    sources = [*(REPO / "src").rglob("*.py"), *(REPO / "scripts").rglob("*.py"), *(REPO / "bench").rglob("*.py")]
    assert sources
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(name.split(".")[0] in ("scipy", "statsmodels") for name in names), path
