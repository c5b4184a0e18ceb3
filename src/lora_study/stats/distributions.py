"""Normal and Student-t distribution functions, so the statistics need numpy only.

scipy is not a dependency of the report environment; these few functions are all the
statistics need. The normal comes from the standard library (`statistics.NormalDist`);
the t distribution from the regularised incomplete beta function, evaluated by its
continued fraction (Numerical Recipes, 3rd ed., 6.4), accurate to ~1e-12.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
_normal_cdf = np.vectorize(_NORMAL.cdf, otypes=[float])
_normal_quantile = np.vectorize(_NORMAL.inv_cdf, otypes=[float])


def normal_cdf(x: np.ndarray | float) -> np.ndarray:
    """P(Z <= x) for a standard normal Z, elementwise."""
    return _normal_cdf(np.asarray(x, dtype=float))


def normal_quantile(p: np.ndarray | float) -> np.ndarray:
    """The x with P(Z <= x) = p (0 < p < 1), elementwise."""
    return _normal_quantile(np.asarray(p, dtype=float))


def t_cdf(x: float, *, df: float) -> float:
    """P(T <= x) for Student's t with `df` degrees of freedom (df > 0, need not be whole)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if math.isinf(x):
        return 1.0 if x > 0 else 0.0
    tail = 0.5 * _incomplete_beta(df / (df + x * x), df / 2, 0.5)  # P(T > |x|)
    return 1.0 - tail if x > 0 else tail


def t_quantile(p: float, *, df: float) -> float:
    """The x with P(T <= x) = p, by bisection on `t_cdf` (monotone, so it always converges)."""
    if not 0 < p < 1:
        raise ValueError(f"probability must be in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, df=df)
    high = 1.0
    while t_cdf(high, df=df) < p:
        high *= 2
    low = 0.0
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df=df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-13 * max(1.0, high):
            break
    return (low + high) / 2


def t_two_sided_p(statistic: float, *, df: float) -> float:
    """P(|T| >= |statistic|)."""
    return min(1.0, 2 * t_cdf(-abs(statistic), df=df))


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry otherwise.
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    """The continued fraction of I_x(a, b), by the modified Lentz method."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result
