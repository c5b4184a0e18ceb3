"""The foundation stage's sections: configuration, model, data, quality (the task's metrics),
generation and example predictions, and the provenance that closes the page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from lora_study.core.io import MANIFEST, read_json, read_jsonl
from lora_study.core.provenance import package_versions
from lora_study.core.results import read_result
from lora_study.report.inputs import Files, Stage, by_variant, one, recorded_files, same_variants
from lora_study.report.page import LANE_TIMES, Section, escape, table
from lora_study.tasks import task_named

FOLD_INPUT_CHARS = 700  # a longer input folds away behind its beginning
INPUT_PREVIEW_CHARS = 300


@dataclass(frozen=True)
class VariantResult:
    """One evaluated variant: its scores file, predictions and generation info."""

    name: str
    scores: Mapping[str, Any]
    predictions: Sequence[Mapping[str, Any]]
    generation: Mapping[str, Any]


def load_variants(files: Files) -> list[VariantResult]:
    """The evaluated variants in input order; predictions matched by the file each scores.json scored."""
    scores = by_variant(files["scores"])
    generation = by_variant(files["generation"])
    same_variants(scores=scores, generation=generation)
    predictions = recorded_files(
        paths=files["predictions"],
        recorded={name: r["run"]["predictions_file"] for name, r in scores.items()},
        name="predictions",
    )
    return [
        VariantResult(
            name=name, scores=scores[name], predictions=read_jsonl(predictions[name]), generation=generation[name]
        )
        for name in scores
    ]


def sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    comparisons = read_result(one(files, "comparisons"))
    return foundation_sections(
        config=config,
        manifest=read_json(one(files, "model") / MANIFEST),
        subsets=read_result(one(files, "subsets")),
        variants=load_variants(files),
        eval_examples=read_jsonl(one(files, "eval")),
        intervals={name: v["intervals"] for name, v in comparisons["metrics"]["variants"].items()},
    )


STAGE = Stage(
    name="foundation",
    inputs=("model", "subsets", "eval", "scores", "predictions", "generation", "comparisons"),
    sections=sections,
)


def foundation_sections(
    *,
    config: Mapping[str, Any],
    manifest: Mapping[str, Any],
    subsets: Mapping[str, Any],
    variants: Sequence[VariantResult],
    eval_examples: Sequence[Mapping[str, Any]],
    intervals: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> list[Section]:
    """Configuration, model, data, ROUGE (with bootstrap intervals where given: variant ->
    ROUGE type -> {mean, low, high, confidence}), generation and example predictions."""
    return [
        Section("configuration", "Configuration", _config_summary(config)),
        Section("model", "Model", _model_section(manifest)),
        Section("data", "Data", _data_section(subsets)),
        Section("quality", f"Quality: {_quality_title(variants)}", _quality_table(variants, intervals)),
        Section("generation", "Generation", _generation_table(variants)),
        Section("example-predictions", "Example predictions", _examples(config, variants, eval_examples)),
    ]


def _config_summary(config: Mapping[str, Any]) -> str:
    data, prompt, generation = config["data"], config["prompt"], config["generation"]
    rows = [
        ("model", config["model"]["source"]),
        # As configured (`auto` included); what it resolved to is in the summary and the generation table.
        ("device / dtype (configured)", f"{config['model']['device']} / {config['model']['dtype']}"),
        ("dataset", data["dataset"]),
        ("training sizes (seed)", f"{', '.join(map(str, data['train']['sizes']))} (seed {data['train']['seed']})"),
        ("evaluation size (seed)", f"{data['eval']['size']} (seed {data['eval']['seed']})"),
        ("instruction", prompt["instruction"]),
        ("chat template / max input tokens", f"{prompt['chat_template']} / {prompt['max_input_tokens']}"),
        (
            "decoding",
            "greedy"
            if generation["greedy"]
            else f"sampling (T={generation['temperature']}, top-p={generation['top_p']})",
        ),
        ("max new tokens", generation["max_new_tokens"]),
    ]
    full = escape(yaml.safe_dump(dict(config), sort_keys=False))
    return (
        table(["setting", "value"], rows, numeric_from=99)
        + f"<details><summary>Full configuration</summary><pre>{full}</pre></details>"
    )


def _model_section(manifest: Mapping[str, Any]) -> str:
    rows = [("source", manifest.get("source")), ("architecture", manifest.get("architecture"))]
    if "parameters" in manifest:
        rows.append(("parameters", f"{manifest['parameters']:,}"))
    rows += [(f"check: {key}", value) for key, value in manifest.get("checks", {}).items()]
    note = f"<p>{escape(manifest['note'])}</p>" if manifest.get("note") else ""
    return table(["", ""], rows, numeric_from=99) + note


def _data_section(subsets: Mapping[str, Any]) -> str:
    fields = {**subsets["run"], **subsets["metrics"]}
    rows = [
        (key, value if not isinstance(value, (dict, list)) else yaml.safe_dump(value, sort_keys=False).strip())
        for key, value in fields.items()
    ]
    return table(["", ""], rows, numeric_from=99)


QUALITY_TITLES = {
    "summarisation": "ROUGE (F-measure, mean over evaluation examples)",
    "classification": "accuracy (mean over evaluation examples)",
    "extractive_qa": "SQuAD v2 F1 and exact match (mean over evaluation questions)",
}
QUALITY_NOTES = {
    "summarisation": "ROUGE with Porter stemming (rouge-score)",
    "classification": "the prediction is the label whose answer the model scores highest (never unparseable)",
    "extractive_qa": "official SQuAD v2 normalisation, maximum over gold answers; an unanswerable question's "
    "gold answer is the empty one, which the abstention answer matches",
}


def _quality_title(variants: Sequence[VariantResult]) -> str:
    return QUALITY_TITLES[_task_name(variants)]


def _task_name(variants: Sequence[VariantResult]) -> str:
    names = {v.scores["run"].get("task", "summarisation") for v in variants}
    if len(names) != 1:
        raise ValueError(f"the evaluated variants were scored for different tasks: {', '.join(sorted(names))}")
    return names.pop()


def _quality_table(
    variants: Sequence[VariantResult], intervals: Mapping[str, Mapping[str, Mapping[str, float]]]
) -> str:
    task = task_named(_task_name(variants))
    header = ["variant", "examples"] + [task.metric_labels[kind] for kind in task.metrics]
    rows = []
    for v in variants:
        cells = []
        for kind in task.metrics:
            cell = f"{v.scores['metrics']['mean_values'][kind]:.4f}"
            if v.name in intervals:
                cell += f" [{intervals[v.name][kind]['low']:.4f}, {intervals[v.name][kind]['high']:.4f}]"
            cells.append(cell)
        rows.append([v.name, v.scores["run"]["examples"], *cells])
    note = "; ".join(filter(None, [QUALITY_NOTES[task.name], task.notes_for(task.metrics)]))
    if intervals:
        confidence = next(iter(next(iter(intervals.values())).values()))["confidence"]
        # Each metric's own method (a 0/1 metric's is Wilson's, a graded one's the bootstrap).
        methods: dict[str, set[str]] = {}
        for per_variant in intervals.values():
            for kind, interval in per_variant.items():
                methods.setdefault(task.metric_labels.get(kind, kind), set()).add(interval["method"])
        how = "; ".join(f"{label}: {' or '.join(sorted(found))}" for label, found in methods.items())
        note += f"; brackets: {confidence:.0%} interval of the mean over examples ({how})"
    return table(header, rows) + f"<p class=muted>{escape(note)}.</p>"


def _generation_table(variants: Sequence[VariantResult]) -> str:
    header = [
        "variant",
        "device",
        "dtype",
        "load s",
        "generate s",
        "new tokens",
        "tokens/s",
        "inputs truncated",
        "stopped before limit",
    ]
    rows = []
    for v in variants:
        metrics, meta = v.generation["metrics"], v.generation["meta"]
        rows.append(
            [
                v.name,
                meta["device_name"],
                meta["dtype"],
                f"{metrics['load_seconds']:.1f}",
                f"{metrics['generate_seconds']:.1f}",
                metrics["generated_tokens"],
                f"{metrics['tokens_per_second']:.1f}",
                f"{metrics['truncated_inputs']} / {v.generation['run']['examples']}",
                f"{metrics['stopped_naturally']} / {v.generation['run']['examples']}",
            ]
        )
    return table(header, rows, numeric_from=3) + f"<p class=muted>{escape(LANE_TIMES)}</p>"


def _examples(
    config: Mapping[str, Any], variants: Sequence[VariantResult], eval_examples: Sequence[Mapping[str, Any]]
) -> str:
    """One block per example: the input, the reference, then each variant's prediction as a
    row of a full-width two-column table, so long texts wrap instead of scrolling sideways."""
    count = min(config["report"]["examples"], len(eval_examples))
    # A seeded choice, not the first few: the first rows of a file are no more typical than any.
    chosen = sorted(
        np.random.default_rng(config["report"].get("seed", 0)).choice(len(eval_examples), size=count, replace=False)
    )
    predictions = {v.name: {row["id"]: row for row in v.predictions} for v in variants}
    blocks = []
    for example_index in chosen:
        example = eval_examples[example_index]
        rows = "".join(
            f"<tr><th>{escape(v.name)}</th><td>{_prediction(predictions[v.name][example['id']])}</td></tr>"
            for v in variants
        )
        fields = "".join(
            f'<p><b>{escape(name)}</b></p><p class="text">{escape(value)}</p>'
            for name, value in example.get("fields", {}).items()
        )
        blocks.append(
            f'<div class="example-block"><h3>{escape(example["id"])}</h3>{_input(example["input"])}{fields}'
            f'<p><b>reference</b></p><p class="text">{_reference(example)}</p>'
            f'<table class="example"><thead><tr><th>variant</th><th>prediction</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>"
        )
    return "".join(blocks) or "<p>No examples requested (report.examples = 0).</p>"


def _prediction(row: Mapping[str, Any]) -> str:
    """A prediction as the task made it: the generated text and, for a label task, the label
    the model scored highest (the one that counts)."""
    text = escape(row["prediction"]) or "<i>(empty)</i>"
    if "label" in row:
        return f"<b>{escape(row['label'])}</b> <span class=muted>(scored label; generated: {text})</span>"
    return text


def _reference(example: Mapping[str, Any]) -> str:
    answers = example.get("answers")
    if answers is None:
        return escape(example["reference"])
    if not answers:
        return "<i>(no answer in the context)</i>"
    return " | ".join(escape(a) for a in dict.fromkeys(answers))


def _input(text: str) -> str:
    """A short input in full; a long one folded: its first words show, a click shows all of it."""
    if len(text) <= FOLD_INPUT_CHARS:
        return f'<p><b>input</b></p><p class="text">{escape(text)}</p>'
    preview = text[:INPUT_PREVIEW_CHARS].rsplit(" ", 1)[0]
    return (
        f"<details><summary><b>input</b> ({len(text):,} characters; click for all of it)"
        f'<span class="preview text">{escape(preview)} …</span></summary>'
        f'<p class="text">{escape(text)}</p></details>'
    )


def provenance_sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    """Where and when each evaluation ran, the packages it ran with and the report's own."""
    generation = by_variant(files["generation"])
    rows = [
        (f"{name}: run", f"{g['meta']['created_at']} on {g['meta']['device_name']} ({g['meta']['platform']})")
        for name, g in generation.items()
    ]
    versions = next(iter(generation.values()))["meta"]["versions"] if generation else package_versions()
    rows += [(name, version) for name, version in versions.items()]
    rows.append(("report built with", ", ".join(f"{k} {v}" for k, v in package_versions().items() if v)))
    return [Section("provenance", "Provenance", table(["", ""], rows, numeric_from=99))]


PROVENANCE = Stage(name="provenance", inputs=("generation",), sections=provenance_sections)
