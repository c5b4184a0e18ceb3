"""Normal and Student-t distribution functions, so the statistics need numpy only.

scipy is not a dependency of the report environment; these few functions are all the
statistics need. The normal comes from the standard library (`statistics.NormalDist` for the
quantile, `math.erfc` for the cdf); the t distribution from the regularised incomplete beta
function, evaluated by its continued fraction (Numerical Recipes, 3rd ed., 6.4), and above
5000 degrees of freedom from Hill's asymptotic series (where the continued fraction loses
digits). tests/test_parity.py holds them to scipy.stats to 1e-9 relative, tails included.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
# erfc, not NormalDist.cdf (1 + erf(x)), which cancels to 0 below x = -8.3 (scipy: 6e-17).
_normal_cdf = np.vectorize(lambda x: 0.5 * math.erfc(-x / math.sqrt(2)), otypes=[float])
_normal_quantile = np.vectorize(_NORMAL.inv_cdf, otypes=[float])
# Hill's series above this many degrees of freedom: the continued fraction's error, 3e-11 here
# against scipy, grows with df (its terms cancel to O(1/df): 3e-5 at 10^10); Hill's, 6e-11
# here, falls (5e-13 at 2 10^4).
_LARGE_DF = 5e3


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
    tail = _t_tail(abs(x), df)  # P(T > |x|)
    return 1.0 - tail if x > 0 else tail


def t_quantile(p: float, *, df: float) -> float:
    """The x with P(T <= x) = p, by bisection on the tail P(T > |x|) (monotone, so it always
    converges). Bisecting on the tail, not on the cdf, keeps the digits of a tail
    probability such as 1e-12, which 1 - 1e-12 would round away."""
    if not 0 < p < 1:
        raise ValueError(f"probability must be in (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if p == 0.5:
        return 0.0
    tail = min(p, 1 - p)  # 1 - p is exact for p >= 0.5
    high = 1.0
    while _t_tail(high, df) > tail:
        high *= 2
    low = 0.0
    for _ in range(200):
        middle = (low + high) / 2
        if _t_tail(middle, df) > tail:
            low = middle
        else:
            high = middle
        if high - low < 1e-15 * high:
            break
    x = (low + high) / 2
    return x if p > 0.5 else -x


def t_two_sided_p(statistic: float, *, df: float) -> float:
    """P(|T| >= |statistic|)."""
    return min(1.0, 2 * t_cdf(-abs(statistic), df=df))


def _t_tail(x: float, df: float) -> float:
    """P(T > x) for x >= 0: I_w(df/2, 1/2) / 2 with w = df / (df + x^2)."""
    if x == 0:
        return 0.5
    if math.isinf(x):
        return 0.0
    if df > _LARGE_DF:
        return _hill_tail(x, df)
    a, b = df / 2, 0.5
    s = x / math.sqrt(df)  # s^2 = x^2 / df, so w = 1 / (1 + s^2) and 1 - w = s^2 w
    w = 1 / (1 + s * s)  # 0 where s^2 overflows
    # The logs from s, not from w: near x = 0, 1 - w by subtraction rounds to 0 (t_cdf(1e-8) was 0.5).
    log_w = -math.log1p(s * s) if s <= 1 else -2 * math.log(s) - math.log1p(1 / (s * s))
    log_front = a * log_w + b * (2 * math.log(s) + log_w) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    # log_front: log of w^a (1 - w)^b / B(a, b). The continued fraction converges fast for
    # w < (a + 1) / (a + b + 2); use symmetry otherwise (there s <= 2, so s^2 w does not overflow).
    if w < (a + 1) / (a + b + 2):
        return 0.5 * math.exp(log_front) * _beta_fraction(w, a, b) / a
    return 0.5 * (1.0 - math.exp(log_front) * _beta_fraction(s * s * w, b, a) / b)


def _hill_tail(x: float, df: float) -> float:
    """P(T > x) for large df by Hill's normalising series (Algorithm 395, Comm. ACM 13, 1970):
    z = w + (w^3 + 3w) / b - (4w^7 + 33w^5 + 240w^3 + 855w) / (10 b (b + 0.8 w^4 + 100)),
    w^2 = (df - 1/2) log(1 + x^2 / df), b = 48 (df - 1/2)^2; then P(Z > z)."""
    a = df - 0.5
    b = 48 * a * a
    y = a * math.log1p(x * x / df)  # w^2
    if y > 1600:
        return 0.0  # z >= w = 40: P(Z > z) is below the smallest double (and b may overflow)
    z = math.sqrt(y) * (1 + (y + 3) / b - (((4 * y + 33) * y + 240) * y + 855) / (10 * b * (b + 0.8 * y * y + 100)))
    return 0.5 * math.erfc(z / math.sqrt(2))


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
