"""Variant comparisons: groups by seed, default pairs, verdict text, failure summaries."""

from __future__ import annotations

import numpy as np
import pytest

from lora_study.compare import VariantScores, compare_variants, default_pairs, group_of, rank_questions
from lora_study.rouge import ROUGE_TYPES

STATISTICS = {"metric": "rougeL", "resamples": 2000, "seed": 0, "confidence": 0.95, "pairs": []}
IDS = [f"e{i}" for i in range(30)]
INPUTS = {i: f"The input text number {i} describes adapters in detail and more detail." for i in IDS}


def variant(name: str, values: np.ndarray, prediction: str = "A short summary of the adapters.") -> VariantScores:
    per_example = [{"id": i, **{k: {"fmeasure": float(v), "precision": float(v), "recall": float(v)} for k in ROUGE_TYPES}} for i, v in zip(IDS, values)]
    predictions = [{"id": i, "prediction": prediction, "reference": "Adapters are summarised here."} for i in IDS]
    return VariantScores(name=name, per_example=per_example, predictions=predictions)


def test_groups_and_default_pairs() -> None:
    assert group_of("lora-r8-qv-n100-s3") == "lora-r8-qv-n100" and group_of("base") == "base"
    groups = ["base", "lora-r8-qv-n100", "lora-r32-qv-n100", "lora-r16-qv-n100", "fft-n100", "lora-r8-qv-n300"]
    pairs = [(a, b) for a, b, _ in default_pairs(groups)]
    assert ("lora-r8-qv-n100", "lora-r16-qv-n100") in pairs and ("lora-r16-qv-n100", "lora-r32-qv-n100") in pairs
    assert ("lora-r8-qv-n100", "fft-n100") in pairs and not any(b == "fft-n300" for _, b in pairs)
    assert rank_questions(groups) == [("lora-r8-qv-n100", "lora-r32-qv-n100")]


def test_rank_verdict_uses_all_seeds_and_reads_plainly() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.3, 30)
    variants = [variant("base", base)]
    variants += [variant(f"lora-r8-qv-n100-s{s}", base + 0.05 + rng.normal(0, 0.002, 30)) for s in (1, 2, 3)]
    variants += [variant(f"lora-r32-qv-n100-s{s}", base + 0.05 + shift) for s, shift in ((1, -0.04), (2, 0.0), (3, 0.04))]
    result = compare_variants(variants=variants, eval_inputs=INPUTS, instruction="Summarize.", statistics=STATISTICS)
    assert result["groups"]["lora-r32-qv-n100"]["seeds"] == 3
    (rank,) = result["verdicts"]
    assert (rank["a"], rank["b"]) == ("lora-r8-qv-n100", "lora-r32-qv-n100")
    assert rank["text"].startswith("r=32 vs r=8 (qv-n100): rougeL F difference")
    assert "over 3 seeds: not supported" in rank["text"]
    against_base = {c["b"]: c for c in result["comparisons"] if c["a"] == "base"}
    assert against_base["lora-r8-qv-n100"]["supported"]
    assert against_base["lora-r8-qv-n100"]["difference"]["mean"] == pytest.approx(0.05, abs=0.002)


def test_results_are_identical_across_runs() -> None:
    rng = np.random.default_rng(1)
    variants = [variant("base", rng.uniform(0, 1, 30)), variant("lora-r8-qv-n10-s1", rng.uniform(0, 1, 30))]
    first = compare_variants(variants=variants, eval_inputs=INPUTS, instruction="Summarize.", statistics=STATISTICS)
    second = compare_variants(variants=variants, eval_inputs=INPUTS, instruction="Summarize.", statistics=STATISTICS)
    assert first == second


def test_failure_modes_per_variant() -> None:
    values = np.full(30, 0.2)
    copying = VariantScores(
        name="base",
        per_example=variant("base", values).per_example,
        predictions=[{"id": i, "prediction": INPUTS[i], "reference": "Adapters are summarised."} for i in IDS],
    )
    result = compare_variants(variants=[copying, variant("fft-n10-s1", values)], eval_inputs=INPUTS, instruction="Summarize.", statistics=STATISTICS)
    assert result["variants"]["base"]["failure_modes"]["rates"]["continuation"] == 1.0
    assert result["variants"]["fft-n10-s1"]["failure_modes"]["rates"]["continuation"] == 0.0
    assert len(result["failure_modes_per_example"]["base"]) == 30


def test_other_examples_are_rejected() -> None:
    a = variant("base", np.zeros(30))
    b = VariantScores(name="x", per_example=list(reversed(a.per_example)), predictions=a.predictions)
    with pytest.raises(ValueError, match="other examples"):
        compare_variants(variants=[a, b], eval_inputs=INPUTS, instruction="Summarize.", statistics=STATISTICS)
