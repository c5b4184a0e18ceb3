"""scores.json: one variant's predictions scored by the configured task (torch-free, so the
scoring job starts in a second)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lora_study.tasks import task_of


def predictions_result(
    *,
    rows: Sequence[Mapping[str, Any]],
    task: Mapping[str, Any] | None,
    variant: str,
    spec: Mapping[str, Any] | None,
    predictions_file: str,
) -> dict[str, Any]:
    """scores.json's `run` and `metrics` for predictions.jsonl rows: which variant, task and
    file, then the task's own result (`metrics.per_example[i].values`, `metrics.mean_values`).
    `task`: the config's task block (None: summarisation); `spec`: the trained variant's
    (VariantSpec.to_dict()), None for the base model or a precision."""
    chosen, settings = task_of({"task": task} if task else {})
    scored = chosen.score(rows=rows, settings=settings)
    return {
        "run": {
            "variant": variant,
            "spec": None if spec is None else dict(spec),
            "predictions_file": predictions_file,
            "task": chosen.name,
            "metrics": list(chosen.metrics),
            **scored["run"],
        },
        "metrics": scored["metrics"],
    }
