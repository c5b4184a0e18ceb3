"""The task stage's sections: what only a classification or extractive-QA study has (F1 with
its interval, confusion matrices, McNemar's test beside the paired accuracy test; SQuAD v2's
answerable and unanswerable questions apart). Summarisation's own tables are the quality and
failure-mode sections every task has, so it adds none here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lora_study.core.results import read_result
from lora_study.report.inputs import Files, Stage, by_variant, one
from lora_study.report.page import Section, escape, table

Scores = Mapping[str, Mapping[str, Any]]  # variant -> its scores.json


def sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    comparisons = read_result(one(files, "comparisons"))
    scores = by_variant(files["scores"])
    builder = SECTIONS.get(comparisons["run"].get("task", "summarisation"))
    return builder(scores=scores, comparisons=comparisons) if builder else []


def _interval(value: Mapping[str, Any] | None, *, signed: bool = False) -> str:
    if not value or value.get("low") is None:
        return "n/a"
    form = "{:+.3f}" if signed else "{:.3f}"
    return f"{form.format(value['mean'])} [{form.format(value['low'])}, {form.format(value['high'])}]"


def _number(value: float | None, form: str = "{:.3f}") -> str:
    return "n/a" if value is None else form.format(value)


def classification_sections(*, scores: Scores, comparisons: Mapping[str, Any]) -> list[Section]:
    variants, run = comparisons["metrics"]["variants"], comparisons["run"]
    first = next(iter(scores.values()))
    positive = first["run"]["positive_label"]
    rows = []
    for name, result in scores.items():
        metrics, own = result["metrics"], variants.get(name, {}).get("task_statistics") or {}
        rows.append(
            [
                name,
                _interval(variants.get(name, {}).get("intervals", {}).get("accuracy")),
                _interval(own.get("f1")) if own.get("f1") else _number(metrics["f1"]["value"]),
                f"{metrics['generation']['parse_rate']:.0%}",
                _number(metrics["generation"]["accuracy"]),
            ]
        )
    confidence = f"{run['confidence']:.0%}"
    f1_name = f"F1 ({positive})" if positive else "macro F1"
    summary = table(
        [
            "variant",
            f"accuracy [{confidence}]",
            f"{f1_name} [{confidence}]",
            "generation parse rate",
            "generation accuracy",
        ],
        rows,
    ) + (
        f"<p class=muted>Accuracy: the label whose answer ({escape(_verbalisers(first))}) the model scores highest, "
        "mean over examples, with the Wilson score interval the comparisons use. F1: "
        "percentile bootstrap over examples (F1 is a ratio over the whole set, not a mean). Generation: the free, "
        "greedy answer beside it; parse rate is the share that names exactly one label, and its accuracy counts "
        "an unparseable answer as wrong.</p>"
    )
    matrices = "".join(_confusion(name, result["metrics"]["confusion"]) for name, result in scores.items())
    return [
        Section("classification", "Classification: accuracy, F1 and the free generation", summary),
        Section("confusion", "Confusion matrices (rows: gold label, columns: predicted)", matrices),
        Section("paired-labels", "Paired label tests: McNemar beside the paired accuracy test", _paired(comparisons)),
    ]


def _verbalisers(scores: Mapping[str, Any]) -> str:
    return ", ".join(f"{label} → {words!r}" for label, words in scores["run"]["verbalisers"].items())


def _confusion(name: str, confusion: Mapping[str, Any]) -> str:
    labels = confusion["labels"]
    rows = [[f"gold {label}", *row] for label, row in zip(labels, confusion["matrix"], strict=True)]
    return f"<h3>{escape(name)}</h3>" + table(["", *(f"predicted {label}" for label in labels)], rows)


def _paired(comparisons: Mapping[str, Any]) -> str:
    rows = []
    for c in comparisons["metrics"]["comparisons"]:
        own = c.get("task_statistics") or {}
        mcnemar = own.get("mcnemar")
        rows.append(
            [
                f"{c['b']} − {c['a']}",
                _interval(c["difference"], signed=True),
                f"{c['p_adjusted']:.3g}",
                "yes" if c["supported"] else "no",
                f"{mcnemar['a_only_correct']} / {mcnemar['b_only_correct']}" if mcnemar else "n/a",
                f"{mcnemar['p_value']:.3g}" if mcnemar else escape(own.get("note", "n/a")),
                _interval(own.get("f1_difference"), signed=True),
            ]
        )
    return table(
        [
            "comparison",
            "accuracy difference [interval]",
            "p (decision)",
            "supported",
            "only a right / only b right",
            "McNemar exact p",
            "F1 difference [interval]",
        ],
        rows,
    ) + (
        "<p class=muted>The decision (supported) is the paired accuracy test of the comparisons section, Holm-"
        "corrected in its family. McNemar's exact test (two-sided binomial on the examples only one side gets "
        "right) is shown beside it, unadjusted, as the classical check for paired accuracy.</p>"
    )


def extractive_qa_sections(*, scores: Scores, comparisons: Mapping[str, Any]) -> list[Section]:
    variants = comparisons["metrics"]["variants"]
    rows = []
    for name, result in scores.items():
        squad, intervals = result["metrics"]["squad_v2"], variants.get(name, {}).get("intervals", {})
        has, no = squad["answerable"], squad["unanswerable"]
        rows.append(
            [
                name,
                _interval(intervals.get("f1")),
                _interval(intervals.get("exact")),
                f"{_number(has['f1'])} / {_number(has['exact'])} ({has['count']})",
                f"{_number(no['f1'])} / {_number(no['exact'])} ({no['count']})",
                _number(has["abstained"], "{:.0%}"),
                _number(no["abstained"], "{:.0%}"),
                result["metrics"]["answerable_with_cut_context"],
            ]
        )
    first = next(iter(scores.values()))
    body = table(
        [
            "variant",
            "F1 [interval]",
            "exact [interval]",
            "answerable F1 / exact (n)",
            "unanswerable F1 / exact (n)",
            "abstained, answerable",
            "abstained, unanswerable",
            "answerable, context cut",
        ],
        rows,
    ) + (
        f"<p class=muted>Official SQuAD v2 scoring. The model abstains with {escape(first['run']['abstain'])!r}, "
        "which scores as the empty answer: right on an unanswerable question, wrong on an answerable one. The "
        "overall score mixes answering and knowing when not to; the split says which changed. Context cut: "
        "answerable questions whose context was cut to fit prompt.max_input_tokens, which may have lost "
        "the answer (the model is still scored on it).</p>"
    )
    return [Section("extractive-qa", "Extractive QA: answerable and unanswerable questions", body)]


SECTIONS: dict[str, Callable[..., list[Section]]] = {
    "classification": classification_sections,
    "extractive_qa": extractive_qa_sections,
}

STAGE = Stage(name="task", inputs=("scores", "comparisons"), sections=sections)
