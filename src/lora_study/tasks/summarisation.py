"""Summarisation: the model writes a summary of the input; ROUGE F-measures per example."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lora_study import failure_modes
from lora_study.rouge import ROUGE_TYPES, rouge_result
from lora_study.tasks import Task, mean_values

LABELS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
FAILURE_LABELS = {
    "continuation": "continuation",
    "degenerate": "degenerate",
    "instruction_echo": "instruction echo",
    "too_short": "too short",
    "too_long": "too long",
}


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
    metrics=ROUGE_TYPES,
    metric_labels=LABELS,
    default_metric="rougeL",
    target=target,
    score=score,
    failure_measure=failure_measure,
    failure_flags=failure_modes.flags,
    failure_labels=FAILURE_LABELS,
)
