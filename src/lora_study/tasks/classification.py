"""Classification: the model answers with a label's verbaliser (`task.labels`: label ->
the words it is trained to answer with).

The prediction is the label whose verbaliser the model scores highest (the summed
log-probability of the verbaliser's tokens and the answer's end marker after the prompt),
so no answer is unparseable and the score does not depend on decoding. The free
generation is kept beside it, and how often it names a label (its parse rate) is reported.
Metrics: accuracy per example (so the paired machinery applies), F1 of `task.positive_label`
(or macro F1 without one) and the confusion matrix over the set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lora_study.core.config import TASK_DEFAULT_METRIC, TASK_METRICS, label_words_key
from lora_study.stats.inference import mcnemar_exact
from lora_study.tasks import Task, TaskError, failure_modes, mean_values
from lora_study.tasks.classification_metrics import (
    accuracy,
    confusion_matrix,
    f1_interval,
    f1_of,
    macro_f1,
    paired_f1_difference,
)

METRICS = TASK_METRICS["classification"]
FAILURE_LABELS = {"unparseable": "generation names no label", "empty": "empty generation"}


def verbalisers(settings: Mapping[str, Any]) -> dict[str, str]:
    """label -> verbaliser, in the config's order; an error when they cannot be told apart."""
    labels = settings.get("labels") or {}
    if len(labels) < 2:
        raise TaskError("task.labels: a classification task needs at least two labels (label: verbaliser)")
    normalised = [_normalise(str(v)) for v in labels.values()]
    if any(not v for v in normalised) or len(set(normalised)) != len(normalised):
        raise TaskError(f"task.labels: every verbaliser must be non-empty and distinct: {dict(labels)}")
    return {str(label): str(words) for label, words in labels.items()}


def target(*, example: Any, settings: Mapping[str, Any]) -> str:
    words = verbalisers(settings)
    if example.reference not in words:
        raise TaskError(f"example {example.id}: label {example.reference!r} is not in task.labels ({', '.join(words)})")
    return words[example.reference]


def parse_label(*, text: str, settings: Mapping[str, Any]) -> str | None:
    """The label a free generation names: the one verbaliser the answer starts with (case,
    punctuation and spacing aside), or None when it names none or several (a hedge such as
    "Conservative or Labour" names two labels: not a parse of the first)."""
    answer = _normalise(text)
    words = {label: _normalise(w) for label, w in verbalisers(settings).items()}
    found = [label for label, w in words.items() if answer == w or answer.startswith(w + " ")]
    if len(found) != 1:
        return None
    rest = f" {answer[len(words[found[0]]) :]} "
    return None if any(f" {w} " in rest for label, w in words.items() if label != found[0]) else found[0]


def extra_predictions(**kwargs: Any) -> list[dict[str, Any]]:
    """Each example's label scores and the highest-scoring label (needs the model)."""
    from lora_study.tasks.label_scoring import label_predictions  # torch: model jobs only

    return label_predictions(**kwargs, words=verbalisers(kwargs["settings"]))


def score(*, rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> dict[str, Any]:
    labels = list(verbalisers(settings))
    gold = [str(row["reference"]) for row in rows]
    unknown = sorted(set(gold) - set(labels))
    if unknown:
        raise TaskError(f"gold label(s) {', '.join(map(repr, unknown))} are not in task.labels ({', '.join(labels)})")
    predicted = [str(row["label"]) for row in rows]
    generated = [parse_label(text=row["prediction"], settings=settings) for row in rows]
    per_example = [
        {"id": row["id"], "gold": g, "predicted": p, "generated_label": q, "values": {"accuracy": float(p == g)}}
        for row, g, p, q in zip(rows, gold, predicted, generated, strict=True)
    ]
    parsed = [i for i, q in enumerate(generated) if q is not None]
    return {
        "run": {
            "labels": labels,
            "verbalisers": verbalisers(settings),
            "positive_label": settings.get("positive_label"),
            "prediction": "the label whose verbaliser (and end marker) has the highest summed log-probability",
            "examples": len(rows),
        },
        "metrics": {
            "mean_values": mean_values(per_example, METRICS),
            "accuracy": accuracy(gold=gold, predicted=predicted),
            "f1": _f1(gold=gold, predicted=predicted, labels=labels, settings=settings),
            "confusion": {
                "labels": labels,
                "rows": "gold",
                "columns": "predicted",
                "matrix": confusion_matrix(gold=gold, predicted=predicted, labels=labels),
            },
            "generation": {
                "parse_rate": len(parsed) / len(rows),
                # Over every example, an unparseable generation counting as wrong.
                "accuracy": sum(generated[i] == gold[i] for i in parsed) / len(rows),
                "agrees_with_scored_label": sum(generated[i] == predicted[i] for i in parsed) / len(rows),
            },
            "per_example": per_example,
        },
    }


def _f1(*, gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str], settings: Mapping[str, Any]) -> dict:
    positive = settings.get("positive_label")
    if positive is None:
        return {"kind": "macro", "value": macro_f1(gold=gold, predicted=predicted, labels=labels)}
    return {"kind": f"positive class {positive}", "value": f1_of(gold=gold, predicted=predicted, positive=positive)}


def failure_measure(
    *, row: Mapping[str, Any], source: str, instruction: str, settings: Mapping[str, Any]
) -> dict[str, float]:
    words = failure_modes.words(row["prediction"])
    return {
        "words": len(words),
        "empty": float(not words),
        "unparseable": float(parse_label(text=row["prediction"], settings=settings) is None),
    }


def failure_flags(measures: Mapping[str, float]) -> dict[str, bool]:
    return {"unparseable": bool(measures["unparseable"]), "empty": bool(measures["empty"])}


def variant_statistics(
    *, per_example: Sequence[Mapping[str, Any]], statistics: Mapping[str, Any], settings: Mapping[str, Any]
) -> dict[str, Any] | None:
    """F1's interval (F1 is not a mean of per-example values: its own bootstrap)."""
    positive = settings.get("positive_label")
    if positive is None:
        return None
    interval = f1_interval(
        gold=[r["gold"] for r in per_example],
        predicted=[r["predicted"] for r in per_example],
        positive=positive,
        resamples=statistics["resamples"],
        seed=statistics["seed"],
        confidence=statistics["confidence"],
    )
    return {"f1": interval}


def paired_statistics(
    *,
    a: Sequence[Sequence[Mapping[str, Any]]],
    b: Sequence[Sequence[Mapping[str, Any]]],
    statistics: Mapping[str, Any],
    seed: int,
    settings: Mapping[str, Any],
) -> dict[str, Any] | None:
    """McNemar's exact test on paired correctness and the paired F1 difference's interval,
    for single-seed sides (several seeds give no single prediction per example)."""
    if len(a) != 1 or len(b) != 1:
        return {"note": "McNemar and the F1 difference need one seed on each side; the paired accuracy test applies"}
    (rows_a,), (rows_b,) = a, b
    result: dict[str, Any] = {
        "mcnemar": mcnemar_exact(
            correct_a=[r["values"]["accuracy"] == 1.0 for r in rows_a],
            correct_b=[r["values"]["accuracy"] == 1.0 for r in rows_b],
        )
    }
    positive = settings.get("positive_label")
    if positive is not None:
        result["f1_difference"] = paired_f1_difference(
            gold=[r["gold"] for r in rows_a],
            predicted_a=[r["predicted"] for r in rows_a],
            predicted_b=[r["predicted"] for r in rows_b],
            positive=positive,
            resamples=statistics["resamples"],
            seed=seed,
            confidence=statistics["confidence"],
        )
    return result


# The config check refuses label words that come to the same key (or to none) with this one.
_normalise = label_words_key


TASK = Task(
    name="classification",
    metrics=METRICS,
    metric_labels={"accuracy": "accuracy"},
    default_metric=TASK_DEFAULT_METRIC["classification"],
    binary_metrics=("accuracy",),
    target=target,
    score=score,
    failure_measure=failure_measure,
    failure_flags=failure_flags,
    failure_labels=FAILURE_LABELS,
    failure_means={"words": "words generated"},
    failure_note=(
        "Rates: share of evaluation examples. The free generation (greedy, beside the scored label that counts) "
        "names no label when it does not start with exactly one label's words, or names another label after them. "
        "Measures per example are in results/compare/."
    ),
    extra_predictions=extra_predictions,
    variant_statistics=variant_statistics,
    paired_statistics=paired_statistics,
)
