"""Normal and t distribution functions against published table values."""

from __future__ import annotations

import math

import pytest

from lora_study.stats.distributions import normal_cdf, normal_quantile, t_cdf, t_quantile, t_two_sided_p


def test_t_quantiles_match_the_tables() -> None:
    table = {1: 12.7062047, 2: 4.3026527, 4: 2.7764451, 19: 2.0930241, 100: 1.9839715}
    for df, value in table.items():
        assert t_quantile(0.975, df=df) == pytest.approx(value, abs=1e-6)
    assert t_quantile(0.025, df=4) == pytest.approx(-2.7764451, abs=1e-6)
    assert t_quantile(0.5, df=3) == 0.0
    assert t_quantile(0.975, df=1e7) == pytest.approx(1.959964, abs=1e-5)  # tends to the normal


def test_t_cdf_closed_forms() -> None:
    # df = 1 is Cauchy: 1/2 + atan(x)/pi; df = 2: 1/2 + x / (2 sqrt(2 + x^2)).
    for x in (-3.0, -0.5, 0.0, 0.7, 4.0):
        assert t_cdf(x, df=1) == pytest.approx(0.5 + math.atan(x) / math.pi, abs=1e-12)
        assert t_cdf(x, df=2) == pytest.approx(0.5 + x / (2 * math.sqrt(2 + x * x)), abs=1e-12)
    assert t_two_sided_p(0.0, df=5) == 1.0
    assert t_cdf(math.inf, df=3) == 1.0


def test_normal_functions() -> None:
    assert float(normal_quantile(0.975)) == pytest.approx(1.959964, abs=1e-6)
    assert float(normal_cdf(1.0)) == pytest.approx(0.8413447, abs=1e-7)
    assert list(normal_cdf([-1.0, 0.0])) == pytest.approx([0.1586553, 0.5], abs=1e-7)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="probability"):
        t_quantile(1.0, df=3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_cdf(1.0, df=0)
