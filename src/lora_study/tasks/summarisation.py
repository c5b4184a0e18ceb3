"""Summarisation: the model writes a summary of the input; ROUGE F-measures per example."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lora_study.core.config import TASK_DEFAULT_METRIC, TASK_METRICS
from lora_study.tasks import Task, failure_modes, mean_values
from lora_study.tasks.rouge import ROUGE_LSUM_NOTE, ROUGE_TYPES, rouge_result

LABELS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
FAILURE_LABELS = {
    "continuation": "continues/copies input",
    "degenerate": "degenerate (empty/loop)",
    "instruction_echo": "echoes instruction",
    "too_short": "< 0.5x reference length",
    "too_long": "> 2x reference length",
}
FAILURE_MEANS = {
    "copy_span_share": "copy span share",
    "novel_bigram_share": "novel bigrams",
    "repetition_rate": "repetition",
    "length_ratio": "length / reference",
}
FAILURE_NOTE = (
    "Rates: share of evaluation examples flagged. Continuation: the prediction starts with the input's first 8+ "
    "words or a verbatim span of the input covers half of it. Copy span share: longest verbatim input span / "
    "prediction length. Novel bigrams: share of the prediction's word bigrams not in the input (1 = fully "
    "abstractive). Measures per example are in results/compare/."
)


def target(*, example: Any, settings: Mapping[str, Any]) -> str:
    return example.reference


def score(*, rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> dict[str, Any]:
    """rouge.py's result, with each example's F-measures as its `values` (what statistics use)."""
    result = rouge_result(rows=rows, variant="", spec=None, predictions_file="")
    per_example = [
        {**row, "values": {kind: row[kind]["fmeasure"] for kind in ROUGE_TYPES}}
        for row in result["metrics"]["per_example"]
    ]
    run = {key: value for key, value in result["run"].items() if key not in ("variant", "spec", "predictions_file")}
    return {
        "run": run,
        "metrics": {
            **result["metrics"],
            "per_example": per_example,
            "mean_values": mean_values(per_example, ROUGE_TYPES),
        },
    }


def failure_measure(
    *, row: Mapping[str, Any], source: str, instruction: str, settings: Mapping[str, Any]
) -> dict[str, float]:
    return failure_modes.measure(
        prediction=row["prediction"], source=source, reference=row["reference"], instruction=instruction
    )


TASK = Task(
    name="summarisation",
    metrics=TASK_METRICS["summarisation"],
    metric_labels=LABELS,
    default_metric=TASK_DEFAULT_METRIC["summarisation"],
    binary_metrics=(),
    target=target,
    score=score,
    failure_measure=failure_measure,
    failure_flags=failure_modes.flags,
    failure_labels=FAILURE_LABELS,
    failure_means=FAILURE_MEANS,
    failure_note=FAILURE_NOTE,
    metric_notes={"rougeLsum": ROUGE_LSUM_NOTE},
)
