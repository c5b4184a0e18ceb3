"""Serving overhead intervals and verdicts, and Study 4's criteria, on known numbers."""

from __future__ import annotations

import numpy as np
import pytest

from lora_study.report.page import escape
from lora_study.report.serving import _criteria as serving_sections_criteria
from lora_study.stages.serving.summary import (
    FAILS,
    HOLDS,
    UNSUPPORTED,
    outcome,
    overhead_interval,
    overhead_table,
    paired_ratio_interval,
    serving_leg,
    study4_criteria,
)
from lora_study.stats.distributions import t_quantile

SETTINGS = {"max_overhead": 0.3, "resamples": 2000, "seed": 0, "confidence": 0.95}


def serving_file(latencies_per_pass: dict[int, list[float]], *, under_load: bool | None = False) -> dict:
    """A serving file: per batch size, timed passes with these mean request latencies."""
    return {
        "run": {"interleaved_with": []},
        "meta": {"device_name": "cpu x", "dtype": "float32", "torch_threads": 2},
        "metrics": {
            "batches": [
                {
                    "batch_size": size,
                    "runs": [{"request_latency_seconds": [value] * size} for value in values],
                    "metrics": {"request_latency_seconds": {"p95": max(values)}, "under_load": under_load},
                }
                for size, values in latencies_per_pass.items()
            ]
        },
    }


def test_overhead_estimate_is_the_ratio_of_mean_latencies_minus_one() -> None:
    rng = np.random.default_rng(0)
    for paired in (True, False):
        interval = overhead_interval(
            unmerged=np.array([1.2, 1.2, 1.2]),
            merged=np.array([1.0, 1.0, 1.0]),
            resamples=500,
            rng=rng,
            confidence=0.95,
            paired=paired,
        )
        # Constant passes: no spread, so the interval is the point.
        assert interval.estimate == pytest.approx(0.2)
        assert interval.low == pytest.approx(0.2) and interval.high == pytest.approx(0.2)


def test_paired_passes_cancel_a_shared_drift_of_the_machine() -> None:
    """Both modes slow down together (load drifting over the passes): paired, the ratio is
    the same in every pass and the interval is tight; unpaired, the drift widens it."""
    drift = np.array([1.0, 1.3, 1.6, 1.9, 2.2, 2.5])
    merged, unmerged = drift, 1.1 * drift
    paired = overhead_interval(
        unmerged=unmerged, merged=merged, resamples=2000, rng=np.random.default_rng(0), confidence=0.95, paired=True
    )
    apart = overhead_interval(
        unmerged=unmerged, merged=merged, resamples=2000, rng=np.random.default_rng(0), confidence=0.95, paired=False
    )
    assert paired.estimate == pytest.approx(0.1) == apart.estimate
    assert paired.high - paired.low < 1e-9  # every pass has ratio 1.1
    assert apart.low < 0.0 and apart.high > 0.3  # the drift swamps a 10% overhead


def test_paired_t_interval_by_hand() -> None:
    u, m = np.array([1.1, 1.3, 1.2, 1.25]), np.array([1.0, 1.1, 1.05, 1.1])
    low, high = paired_ratio_interval(numerator=u, denominator=m, confidence=0.9)
    ratio = u.mean() / m.mean()
    d = u - ratio * m
    se = d.std(ddof=1) / (2 * m.mean())
    factor = np.exp(t_quantile(0.95, df=3) * se / ratio)  # on the log scale: se(log ratio) = se / ratio
    assert (low, high) == pytest.approx((ratio / factor, ratio * factor))


def test_overhead_interval_is_at_least_the_delta_method_t_interval() -> None:
    unmerged, merged = np.array([1.1, 1.3, 1.2, 1.25, 1.15]), np.array([1.0, 0.95, 1.05, 1.0, 1.02])
    interval = overhead_interval(
        unmerged=unmerged, merged=merged, resamples=4000, rng=np.random.default_rng(1), confidence=0.95, paired=False
    )
    assert interval.low < unmerged.mean() / merged.mean() - 1 < interval.high
    # Delta method by hand: relative variances of the two means, Welch df.
    ratio = unmerged.mean() / merged.mean()
    parts = [(v.var(ddof=1) / v.size / v.mean() ** 2, v.size - 1) for v in (unmerged, merged)]
    log_se = np.sqrt(sum(p for p, _ in parts))
    df = sum(p for p, _ in parts) ** 2 / sum(p**2 / d for p, d in parts)
    factor = np.exp(t_quantile(0.975, df=df) * log_se)  # on the log scale
    assert interval.low <= ratio / factor - 1 + 1e-9
    assert interval.high >= ratio * factor - 1 - 1e-9


def test_an_overhead_interval_never_reaches_below_minus_100_percent() -> None:
    """Three paired passes, one of them far slower unmerged: the t interval of the ratio's
    linearisation, symmetric around 1.77, reached a ratio of -5.2 (an overhead of -620%, a
    negative latency). On the log scale it stays a ratio above 0, and wide: not supported."""
    serving = {"v": {"merged": serving_file({1: [1.0, 1.0, 1.0]}), "unmerged": serving_file({1: [0.1, 5.0, 0.2]})}}
    (row,) = overhead_table(serving=serving, settings=SETTINGS)
    overhead = row["overhead"]
    assert -1.0 < overhead["low"] < overhead["estimate"] < overhead["high"]
    assert row["outcome"] == UNSUPPORTED
    # Timed apart (Welch, unpaired): the same.
    apart = overhead_interval(
        unmerged=np.array([0.1, 5.0, 0.2]),
        merged=np.array([1.0, 1.0, 1.0]),
        resamples=2000,
        rng=np.random.default_rng(0),
        confidence=0.95,
        paired=False,
    )
    assert -1.0 < apart.low < apart.estimate < apart.high


def test_verdicts_per_batch_size_with_simultaneous_intervals() -> None:
    serving = {
        "lora-r8-qv-n100-s1": {
            "merged": serving_file({1: [1.0, 1.01, 0.99, 1.0], 4: [2.0, 2.02, 1.98, 2.0]}),
            # batch 1: about 5% overhead, well within; batch 4: about 60%, well above.
            "unmerged": serving_file({1: [1.05, 1.06, 1.04, 1.05], 4: [3.2, 3.22, 3.18, 3.2]}),
        },
        "base": {"base": serving_file({1: [1.0, 1.0]})},
    }
    rows = overhead_table(serving=serving, settings=SETTINGS)
    assert [(r["batch_size"], r["outcome"]) for r in rows] == [(1, HOLDS), (4, FAILS)]
    assert rows[0]["overhead"]["estimate"] == pytest.approx(0.05)
    assert rows[1]["overhead"]["estimate"] == pytest.approx(0.6)
    assert rows[0]["overhead"]["confidence"] == pytest.approx(1 - 0.05 / 2)  # two verdicts: Bonferroni
    assert serving_leg(rows, ["lora-r8-qv-n100-s1"])["outcome"] == FAILS
    assert serving_leg(rows[:1], ["lora-r8-qv-n100-s1"])["outcome"] == HOLDS
    assert serving_leg(rows, ["other"])["outcome"] == "not measured"


def test_a_straddling_interval_supports_nothing() -> None:
    serving = {
        "v": {
            "merged": serving_file({1: [1.0, 1.0, 1.0]}),
            "unmerged": serving_file({1: [1.0, 1.6, 1.3]}),  # 30% on average, wide spread
        }
    }
    (row,) = overhead_table(serving=serving, settings=SETTINGS)
    assert row["overhead"]["low"] < 0.3 < row["overhead"]["high"]
    assert row["outcome"] == UNSUPPORTED


@pytest.mark.parametrize(
    ("quality", "drift", "serving", "expected"),
    [
        (HOLDS, HOLDS, FAILS, HOLDS),  # quality and less drift
        (HOLDS, FAILS, HOLDS, HOLDS),  # quality and little overhead
        (HOLDS, UNSUPPORTED, UNSUPPORTED, UNSUPPORTED),
        ("not shown", HOLDS, HOLDS, UNSUPPORTED),  # quality not shown: nothing holds
        ("not shown", FAILS, FAILS, FAILS),  # neither alternative holds
    ],
)
def test_study4_combines_quality_with_drift_or_overhead(quality: str, drift: str, serving: str, expected: str) -> None:
    summary = {
        "metrics": {
            "verdicts": [
                {
                    "variant": "lora-r8-qv-n100",
                    "fft": "fft-n100",
                    "quality": {"outcome": quality, "difference": None},
                    "drift": drift,
                    "ratio": {"estimate": 0.5, "low": 0.4, "high": 0.6, "confidence": 0.95},
                    "threshold": 0.8,
                }
            ]
        }
    }
    overhead = {"estimate": 0.1, "low": 0.0, "high": 0.2, "confidence": 0.95}
    rows = [{"variant": "lora-r8-qv-n100-s1", "batch_size": 1, "overhead": overhead, "outcome": serving}]
    (row,) = study4_criteria(
        rows=rows,
        groups={"lora-r8-qv-n100": ["lora-r8-qv-n100-s1"]},
        drift_summary=summary,
        sources={"comparisons": "c.json", "drift_summary": "d.json", "serving": "s"},
    )
    assert row["criterion"] == expected
    assert row["quality"]["source"] == "c.json" and row["drift"]["source"] == "d.json"
    assert row["serving"]["outcome"] == serving


def test_a_comparison_under_load_or_across_machines_supports_nothing() -> None:
    merged = serving_file({1: [1.0, 1.01, 0.99]})
    serving = {"v": {"merged": merged, "unmerged": serving_file({1: [1.05, 1.06, 1.04]}, under_load=True)}}
    (row,) = overhead_table(serving=serving, settings=SETTINGS)
    assert row["under_load"] is True and row["outcome"] == UNSUPPORTED
    unknown = {"v": {"merged": merged, "unmerged": serving_file({1: [1.05, 1.06, 1.04]}, under_load=None)}}
    (row,) = overhead_table(serving=unknown, settings=SETTINGS)
    assert row["under_load"] is None and row["outcome"] == HOLDS  # unknown load: the verdict, flagged unknown
    other = serving_file({1: [1.05, 1.06, 1.04]})
    other["meta"] = {**other["meta"], "device_name": "another gpu"}
    with pytest.raises(ValueError, match="different device_name"):
        overhead_table(serving={"v": {"merged": merged, "unmerged": other}}, settings=SETTINGS)
    interval = overhead_interval(
        unmerged=np.array([1.1, 1.1]),
        merged=np.array([1.0, 1.0]),
        resamples=10,
        rng=np.random.default_rng(0),
        confidence=0.95,
        paired=True,
    )
    assert outcome(interval, limit=0.3) == HOLDS and outcome(interval, limit=0.3, under_load=True) == UNSUPPORTED


def test_the_drift_leg_of_study4_carries_the_caveat_of_a_variant_not_shown_to_learn() -> None:
    """The drift summary's caveat (LoRA not shown to beat the base) goes with the drift leg into
    the serving summary's Study 4 table, and the report shows it beside that leg's outcome."""
    caveat = "lora-r8-qv-n100 is not shown to beat the base (rougeL -0.0001 [-0.0300, +0.0300] over the base, p 0.997)"
    verdict = {
        "variant": "lora-r8-qv-n100",
        "fft": "fft-n100",
        "quality": {"outcome": "not shown", "difference": None},
        "drift": HOLDS,
        "ratio": {"estimate": 0.5, "low": 0.4, "high": 0.6, "confidence": 0.95},
        "threshold": 0.8,
        "drift_caveat": caveat,
    }
    (row,) = study4_criteria(
        rows=[],
        groups={},
        drift_summary={"metrics": {"verdicts": [verdict]}},
        sources={"comparisons": "c.json", "drift_summary": "d.json", "serving": "s"},
    )
    assert row["drift"]["caveat"] == caveat
    assert escape(f"{HOLDS} (but {caveat})") in serving_sections_criteria({"metrics": {"criteria": [row]}})
    verdict["drift_caveat"] = ""
    (row,) = study4_criteria(
        rows=[],
        groups={},
        drift_summary={"metrics": {"verdicts": [verdict]}},
        sources={"comparisons": "c.json", "drift_summary": "d.json", "serving": "s"},
    )
    assert "(but" not in serving_sections_criteria({"metrics": {"criteria": [row]}})
