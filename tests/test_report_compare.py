"""The comparison sections show raw and adjusted p, families, the quality gap and what
"supported" means."""

from __future__ import annotations

import numpy as np

from lora_study.compare import VariantScores, compare_variants
from lora_study.grid import VariantSpec
from lora_study.report.compare import comparison_sections
from lora_study.rouge import ROUGE_TYPES

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
        variant(
            VariantSpec(kind="fft", train_size=100, seed=1, learning_rate=1e-5), base + 0.08 + rng.normal(0, 0.02, 20)
        ),
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
