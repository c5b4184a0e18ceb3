"""The drift stage's sections show the summary's numbers and verdicts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from lora_study.core.grid import VariantSpec, group_of
from lora_study.report.drift import DriftResult, drift_number, drift_sections, interval_text
from lora_study.report.page import escape
from lora_study.report.summary import _drift as summary_drift
from lora_study.stages.drift.summary import summarise_drift

TEXTS = {"per_text_nll": [10.0, 12.0, 9.0], "per_text_tokens": [5, 6, 4]}
LORA = VariantSpec(kind="lora", train_size=4, seed=1, learning_rate=1e-3, rank=8, alpha=16.0, targets="qv")
FFT = VariantSpec(kind="fft", train_size=4, seed=1, learning_rate=1e-5)
LORA_GROUP, FFT_GROUP = group_of(LORA), group_of(FFT)  # the groups comparisons.json compares


def drift_metrics(drift: list[float]) -> dict[str, Any]:
    """drift.json's metrics for per-layer drifts `drift` (layer 0 first)."""
    layers = len(drift)
    per_layer = [
        {"layer": i, "cka_debiased": 1 - d, "cka_biased": 1 - d / 2, "cosine_centred": 1 - d / 3, "cosine_raw": 1.0}
        for i, d in enumerate(drift)
    ]
    return {
        "examples": 40,
        "layers": layers,
        "pooling": "mean",
        "tokens": "input",
        "per_layer": per_layer,
        "drift_per_layer": drift,
        "mean_drift": sum(drift[1:]) / (layers - 1),
        "mean_over": f"layers 1-{layers - 1}",
        "baselines": {
            "self": {"cka_debiased": [1.0] * layers, "cka_biased": [1.0] * layers},
            "shuffled": {"cka_debiased": [0.01] * layers, "cka_biased": [0.6] * layers},
        },
        "matrix": {"debiased": [[1 - abs(i - j) / layers for j in range(layers)] for i in range(layers)]},
        "forgetting": {
            "in_domain": TEXTS,
            "general": {"per_text_nll": [11.0, 12.0, 9.0], "per_text_tokens": [5, 6, 4]},
        },
    }


def _result(spec: VariantSpec, drift: list[float]) -> DriftResult:
    return DriftResult(
        name=spec.name, drift={"run": {"variant": spec.name, "spec": spec.to_dict()}, "metrics": drift_metrics(drift)}
    )


def _summary(results: list[DriftResult], comparisons: dict | None = None) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    base = [rng.normal(size=(40, 6)) for _ in range(3)]
    variants = {
        r.name: (
            r.drift["run"]["spec"],
            r.metrics,
            [
                b + amount * rng.normal(size=b.shape)
                for b, amount in zip(base, (0.0, 1.0, 2.0) if r.is_fft else (0.0, 0.1, 0.2), strict=True)
            ],
        )
        for r in results
    }
    comparisons = comparisons or {
        "run": {"metric": "rougeL"},
        "metrics": {
            "comparisons": [
                {
                    "a": "base",
                    "b": LORA_GROUP,
                    "difference": {"mean": 0.01, "low": -0.02, "high": 0.04},
                    "supported": False,
                    "p_adjusted": 0.62,
                },
                {
                    "a": "base",
                    "b": FFT_GROUP,
                    "difference": {"mean": 0.05, "low": 0.01, "high": 0.09},
                    "supported": True,
                    "p_adjusted": 0.012,
                },
                {
                    "a": LORA_GROUP,
                    "b": FFT_GROUP,
                    "difference": {"mean": 0.04, "low": 0.01, "high": 0.07},
                    "quality_gap": {"max_gap": 0.03, "holds": False},
                    "adjustment": "Holm",
                    "p_adjusted": 0.03,
                    "family_size": 3,
                },
            ]
        },
    }
    summary = summarise_drift(
        base_features=base,
        base_forgetting={"in_domain": TEXTS, "general": TEXTS},
        variants=variants,
        comparisons=comparisons,
        settings={
            "criterion": 0.2,
            "resamples": 300,
            "seed": 0,
            "confidence": 0.95,
            "include_embeddings": False,
            "max_quality_gap": 0.03,
        },
    )
    return summary, comparisons


def test_sections_show_intervals_verdicts_forgetting_and_the_frontier() -> None:
    results = [_result(LORA, [0.0, 0.05, 0.1]), _result(FFT, [0.0, 0.2, 0.4])]
    summary, comparisons = _summary(results)
    sections = {s.anchor: s for s in drift_sections(results=results, summary=summary, comparisons=comparisons)}
    assert set(sections) == {"drift", "cka-matrices", "forgetting", "learning-forgetting"}
    drift = sections["drift"].body
    assert "<svg" in drift and "example&#x27;s own input tokens" in drift
    lora = summary["metrics"]["groups"][LORA_GROUP]
    assert interval_text(lora["mean_drift"]) in drift  # the summary's interval, not a recomputation
    (verdict,) = summary["metrics"]["verdicts"]
    assert verdict["drift"] == "holds" and verdict["quality"]["outcome"] == "not shown" and not verdict["holds"]
    assert "criterion not supported" in drift and "layer 0, the embedding lookup, left out" in drift
    forgetting = sections["forgetting"].body
    # LoRA's general-text cross-entropy rose by 1 nat over 15 tokens against the base.
    assert f"{lora['forgetting']['general']['estimate']:+.4f}" == "+0.0667" and "+0.0667" in forgetting
    learning = sections["learning-forgetting"].body
    assert "<svg" in learning and "(frontier)" in learning


def test_full_fine_tuning_is_told_by_its_spec_not_its_name() -> None:
    fft = _result(FFT, [0.0, 0.2, 0.4])
    renamed = DriftResult(name="my-run", drift=fft.drift)
    assert renamed.is_fft and not _result(LORA, [0.0, 0.1, 0.2]).is_fft


def test_nothing_without_trained_variants_and_small_drifts_keep_digits() -> None:
    assert drift_sections(results=[], summary=None, comparisons={"run": {}, "metrics": {}}) == []
    assert drift_number(0.00012346) == "1.235e-04" and drift_number(0.0123) == "0.0123"


def test_the_serving_alternative_is_said_to_be_judged_where_the_serving_stage_ran() -> None:
    """Study 4's "or at most 30% serving overhead" is judged by the serving stage's success
    criteria: the drift section says so when that stage ran (with its limit), and says it was
    not judged only when it did not run; never that the workflow cannot measure it."""
    results = [_result(LORA, [0.0, 0.05, 0.1]), _result(FFT, [0.0, 0.2, 0.4])]
    summary, comparisons = _summary(results)
    serving = {"run": {"settings": {"max_overhead": 0.25}}, "metrics": {"criteria": []}}
    ran, off = (
        {
            s.anchor: s.body
            for s in drift_sections(results=results, summary=summary, comparisons=comparisons, serving_summary=given)
        }["drift"]
        for given in (serving, None)
    )
    for body in (ran, off):
        assert "not measured by this workflow" not in body
    assert "at most 25% serving overhead of the unmerged adapter, is judged by the serving stage" in ran
    assert "Study 4&#x27;s success criteria" in ran
    assert "was not judged in this run: the serving stage did not run" in off


def test_the_drift_docs_do_not_say_the_serving_alternative_is_missing() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "methods" / "drift.md").read_text(encoding="utf-8")
    criterion = page[page.index("## Study 4's criterion") :][:1200]
    assert "does not have yet" not in criterion and "not measured by this workflow" not in criterion
    assert "judged\nby the serving stage" in criterion


def test_a_drift_verdict_on_a_variant_not_shown_to_learn_says_so_beside_it() -> None:
    """LoRA's gain over the base is not shown (+0.01 [-0.02, +0.04], not supported) and its drift
    ratio "holds": small drift from an adapter that may not have learned is not evidence that LoRA
    drifts less. The summary's verdict carries the caveat (JSON and text), and the report's drift
    section and summary show it beside the drift outcome; full fine-tuning, which beat the base,
    carries none."""
    results = [_result(LORA, [0.0, 0.05, 0.1]), _result(FFT, [0.0, 0.2, 0.4])]
    summary, comparisons = _summary(results)
    (verdict,) = summary["metrics"]["verdicts"]
    assert verdict["drift"] == "holds"
    gains = verdict["gain_over_base"]
    assert gains["lora"]["shown"] is False and gains["fft"]["shown"] is True and not gains["fft"]["note"]
    caveat = f"{LORA_GROUP} is not shown to beat the base (rougeL +0.0100 [-0.0200, +0.0400] over the base, p 0.62)"
    assert verdict["drift_caveat"].startswith(caveat) and FFT_GROUP not in verdict["drift_caveat"]
    assert f": holds (but {caveat}" in verdict["text"]
    groups = summary["metrics"]["groups"]
    assert groups[LORA_GROUP]["gain_over_base"]["shown"] is False and groups[FFT_GROUP]["gain_over_base"]["shown"]
    body = {s.anchor: s.body for s in drift_sections(results=results, summary=summary, comparisons=comparisons)}
    assert escape(f": holds (but {caveat}") in body["drift"]
    assert "no: +0.0100 [-0.0200, +0.0400], p 0.62 (may be under-trained)" in body["drift"]  # the group table
    assert "yes: +0.0500 [+0.0100, +0.0900], p 0.012" in body["drift"]
    assert escape(f"holds (but {caveat}") in summary_drift(summary, comparisons)

    # Once LoRA beats the base, no caveat.
    learned = copy.deepcopy(comparisons)
    learned["metrics"]["comparisons"][0].update(difference={"mean": 0.05, "low": 0.02, "high": 0.08}, supported=True)
    summary, _ = _summary(results, comparisons=learned)
    (verdict,) = summary["metrics"]["verdicts"]
    assert verdict["drift_caveat"] == "" and "(but" not in verdict["text"]
