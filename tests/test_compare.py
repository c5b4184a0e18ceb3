"""Variant comparisons: groups by seed, default pairs, verdict text, failure summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lora_study.core.grid import VariantSpec, group_specs
from lora_study.stages.compare.compare import (
    VariantScores,
    compare_variants,
    default_pairs,
    primary_questions,
    quality_gap,
    rank_questions,
)
from lora_study.tasks.rouge import ROUGE_TYPES

STATISTICS = {
    "metric": "rougeL",
    "resamples": 2000,
    "seed": 0,
    "confidence": 0.95,
    "pairs": [],
    "primary": None,
    "max_quality_gap": 0.03,
}
IDS = [f"e{i}" for i in range(30)]
INPUTS = {i: f"The input text number {i} describes adapters in detail and more detail." for i in IDS}


def lora(rank: int, *, n: int = 100, seed: int = 1, kind: str = "lora") -> VariantSpec:
    return VariantSpec(
        kind=kind, train_size=n, seed=seed, learning_rate=1e-3, rank=rank, alpha=2.0 * rank, targets="qv"
    )


def fft(*, n: int = 100, seed: int = 1) -> VariantSpec:
    return VariantSpec(kind="fft", train_size=n, seed=seed, learning_rate=1e-5)


def variant(
    of: str | VariantSpec, values: np.ndarray, prediction: str = "A short summary of the adapters."
) -> VariantScores:
    """Scores of a trained variant (by its spec) or of the base model / a precision (by name)."""
    spec = of if isinstance(of, VariantSpec) else None
    name = of.name if isinstance(of, VariantSpec) else of
    per_example = [{"id": i, "values": {k: float(v) for k in ROUGE_TYPES}} for i, v in zip(IDS, values, strict=True)]
    predictions = [{"id": i, "prediction": prediction, "reference": "Adapters are summarised here."} for i in IDS]
    return VariantScores(name=name, spec=spec, per_example=per_example, predictions=predictions)


def test_groups_and_default_pairs() -> None:
    groups = group_specs([None, lora(8, seed=3), lora(32), lora(16), fft(), lora(8, n=300)])
    assert list(groups) == [
        "base",
        "lora-r8-qv-n100",
        "lora-r32-qv-n100",
        "lora-r16-qv-n100",
        "fft-n100",
        "lora-r8-qv-n300",
    ]
    pairs = [(a, b) for a, b, _ in default_pairs(groups)]
    assert ("lora-r8-qv-n100", "lora-r16-qv-n100") in pairs and ("lora-r16-qv-n100", "lora-r32-qv-n100") in pairs
    assert ("lora-r8-qv-n100", "fft-n100") in pairs and not any(b == "fft-n300" for _, b in pairs)
    assert rank_questions(groups) == [("lora-r8-qv-n100", "lora-r32-qv-n100")]


def test_rank_verdict_uses_all_seeds_and_reads_plainly() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.3, 30)
    variants = [variant("base", base)]
    variants += [variant(lora(8, seed=s), base + 0.05 + rng.normal(0, 0.002, 30)) for s in (1, 2, 3)]
    variants += [variant(lora(32, seed=s), base + 0.05 + shift) for s, shift in ((1, -0.04), (2, 0.0), (3, 0.04))]
    result = compare_variants(variants=variants, eval_inputs=INPUTS, instruction="Summarize.", statistics=STATISTICS)
    assert result["metrics"]["groups"]["lora-r32-qv-n100"]["seeds"] == 3
    json.dumps(result, allow_nan=False)
    (rank,) = result["metrics"]["verdicts"]
    assert (rank["a"], rank["b"]) == ("lora-r8-qv-n100", "lora-r32-qv-n100")
    assert rank["text"].startswith("lora-r32-qv-n100 vs lora-r8-qv-n100: ROUGE-L difference")
    assert "over 3 seeds: not supported" in rank["text"]
    # The lone primary question is tested at alpha, unadjusted, and the text says so.
    assert rank["family"] == "primary" and rank["adjustment"] == "none" and rank["p_adjusted"] == rank["p_value"]
    assert "primary question, tested alone, unadjusted" in rank["text"]
    against_base = {c["b"]: c for c in result["metrics"]["comparisons"] if c["a"] == "base"}
    assert against_base["lora-r8-qv-n100"]["supported"]
    assert against_base["lora-r8-qv-n100"]["difference"]["mean"] == pytest.approx(0.05, abs=0.002)


def test_results_are_identical_across_runs() -> None:
    rng = np.random.default_rng(1)
    variants = [variant("base", rng.uniform(0, 1, 30)), variant(lora(8, n=10), rng.uniform(0, 1, 30))]
    first = compare_variants(variants=variants, eval_inputs=INPUTS, instruction="Summarize.", statistics=STATISTICS)
    second = compare_variants(variants=variants, eval_inputs=INPUTS, instruction="Summarize.", statistics=STATISTICS)
    assert first == second


def test_failure_modes_per_variant() -> None:
    values = np.full(30, 0.2)
    copying = VariantScores(
        name="base",
        spec=None,
        per_example=variant("base", values).per_example,
        predictions=[{"id": i, "prediction": INPUTS[i], "reference": "Adapters are summarised."} for i in IDS],
    )
    result = compare_variants(
        variants=[copying, variant(fft(n=10), values)],
        eval_inputs=INPUTS,
        instruction="Summarize.",
        statistics=STATISTICS,
    )
    assert result["metrics"]["variants"]["base"]["failure_modes"]["rates"]["continuation"] == 1.0
    assert result["metrics"]["variants"][fft(n=10).name]["failure_modes"]["rates"]["continuation"] == 0.0
    assert len(result["metrics"]["failure_modes_per_example"]["base"]) == 30


def test_other_examples_are_rejected() -> None:
    a = variant("base", np.zeros(30))
    b = VariantScores(name="x", spec=None, per_example=list(reversed(a.per_example)), predictions=a.predictions)
    with pytest.raises(ValueError, match="other examples"):
        compare_variants(variants=[a, b], eval_inputs=INPUTS, instruction="Summarize.", statistics=STATISTICS)


def lora_and_fft(gap: float, *, noise: float = 0.005) -> list[VariantScores]:
    """base, LoRA r=8 and FFT on the same examples; FFT scores `gap` above LoRA."""
    rng = np.random.default_rng(4)
    base = rng.uniform(0.1, 0.3, 30)
    tuned = base + 0.05 + rng.normal(0, noise, 30)
    full = tuned + gap + rng.normal(0, noise, 30)
    return [variant("base", base), variant(lora(8), tuned), variant(fft(), full)]


def run(variants: list[VariantScores], **statistics: object) -> dict:
    return compare_variants(
        variants=variants, eval_inputs=INPUTS, instruction="Summarize.", statistics={**STATISTICS, **statistics}
    )


def test_secondary_comparisons_are_holm_adjusted_in_one_family() -> None:
    result = run(lora_and_fft(0.02))
    records = result["metrics"]["comparisons"]
    assert {(c["a"], c["b"]) for c in records} == {
        ("base", "lora-r8-qv-n100"),
        ("base", "fft-n100"),
        ("lora-r8-qv-n100", "fft-n100"),
    }
    assert result["metrics"]["verdicts"] == []  # one rank: no rank question, no primary family
    raw = [c["p_value"] for c in records]
    order = np.argsort(raw)
    expected = np.maximum.accumulate(np.minimum(1, (3 - np.arange(3)) * np.array(raw)[order]))
    for position, index in enumerate(order):
        record = records[index]
        assert record["family"] == "secondary" and record["family_size"] == 3 and record["adjustment"] == "Holm"
        assert record["p_adjusted"] == pytest.approx(expected[position]) and record["p_adjusted"] >= record["p_value"]
        assert record["supported"] == (
            record["p_adjusted"] < 0.05 and not record["difference"]["low"] <= 0 <= record["difference"]["high"]
        )
        assert "Holm-adjusted p = " in record["reason"]


def test_quality_gap_is_judged_on_the_interval_with_the_right_sign() -> None:
    """The record is b - a = FFT - LoRA; LoRA is within the gap when its upper end < 0.03."""
    close = next(
        c for c in run(lora_and_fft(0.005))["metrics"]["comparisons"] if c["b"] == "fft-n100" and c["a"] != "base"
    )
    assert close["difference"]["mean"] == pytest.approx(0.005, abs=0.003) and close["difference"]["high"] < 0.03
    assert close["quality_gap"]["holds"] and close["quality_gap"]["max_gap"] == 0.03
    far = next(
        c for c in run(lora_and_fft(0.05))["metrics"]["comparisons"] if c["b"] == "fft-n100" and c["a"] != "base"
    )
    assert far["difference"]["low"] > 0.03 and not far["quality_gap"]["holds"]
    better = next(
        c for c in run(lora_and_fft(-0.05))["metrics"]["comparisons"] if c["b"] == "fft-n100" and c["a"] != "base"
    )
    assert better["quality_gap"]["holds"]  # LoRA ahead of FFT is within the gap
    # The point estimate is inside the gap but the interval reaches past it: not shown.
    noisy = next(
        c
        for c in run(lora_and_fft(0.02, noise=0.06))["metrics"]["comparisons"]
        if c["b"] == "fft-n100" and c["a"] != "base"
    )
    assert noisy["difference"]["mean"] < 0.03 < noisy["difference"]["high"] and not noisy["quality_gap"]["holds"]
    assert all("quality_gap" not in c for c in run(lora_and_fft(0.0))["metrics"]["comparisons"] if c["a"] == "base")


def test_quality_gap_either_order_and_only_lora_against_fft() -> None:
    interval = {"mean": 0.01, "low": -0.005, "high": 0.025, "confidence": 0.95}
    groups = group_specs([None, lora(8), lora(8, kind="dora"), fft(), fft(n=300)])
    assert quality_gap({"a": "lora-r8-qv-n100", "b": "fft-n100", "difference": interval}, groups=groups, max_gap=0.03)[
        "holds"
    ]
    assert not quality_gap(
        {"a": "lora-r8-qv-n100", "b": "fft-n100", "difference": interval}, groups=groups, max_gap=0.02
    )["holds"]
    # a = FFT, b = LoRA: the difference is LoRA - FFT; its lower end -0.025 is within -0.03.
    flipped = {"mean": -0.01, "low": -0.025, "high": 0.005, "confidence": 0.95}
    assert quality_gap({"a": "fft-n100", "b": "dora-r8-qv-n100", "difference": flipped}, groups=groups, max_gap=0.03)[
        "holds"
    ]
    assert quality_gap({"a": "base", "b": "fft-n100", "difference": interval}, groups=groups, max_gap=0.03) is None
    # LoRA trained on 100 examples against FFT trained on 300: not the same data, no gap.
    assert (
        quality_gap({"a": "lora-r8-qv-n100", "b": "fft-n300", "difference": interval}, groups=groups, max_gap=0.03)
        is None
    )


def test_several_lora_kinds_name_the_whole_group_and_share_a_primary_family() -> None:
    rng = np.random.default_rng(2)
    base = rng.uniform(0.1, 0.3, 30)
    variants = [variant("base", base)]
    for kind in ("lora", "dora", "rslora", "qlora"):
        for rank in (4, 8):
            variants.append(variant(lora(rank, n=16, kind=kind), base + rng.normal(0, 0.02, 30)))
    result = run(variants)
    texts = [v["text"] for v in result["metrics"]["verdicts"]]
    assert [t.split(":")[0] for t in texts] == [
        f"{k}-r8-qv-n16 vs {k}-r4-qv-n16" for k in ("lora", "dora", "rslora", "qlora")
    ]
    assert all(v["family_size"] == 4 and v["adjustment"] == "Holm" for v in result["metrics"]["verdicts"])
    assert all("Holm-adjusted p = " in t and "primary family of 4" in t for t in texts)
    # The rank pair asked as the primary question is not asked again among the secondary ones.
    assert (
        len([c for c in result["metrics"]["comparisons"] if (c["a"], c["b"]) == ("lora-r4-qv-n16", "lora-r8-qv-n16")])
        == 1
    )


def test_configured_primary_question() -> None:
    assert primary_questions(groups=group_specs([None, fft()]), primary=["base", "fft-n100"]) == [
        ("base", "fft-n100", "primary question (configured)")
    ]
    result = run(lora_and_fft(0.05), primary=["lora-r8-qv-n100", "fft-n100"])
    (primary,) = result["metrics"]["verdicts"]
    assert (primary["a"], primary["b"], primary["family"], primary["p_adjusted"]) == (
        "lora-r8-qv-n100",
        "fft-n100",
        "primary",
        primary["p_value"],
    )
    assert primary["supported"] and primary["text"].startswith("fft-n100 vs lora-r8-qv-n100")
    assert result["run"]["primary"] == [["lora-r8-qv-n100", "fft-n100"]]
    assert all(
        c["family"] == "secondary" and c["family_size"] == 2
        for c in result["metrics"]["comparisons"]
        if c is not primary and c["a"] == "base"
    )
    with pytest.raises(ValueError, match="unknown variant group"):
        run(lora_and_fft(0.05), primary=["lora-r8-qv-n100", "nope"])


def test_precisions_are_tested_against_full_in_the_secondary_family() -> None:
    variants = lora_and_fft(0.02)
    rng = np.random.default_rng(8)
    full_scores = np.array([row["values"]["rougeL"] for row in variants[0].per_example])
    precisions = [
        variant("full", full_scores),
        variant("int8", full_scores + rng.normal(0, 0.002, 30)),
        variant("int8-dynamic", full_scores - 0.1 + rng.normal(0, 0.01, 30)),
    ]
    result = compare_variants(
        variants=variants, precisions=precisions, eval_inputs=INPUTS, instruction="Summarize.", statistics=STATISTICS
    )
    tests = {c["b"]: c for c in result["metrics"]["precisions"]}
    assert set(tests) == {"int8", "int8-dynamic"} and all(c["a"] == "full" for c in tests.values())
    assert (
        tests["int8-dynamic"]["difference"]["mean"] == pytest.approx(-0.1, abs=0.01)
        and tests["int8-dynamic"]["supported"]
    )
    assert not tests["int8"]["supported"]
    # One family: three variant comparisons and two precision comparisons.
    assert {c["family_size"] for c in result["metrics"]["comparisons"] + result["metrics"]["precisions"]} == {5}
    assert result["run"]["precision_reference"] == "full"
    assert set(result["metrics"]["precision_variants"]) == {"full", "int8", "int8-dynamic"}
    json.dumps(result, allow_nan=False)  # comparisons.json: plain JSON types only
    no_full = compare_variants(
        variants=variants,
        precisions=precisions[1:],
        eval_inputs=INPUTS,
        instruction="Summarize.",
        statistics=STATISTICS,
    )
    assert no_full["metrics"]["precisions"] == [] and no_full["run"]["precision_reference"] is None


def test_every_comparison_carries_what_the_run_could_have_detected() -> None:
    """alpha / m in the Holm family (alpha for the lone primary question), the effect that matters
    (the quality gap for LoRA against FFT, statistics.effect_size otherwise), the detectable
    effect and the examples needed, consistent with each other."""
    variants = lora_and_fft(0.02, noise=0.03) + [variant(lora(32), np.linspace(0.1, 0.4, 30))]
    result = compare_variants(
        variants=variants,
        eval_inputs=INPUTS,
        instruction="Summarize.",
        statistics={**STATISTICS, "effect_size": 0.05},
        available_examples=400,
    )
    assert result["run"]["effect_size"] == 0.05 and result["run"]["power"] == 0.8
    assert result["run"]["available_examples"] == 400
    for record in result["metrics"]["comparisons"]:
        could = record["detectable"]
        lora_vs_fft = "fft-n100" in (record["a"], record["b"]) and "base" not in (record["a"], record["b"])
        assert could["effect"] == (0.03 if lora_vs_fft else 0.05)
        assert could["effect_source"] == ("statistics.max_quality_gap" if lora_vs_fft else "statistics.effect_size")
        if record["family"] == "primary":  # r8 against r32, tested alone
            assert could["alpha"] == 0.05 and "lone primary question" in could["alpha_rule"]
        else:
            assert could["alpha"] == pytest.approx(0.05 / record["family_size"]) and "Holm" in could["alpha_rule"]
        assert could["power"] == 0.8 and could["examples"] == 30 and could["available_examples"] == 400
        assert could["mde"] > 0 and could["adequate"] == (could["mde"] <= could["effect"])
        assert (could["needed_examples"] <= 30) == could["adequate"]
        if not record["supported"]:
            assert record["reason"].endswith(could["text"])
    json.dumps(result, allow_nan=False)


def test_not_supported_says_whether_the_run_could_have_detected_the_effect() -> None:
    """A well-powered run with no difference and an underpowered one read differently."""
    rng = np.random.default_rng(6)
    base = rng.uniform(0.1, 0.3, 30)
    quiet = [variant("base", base), variant(lora(8, n=10), base + rng.normal(0, 0.004, 30))]
    (powered,) = run(quiet)["metrics"]["comparisons"]
    assert not powered["supported"] and powered["detectable"]["adequate"]
    assert "would have been detected (80% power at alpha 0.05" in powered["reason"]
    assert "not detecting one does not show that the two are equal" in powered["reason"]
    noisy = [variant("base", base), variant(lora(8, n=10), base + rng.normal(0, 0.15, 30))]
    (short,) = compare_variants(
        variants=noisy, eval_inputs=INPUTS, instruction="Summarize.", statistics=STATISTICS, available_examples=100
    )["metrics"]["comparisons"]
    could = short["detectable"]
    assert not short["supported"] and not could["adequate"] and could["needed_examples"] > 100
    assert f"this run could not have detected a difference below {could['mde']:.4f}" in short["reason"]
    assert f"about {could['needed_examples']:,} examples would be needed to detect 0.03 (30 here" in short["reason"]
    assert "more than the 100 the evaluation split holds" in short["reason"]


def test_identical_outputs_say_the_spread_is_missing() -> None:
    base = np.random.default_rng(9).uniform(0.1, 0.3, 30)
    (record,) = run([variant("base", base), variant(lora(8, n=10), base)])["metrics"]["comparisons"]
    assert not record["supported"] and record["detectable"]["mde"] is None
    assert "the per-example differences are all equal (no spread)" in record["reason"]


def test_a_gap_not_shown_says_why() -> None:
    """FFT far ahead: the interval says LoRA trails by more; a noisy run: what it could show."""
    far = next(c for c in run(lora_and_fft(0.08))["metrics"]["comparisons"] if c["a"] == "lora-r8-qv-n100")
    assert not far["quality_gap"]["holds"]
    assert far["quality_gap"]["not_shown"].startswith("full fine-tuning leads by more than 0.03")
    noisy = next(
        c for c in run(lora_and_fft(0.02, noise=0.06))["metrics"]["comparisons"] if c["a"] == "lora-r8-qv-n100"
    )
    gap = noisy["quality_gap"]
    assert not gap["holds"] and gap["not_shown"] == gap["detectable"]["text"]
    assert gap["detectable"]["alpha"] == 0.05 and gap["detectable"]["effect"] == 0.03
    assert gap["not_shown"].startswith("even had LoRA matched full fine-tuning, this run could not have shown a margin")
    close = next(c for c in run(lora_and_fft(0.005))["metrics"]["comparisons"] if c["a"] == "lora-r8-qv-n100")
    assert close["quality_gap"]["holds"] and close["quality_gap"]["not_shown"] is None
