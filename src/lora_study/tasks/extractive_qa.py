"""Extractive QA with unanswerable questions (SQuAD v2): the model answers with a span of
the context, or with the abstention answer (`task.abstain`) it is trained to give when the
context holds none. Scored by the official SQuAD v2 exact match and F1 (its answer
normalisation, the maximum over gold answers, an unanswerable question's gold being the
empty answer), overall and split into answerable and unanswerable questions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lora_study.core.config import TASK_DEFAULT_METRIC, TASK_METRICS
from lora_study.tasks import Task, TaskError, failure_modes, mean_values
from lora_study.tasks.squad_v2 import normalize_answer, score_question, squad_v2_summary

METRICS = TASK_METRICS["extractive_qa"]
FAILURE_LABELS = {
    "not_in_context": "answer not in the context",
    "abstained_answerable": "abstained on an answerable question",
    "answered_unanswerable": "answered an unanswerable question",
}


def abstain_answer(settings: Mapping[str, Any]) -> str:
    abstain = settings.get("abstain")
    if not isinstance(abstain, str) or not normalize_answer(abstain):
        raise TaskError("task.abstain: extractive QA needs an abstention answer with words in it, e.g. unanswerable")
    return abstain


def target(*, example: Any, settings: Mapping[str, Any]) -> str:
    if example.answers is None:
        raise TaskError(f"example {example.id} has no `answers`: is this an extractive QA dataset?")
    return example.answers[0] if example.answers else abstain_answer(settings)


def prediction_fields(example: Any) -> dict[str, Any]:
    return {"answers": list(example.answers or [])}


def score(*, rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> dict[str, Any]:
    abstain = abstain_answer(settings)
    per_example = []
    for row in rows:
        question = score_question(prediction=row["prediction"], answers=row["answers"], abstain=abstain)
        per_example.append(
            {
                "id": row["id"],
                "answerable": question["answerable"],
                "abstained": question["abstained"],
                "values": {"f1": question["f1"], "exact": question["exact"]},
            }
        )
    flat = [{**row["values"], "answerable": row["answerable"], "abstained": row["abstained"]} for row in per_example]
    # A cut context may have lost the answer's span: the model cannot answer what it was not
    # shown, so how many answerable questions were cut is reported beside the scores.
    cut = sum(bool(row.get("input_truncated")) and q["answerable"] for row, q in zip(rows, flat, strict=True))
    return {
        "run": {
            "abstain": abstain,
            "metric": "SQuAD v2 exact match and F1 (official normalisation, max over gold answers)",
            "examples": len(rows),
        },
        "metrics": {
            "mean_values": mean_values(per_example, METRICS),
            "squad_v2": squad_v2_summary(per_question=flat),
            "answerable_with_cut_context": cut,
            "per_example": per_example,
        },
    }


def failure_measure(
    *, row: Mapping[str, Any], source: str, instruction: str, settings: Mapping[str, Any]
) -> dict[str, float]:
    answer = normalize_answer(row["prediction"])
    abstained = not answer or answer == normalize_answer(abstain_answer(settings))
    answerable = any(normalize_answer(a) for a in row["answers"])
    return {
        "words": len(failure_modes.words(row["prediction"])),
        "abstained": float(abstained),
        # An extractive answer is a span of the context; anything else was made up.
        "not_in_context": float(not abstained and answer not in normalize_answer(source)),
        "abstained_answerable": float(abstained and answerable),
        "answered_unanswerable": float(not abstained and not answerable),
    }


def failure_flags(measures: Mapping[str, float]) -> dict[str, bool]:
    return {key: bool(measures[key]) for key in FAILURE_LABELS}


TASK = Task(
    name="extractive_qa",
    metrics=METRICS,
    metric_labels={"f1": "F1", "exact": "exact match"},
    default_metric=TASK_DEFAULT_METRIC["extractive_qa"],
    binary_metrics=("exact",),
    target=target,
    score=score,
    failure_measure=failure_measure,
    failure_flags=failure_flags,
    failure_labels=FAILURE_LABELS,
    failure_means={"words": "answer words", "abstained": "abstention rate"},
    failure_note=(
        "Rates: share of evaluation questions. Not in the context: an answer (not the abstention) that is not a "
        "span of the context after SQuAD normalisation, i.e. made up. Measures per example are in results/compare/."
    ),
    prediction_fields=prediction_fields,
)
