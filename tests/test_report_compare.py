"""The comparison sections show raw and adjusted p, families, the quality gap and what
"supported" means."""

from __future__ import annotations

import numpy as np

from lora_study.core.grid import VariantSpec
from lora_study.report.compare import comparison_sections
from lora_study.report.page import escape
from lora_study.stages.compare.compare import VariantScores, compare_variants
from lora_study.tasks.rouge import ROUGE_LSUM_NOTE, ROUGE_TYPES

IDS = [f"e{i}" for i in range(20)]
STATISTICS = {
    "metric": "rougeL",
    "resamples": 1000,
    "seed": 0,
    "confidence": 0.95,
    "pairs": [],
    "primary": None,
    "max_quality_gap": 0.03,
}


FFT = VariantSpec(kind="fft", train_size=100, seed=1, learning_rate=1e-5)


def lora(rank: int) -> VariantSpec:
    return VariantSpec(
        kind="lora", train_size=100, seed=1, learning_rate=1e-3, rank=rank, alpha=2.0 * rank, targets="qv"
    )


def variant(spec: VariantSpec | None, values: np.ndarray) -> VariantScores:
    per_example = [{"id": i, "values": {k: float(v) for k in ROUGE_TYPES}} for i, v in zip(IDS, values, strict=True)]
    predictions = [{"id": i, "prediction": "A summary.", "reference": "The reference."} for i in IDS]
    return VariantScores(
        name="base" if spec is None else spec.name, spec=spec, per_example=per_example, predictions=predictions
    )


def comparisons() -> dict:
    """comparisons.json as the rule writes it: `run`, then everything else as `metrics`."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.3, 20)
    variants = [
        variant(None, base),
        variant(lora(8), base + 0.01 + rng.normal(0, 0.02, 20)),
        variant(lora(32), base + 0.02 + rng.normal(0, 0.02, 20)),
        variant(FFT, base + 0.08 + rng.normal(0, 0.02, 20)),
    ]
    inputs = {i: "An input text about adapters." for i in IDS}
    return {
        **compare_variants(variants=variants, eval_inputs=inputs, instruction="Summarize.", statistics=STATISTICS),
        "meta": {},
    }


def test_sections_show_raw_and_adjusted_p_and_the_families() -> None:
    result = comparisons()
    verdicts, differences, _, _ = comparison_sections(result)
    assert "lora-r32-qv-n100 vs lora-r8-qv-n100" in verdicts.body
    assert "Supported means" in verdicts.body and "Holm-adjusted" in verdicts.body
    for record in result["metrics"]["comparisons"]:
        assert f"{record['p_value']:.3g}" in differences.body
        if record["adjustment"] == "Holm":
            assert f"{record['p_adjusted']:.3g}" in differences.body
    assert "p raw" in differences.body and "p Holm" in differences.body
    assert "primary (1)" in differences.body and "secondary (5)" in differences.body
    assert "LoRA within gap of FFT" in differences.body and "not shown" in differences.body  # FFT leads by 0.07
    assert "<figure><svg" in differences.body


def test_every_not_supported_and_not_shown_says_what_the_run_could_have_detected() -> None:
    """In the comparison section and in the summary: no bare "not supported" or "not shown"."""
    from lora_study.report import summary

    result = comparisons()
    records = result["metrics"]["comparisons"]
    _, differences, _, _ = comparison_sections(result)
    assert "detectable at 80% power (alpha)" in differences.body and "examples needed" in differences.body
    assert "statistics.effect_size" in differences.body
    for record in records:
        could = record["detectable"]
        assert f"{could['mde']:.4f} ({could['alpha']:.3g})" in differences.body
        if not record["supported"]:
            assert escape(could["text"]) in differences.body
        gap = record.get("quality_gap")
        if gap and not gap["holds"]:
            assert f"not shown: {escape(gap['not_shown'])}" in differences.body
    page = (
        summary._primary(result)
        + summary._against_base(result)
        + summary._lora_against_fft(result, specs=[lora(8).to_dict(), lora(32).to_dict(), FFT.to_dict()])
    )
    assert "<td>not supported</td>" not in page and "<td>not shown</td>" not in page
    for record in records:
        if not record["supported"]:
            assert f"not supported: {escape(record['detectable']['text'])}" in page
    # Made to fail: a noisy run of 20 examples cannot detect 3 points and says how many it would need.
    rng = np.random.default_rng(3)
    base = rng.uniform(0.1, 0.3, 20)
    noisy = compare_variants(
        variants=[variant(None, base), variant(lora(8), base + rng.normal(0, 0.1, 20))],
        eval_inputs={i: "An input." for i in IDS},
        instruction="Summarize.",
        statistics=STATISTICS,
    )
    (record,) = noisy["metrics"]["comparisons"]
    assert not record["supported"]
    assert "this run could not have detected a difference below" in summary._against_base(noisy)
    assert "examples would be needed to detect 0.03" in summary._against_base(noisy)


def test_differences_in_rouge_lsum_name_its_sentence_splitter() -> None:
    """rougeLsum moves with the sentence splitter, and ours is not Hugging Face's (nltk punkt)."""
    plain = comparisons()
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.3, 20)
    lsum = compare_variants(
        variants=[variant(None, base), variant(lora(8), base + 0.05 + rng.normal(0, 0.02, 20))],
        eval_inputs={i: "An input." for i in IDS},
        instruction="Summarize.",
        statistics={**STATISTICS, "metric": "rougeLsum"},
    )
    _, differences, _, _ = comparison_sections(lsum)
    assert "ROUGE-Lsum" in differences.title and escape(ROUGE_LSUM_NOTE) in differences.body
    _, differences, _, _ = comparison_sections(plain)  # ROUGE-L: no splitter, no note
    assert "ROUGE-L," in differences.title and "nltk" not in differences.body
