"""Tests for lora_study.report_drift: Study 4's criterion on known drifts, and the sections."""

from __future__ import annotations

import pytest

from lora_study.report_drift import DriftResult, drift_sections, drift_verdicts, fft_partner


def test_fft_partner_has_the_same_size_and_seed() -> None:
    assert fft_partner("lora-r8-qv-n100-s1") == "fft-n100-s1"
    assert fft_partner("dora-r32-all-linear-n300-s7") == "fft-n300-s7"
    assert fft_partner("base") is None


def test_verdict_holds_exactly_from_the_criterion() -> None:
    verdicts = drift_verdicts(
        mean_drift={"lora-r8-qv-n100-s1": 0.375, "lora-r32-qv-n100-s1": 0.4375, "fft-n100-s1": 0.5}, criterion=0.25
    )
    by_name = {v["variant"]: v for v in verdicts}
    assert set(by_name) == {"lora-r8-qv-n100-s1", "lora-r32-qv-n100-s1"}
    assert by_name["lora-r8-qv-n100-s1"]["reduction"] == 0.25  # exact in binary floating point
    assert by_name["lora-r8-qv-n100-s1"]["holds"]  # 25% less: exactly the criterion
    assert by_name["lora-r32-qv-n100-s1"]["reduction"] == 0.125
    assert not by_name["lora-r32-qv-n100-s1"]["holds"]


def test_no_verdict_without_a_matching_fft_and_none_for_an_fft_that_did_not_move() -> None:
    assert drift_verdicts(mean_drift={"lora-r8-qv-n100-s1": 0.1, "fft-n300-s1": 0.2}, criterion=0.2) == []
    [verdict] = drift_verdicts(mean_drift={"lora-r8-qv-n100-s1": 0.1, "fft-n100-s1": 0.0}, criterion=0.2)
    assert verdict["reduction"] is None and not verdict["holds"]


def _result(name: str, drift: list[float]) -> DriftResult:
    layers = len(drift)
    per_layer = [{"layer": i, "cka_debiased": 1 - d, "cka_biased": 1 - d / 2, "cosine": 1 - d / 3} for i, d in enumerate(drift)]
    return DriftResult(
        name=name,
        drift={
            "metrics": {
                "examples": 8, "layers": layers, "pooling": "mean", "per_layer": per_layer,
                "drift_per_layer": drift, "mean_drift": sum(drift) / layers,
                "baselines": {"self": {"cka_debiased": [1.0] * layers, "cka_biased": [1.0] * layers},
                              "shuffled": {"cka_debiased": [0.01] * layers, "cka_biased": [0.6] * layers}},
                "matrix": {"debiased": [[1 - abs(i - j) / layers for j in range(layers)] for i in range(layers)]},
                "forgetting": {"base": {"texts": 4, "tokens": 100, "mean_nll": 2.0, "perplexity": 7.389},
                               "tuned": {"texts": 4, "tokens": 100, "mean_nll": 2.1, "perplexity": 8.166}},
            }
        },
    )


def test_sections_show_the_numbers_and_the_verdict() -> None:
    results = [_result("lora-r8-qv-n4-s1", [0.0, 0.05, 0.1]), _result("fft-n4-s1", [0.0, 0.2, 0.4])]
    sections = {s.anchor: s for s in drift_sections(results=results, criterion=0.2)}
    assert set(sections) == {"drift", "cka-matrices", "forgetting"}
    drift = sections["drift"].body
    assert "<svg" in drift and "<td>0.0500</td>" not in drift  # numbers are in numeric cells
    assert '<td class="num">0.0500</td>' in drift and '<td class="num">0.2000</td>' in drift
    assert "lora-r8-qv-n4-s1</b>: drift 0.0500 vs 0.2000 for fft-n4-s1: 75.0% less, criterion holds" in drift
    assert "+10.5%" in sections["forgetting"].body  # 8.166 / 7.389 - 1
    assert drift_sections(results=[], criterion=0.2) == []


def test_small_drifts_keep_significant_digits_and_more_drift_is_said_so() -> None:
    results = [_result("lora-r8-qv-n4-s1", [0.0, 2e-5, 4e-5]), _result("fft-n4-s1", [0.0, 1e-5, 2e-5])]
    drift = {s.anchor: s for s in drift_sections(results=results, criterion=0.2)}["drift"].body
    assert "drift 2.000e-05 vs 1.000e-05 for fft-n4-s1: 100.0% more, criterion does not hold" in drift
