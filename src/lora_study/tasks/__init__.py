"""The study's tasks: what a prompt asks, what a model is trained to answer, and how its
answers are scored. Every stage (training, evaluation, quantisation, drift, serving,
statistics, report) goes through a `Task`, so a task's specifics live in its own module:

- `summarisation` (ROUGE), the default;
- `classification` (the label whose verbaliser the model scores highest; accuracy, F1);
- `extractive_qa` (SQuAD v2 exact match and F1, with a trained abstention answer).

Torch-free: scoring, statistics and the report import this package; the one step that needs
the model (scoring each label's verbaliser) is imported by the classification task only
when a model job asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TASK_NAMES = ("summarisation", "classification", "extractive_qa")

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Task:
    """One task's behaviour. `settings` everywhere is the config's `task` block.

    - `metrics`: per-example metrics whose means are the task's scores, in the report's
      order; each one can be the statistics' `metric`; `default_metric` when it is null.
    - `target(example, settings)`: the text a model is trained to produce.
    - `prediction_fields(example)`: what a predictions row carries besides the prediction.
    - `extra_predictions(model, tokenizer, builder, examples, prompts, settings, batch_size)`:
      more per-row results that need the model (a label's score), merged into each row.
    - `score(rows, settings)`: scores.json's task part: `run` and `metrics`, whose
      `per_example` rows each hold `values` (metric -> value) and `mean_values`.
    - `failure_measure(row, source, instruction, settings)` and `failure_flags(measures)`:
      the failure modes of one prediction, and which it shows (`failure_labels` names them;
      the report shows their rates, the means of `failure_means`, and `failure_note`).
    - `variant_statistics(scores, statistics)` and `paired_statistics(a, b, statistics, seed)`:
      the task's own statistics beside the per-example machinery (an interval for F1,
      McNemar's test), from scores.json's per-example rows; None where there are none.
    - `metric_notes`: what the report says beside a metric's numbers wherever it shows them
      (rougeLsum: which sentence splitter, and whose numbers it is not comparable with).
    """

    name: str
    metrics: tuple[str, ...]
    metric_labels: Mapping[str, str]
    default_metric: str
    binary_metrics: tuple[str, ...]  # metrics whose per-example values are 0 or 1 (a proportion's interval)
    target: Callable[..., str]
    score: Callable[..., dict[str, Any]]
    failure_measure: Callable[..., dict[str, float]]
    failure_flags: Callable[[Mapping[str, float]], dict[str, bool]]
    failure_labels: Mapping[str, str]
    failure_means: Mapping[str, str]  # failure measures whose means the report shows -> column label
    failure_note: str  # how the report explains the failure-mode table
    prediction_fields: Callable[..., dict[str, Any]] = field(default=lambda example: {})
    extra_predictions: Callable[..., list[dict[str, Any]]] | None = None
    variant_statistics: Callable[..., dict[str, Any] | None] = field(default=lambda **_: None)
    paired_statistics: Callable[..., dict[str, Any] | None] = field(default=lambda **_: None)
    metric_notes: Mapping[str, str] = field(default_factory=dict)

    def notes_for(self, metrics: Iterable[str]) -> str:
        """The `metric_notes` of these metrics, joined ("" when none has one)."""
        return "; ".join(self.metric_notes[kind] for kind in dict.fromkeys(metrics) if kind in self.metric_notes)


class TaskError(ValueError):
    """The task is configured in a way it cannot run; the message names the config key."""


def task_named(name: str) -> Task:
    """The task called `name` (config key `task.name`)."""
    # Imported here: each module imports this one for `Task`.
    from lora_study.tasks import classification, extractive_qa, summarisation

    tasks = {
        "summarisation": summarisation.TASK,
        "classification": classification.TASK,
        "extractive_qa": extractive_qa.TASK,
    }
    if name not in tasks:
        raise TaskError(f"task.name: unknown task {name!r}; known: {', '.join(TASK_NAMES)}")
    return tasks[name]


def task_of(config: Mapping[str, Any]) -> tuple[Task, dict[str, Any]]:
    """The configured task and its settings (the `task` block; summarisation when absent)."""
    settings = dict(config.get("task") or {"name": "summarisation"})
    return task_named(settings["name"]), settings


def metric_of(*, task: Task, statistics: Mapping[str, Any]) -> str:
    """The metric comparisons and verdicts use: `statistics.metric`, or the task's default."""
    metric = statistics.get("metric") or task.default_metric
    if metric not in task.metrics:
        raise TaskError(
            f"statistics.metric: {metric!r} is not a metric of the {task.name} task; use one of "
            f"{', '.join(task.metrics)} (or null for {task.default_metric})"
        )
    return metric


def mean_values(per_example: Sequence[Row], metrics: Sequence[str]) -> dict[str, float]:
    """The mean over examples of each metric's per-example value."""
    if not per_example:
        raise ValueError("no examples to average")
    return {m: sum(float(row["values"][m]) for row in per_example) / len(per_example) for m in metrics}


def summarise_failures(*, task: Task, per_example: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Per-variant means of every failure measure and the share of examples with each flag."""
    if not per_example:
        raise ValueError("no examples to summarise")
    count = len(per_example)
    means = {key: sum(m[key] for m in per_example) / count for key in per_example[0]}
    flagged = [task.failure_flags(m) for m in per_example]
    rates = {key: sum(f[key] for f in flagged) / count for key in flagged[0]}
    return {"means": means, "rates": rates, "examples": count}
