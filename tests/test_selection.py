"""Choosing a learning rate on the validation split (lora_study.stages.selection.selection)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from lora_study.stages.selection.selection import choose_rate, edge_text, grid_edge, rate_ratio, ratio_edge_text


def validation(rate: float, seed: int, losses: list[float]) -> dict[str, Any]:
    return {
        "run": {"variant": f"lora-lr{rate}-s{seed}", "spec": {"seed": seed, "learning_rate": rate}},
        "metrics": {"per_example": [{"id": str(i), "loss": x} for i, x in enumerate(losses)]},
    }


def noisy(mean: float, *, n: int = 20, seed: int = 0) -> list[float]:
    return list(mean + np.random.default_rng(seed).normal(0, 0.05, n))


def test_the_rate_with_the_clearly_lower_validation_loss_is_chosen() -> None:
    candidates = {
        rate: [validation(rate, s, noisy(loss, seed=s)) for s in (1, 2)]
        for rate, loss in {1e-4: 2.4, 3e-4: 1.9, 1e-3: 2.2}.items()
    }
    result = choose_rate(candidates=candidates, resamples=500, seed=0, confidence=0.95)
    assert result["chosen"] == {"learning_rate": 3e-4, "variants": ["lora-lr0.0003-s1", "lora-lr0.0003-s2"]}
    assert result["chosen_per_seed"] == {"1": 3e-4, "2": 3e-4}
    rows = {row["learning_rate"]: row for row in result["candidates"]}
    assert rows[3e-4]["interval"]["low"] < rows[3e-4]["mean_loss"] < rows[3e-4]["interval"]["high"]
    assert rows[3e-4]["interval"]["high"] < rows[1e-3]["interval"]["low"]  # clearly apart


def test_the_choice_averages_seeds_before_choosing() -> None:
    # Seed 1 alone prefers 1e-4; averaged over both seeds 3e-4 is lower.
    candidates = {
        1e-4: [validation(1e-4, 1, [1.0] * 4), validation(1e-4, 2, [3.0] * 4)],
        3e-4: [validation(3e-4, 1, [1.5] * 4), validation(3e-4, 2, [1.5] * 4)],
    }
    result = choose_rate(candidates=candidates, resamples=200, seed=0, confidence=0.95)
    assert result["chosen"]["learning_rate"] == 3e-4
    assert result["chosen_per_seed"] == {"1": 1e-4, "2": 3e-4}


def test_exact_ties_go_to_the_smaller_rate_whatever_the_order() -> None:
    losses = [1.0, 2.0, 1.5]
    for order in ([1e-3, 1e-4], [1e-4, 1e-3]):
        candidates = {rate: [validation(rate, 1, losses)] for rate in order}
        assert (
            choose_rate(candidates=candidates, resamples=100, seed=0, confidence=0.95)["chosen"]["learning_rate"]
            == 1e-4
        )


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="no candidate"):
        choose_rate(candidates={}, resamples=10, seed=0, confidence=0.95)


def selection(chosen: float, per_seed: dict[str, float]) -> dict[str, Any]:
    return {"chosen": {"learning_rate": chosen}, "chosen_per_seed": per_seed}


def test_rate_ratio_with_one_seed_has_no_interval() -> None:
    ratio = rate_ratio(
        numerator=selection(2e-4, {"1": 2e-4}), denominator=selection(2e-5, {"1": 2e-5}), confidence=0.95
    )
    assert (
        ratio["ratio"] == pytest.approx(10.0) and ratio["interval"] is None and "one seed" in ratio["why_no_interval"]
    )


def test_rate_ratio_interval_is_on_the_log_scale_and_positive() -> None:
    lora = selection(2e-4, {"1": 1e-4, "2": 2e-4, "3": 4e-4})
    fft = selection(2e-5, {"1": 2e-5, "2": 2e-5, "3": 2e-5})
    ratio = rate_ratio(numerator=lora, denominator=fft, confidence=0.95)
    logs = np.log([5.0, 10.0, 20.0])
    half = 4.302652729911275 * logs.std(ddof=1) / math.sqrt(3)  # t(0.975, 2 df)
    assert ratio["interval"]["low"] == pytest.approx(math.exp(logs.mean() - half), rel=1e-6)
    assert ratio["interval"]["high"] == pytest.approx(math.exp(logs.mean() + half), rel=1e-6)
    assert 0 < ratio["interval"]["low"] < 10 < ratio["interval"]["high"]


def test_the_report_says_which_candidates_the_validation_set_did_not_tell_apart() -> None:
    from lora_study.report.selection import selection_body

    candidates = {
        1e-4: [validation(1e-4, 1, noisy(2.00, seed=1))],
        3e-4: [validation(3e-4, 1, noisy(1.99, seed=2))],  # within the noise of 1e-4
        1e-3: [validation(1e-3, 1, noisy(3.00, seed=3))],
    }
    metrics = choose_rate(candidates=candidates, resamples=500, seed=0, confidence=0.95)
    spec = {"kind": "lora", "train_size": 4, "seed": 1, "learning_rate": 1e-4, "rank": 2, "alpha": 4.0, "targets": "qv"}
    body = selection_body(
        selections=[{"run": {"method": "lora-r2-qv-n4", "specs": [spec]}, "metrics": metrics}], confidence=0.95
    )
    chosen = metrics["chosen"]["learning_rate"]
    other = ({1e-4, 3e-4} - {chosen}).pop()
    assert chosen in (1e-4, 3e-4)
    assert f"its interval overlaps that of {'1e-4' if other == 1e-4 else '3e-4'}: not told apart" in body
    assert "1e-3: not told apart" not in body and "that of 1e-3" not in body


def metrics_of(rates: list[float], chosen: float) -> dict:
    return {"candidates": [{"learning_rate": rate} for rate in rates], "chosen": {"learning_rate": chosen}}


def test_a_choice_at_an_end_of_its_grid_is_named_and_bounds_the_ratio_one_way() -> None:
    """A chosen rate at the grid's end: the best rate may lie beyond it, so the ratio of two
    methods' best rates may be larger (LoRA at its largest, or FFT at its smallest) or smaller."""
    inside, top, bottom = (
        metrics_of([1e-4, 3e-4, 1e-3], 3e-4),
        metrics_of([1e-4, 1e-3], 1e-3),
        metrics_of([1e-5, 1e-4], 1e-5),
    )
    assert (grid_edge(inside), grid_edge(top), grid_edge(bottom)) == (None, "largest", "smallest")
    assert grid_edge(metrics_of([1e-4], 1e-4)) is None  # one candidate: no grid to be at the end of
    assert edge_text(method="lora", edge=None) is None
    assert "a larger rate was not tried" in edge_text(method="lora", edge="largest")
    assert ratio_edge_text(numerator=inside, denominator=metrics_of([1e-5, 3e-5, 1e-4], 3e-5)) is None
    assert ratio_edge_text(numerator=top, denominator=inside).endswith("may be larger than this")
    assert ratio_edge_text(numerator=inside, denominator=bottom).endswith("may be larger than this")
    assert ratio_edge_text(numerator=bottom, denominator=inside).endswith("may be smaller than this")
    assert ratio_edge_text(numerator=top, denominator=top).endswith("may be larger or smaller")
