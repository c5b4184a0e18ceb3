"""report.html: one self-contained page built only from result files.

Nothing in the page is typed in by hand: every number is read from a JSON that a rule
wrote, and every string from the data or the model is HTML-escaped. The page has no
external resources, so it opens offline.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lora_study.io import atomic_write_text, read_json, read_jsonl
from lora_study.provenance import package_versions
from lora_study.rouge import ROUGE_TYPES

ROUGE_LABELS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
INPUT_PREVIEW_CHARS = 700

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#1d1d1f;line-height:1.45}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;vertical-align:top}
th{background:#f3f3f5;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#666;font-size:.9rem}pre{background:#f6f6f8;padding:.8rem;overflow-x:auto;font-size:.85rem}
.example td{width:33%;font-size:.9rem;white-space:pre-wrap}
figure{margin:.6rem 0}figure svg{max-width:100%;height:auto}
section{overflow-x:auto}  /* a wide table scrolls inside its section, not the page */
"""


@dataclass(frozen=True)
class VariantResult:
    """One evaluated variant: its ROUGE file, predictions and generation info."""

    name: str
    rouge: Mapping[str, Any]
    predictions: Sequence[Mapping[str, Any]]
    generation: Mapping[str, Any]


def load_variant(*, name: str, rouge_path: str | Path, predictions_path: str | Path, info_path: str | Path) -> VariantResult:
    return VariantResult(
        name=name,
        rouge=read_json(rouge_path),
        predictions=read_jsonl(predictions_path),
        generation=read_json(info_path),
    )


@dataclass(frozen=True)
class Section:
    """One titled part of the page; stages contribute sections built from their files."""

    anchor: str
    title: str
    body: str


def foundation_sections(
    *,
    config: Mapping[str, Any],
    manifest: Mapping[str, Any],
    subsets: Mapping[str, Any],
    variants: Sequence[VariantResult],
    eval_examples: Sequence[Mapping[str, Any]],
    intervals: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
) -> list[Section]:
    """Configuration, model, data, ROUGE (with bootstrap intervals when given: variant ->
    ROUGE type -> {mean, low, high, confidence}), generation and example predictions."""
    return [
        Section("configuration", "Configuration", _config_summary(config)),
        Section("model", "Model", _model_section(manifest)),
        Section("data", "Data", _data_section(subsets)),
        Section("quality", "Quality: ROUGE (F-measure, mean over evaluation examples)", _rouge_table(variants, intervals or {})),
        Section("generation", "Generation", _generation_table(variants)),
        Section("example-predictions", "Example predictions", _examples(config, variants, eval_examples)),
    ]


def build_report(*, sections: Sequence[Section], variants: Sequence[VariantResult], out_path: str | Path) -> None:
    """Write report.html: the given sections, then provenance."""
    sections = [*sections, Section("provenance", "Provenance", _provenance(variants))]
    title = "lora-study report"
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    contents = "".join(f'<li><a href="#{escape(s.anchor)}">{escape(s.title)}</a></li>' for s in sections)
    body = "".join(f'<section id="{escape(s.anchor)}"><h2>{escape(s.title)}</h2>{s.body}</section>' for s in sections)
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head><body>"
        f"<h1>{title}</h1><p class=muted>Built {created} from the files under results/.</p>"
        f"<nav><ol>{contents}</ol></nav>{body}</body></html>\n"
    )
    atomic_write_text(out_path, page)


def escape(value: Any) -> str:
    return html.escape(str(value))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], *, numeric_from: int = 1) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{escape(cell)}</td>' if index >= numeric_from else f"<td>{escape(cell)}</td>"
            for index, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _config_summary(config: Mapping[str, Any]) -> str:
    data, prompt, generation = config["data"], config["prompt"], config["generation"]
    rows = [
        ("model", config["model"]["source"]),
        ("device / dtype", f'{config["model"]["device"]} / {config["model"]["dtype"]}'),
        ("dataset", data["dataset"]),
        ("training sizes (seed)", f'{", ".join(map(str, data["train"]["sizes"]))} (seed {data["train"]["seed"]})'),
        ("evaluation size (seed)", f'{data["eval"]["size"]} (seed {data["eval"]["seed"]})'),
        ("instruction", prompt["instruction"]),
        ("chat template / max input tokens", f'{prompt["chat_template"]} / {prompt["max_input_tokens"]}'),
        ("decoding", "greedy" if generation["greedy"] else f'sampling (T={generation["temperature"]}, top-p={generation["top_p"]})'),
        ("max new tokens", generation["max_new_tokens"]),
    ]
    full = escape(yaml.safe_dump(dict(config), sort_keys=False))
    return table(["setting", "value"], rows, numeric_from=99) + f"<details><summary>Full configuration</summary><pre>{full}</pre></details>"


def _model_section(manifest: Mapping[str, Any]) -> str:
    rows = [("source", manifest.get("source")), ("architecture", manifest.get("architecture"))]
    if "parameters" in manifest:
        rows.append(("parameters", f'{manifest["parameters"]:,}'))
    rows += [(f"check: {key}", value) for key, value in manifest.get("checks", {}).items()]
    note = f"<p>{escape(manifest['note'])}</p>" if manifest.get("note") else ""
    return table(["", ""], rows, numeric_from=99) + note


def _data_section(subsets: Mapping[str, Any]) -> str:
    rows = [(key, value if not isinstance(value, (dict, list)) else yaml.safe_dump(value, sort_keys=False).strip()) for key, value in subsets.items()]
    return table(["", ""], rows, numeric_from=99)


def _rouge_table(variants: Sequence[VariantResult], intervals: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    header = ["variant", "examples"] + [ROUGE_LABELS[kind] for kind in ROUGE_TYPES]
    rows = []
    for v in variants:
        cells = []
        for kind in ROUGE_TYPES:
            cell = f'{v.rouge["metrics"]["mean"][kind]["fmeasure"]:.4f}'
            if v.name in intervals:
                cell += f' [{intervals[v.name][kind]["low"]:.4f}, {intervals[v.name][kind]["high"]:.4f}]'
            cells.append(cell)
        rows.append([v.name, v.rouge["run"]["examples"], *cells])
    note = "ROUGE with Porter stemming (rouge-score); rougeLsum splits sentences at . ! ?"
    if intervals:
        confidence = next(iter(next(iter(intervals.values())).values()))["confidence"]
        note += f"; brackets: {confidence:.0%} seeded bootstrap interval of the mean over examples"
    return table(header, rows) + f"<p class=muted>{note}.</p>"


def _generation_table(variants: Sequence[VariantResult]) -> str:
    header = ["variant", "device", "dtype", "load s", "generate s", "new tokens", "tokens/s", "inputs truncated", "stopped before limit"]
    rows = []
    for v in variants:
        metrics, meta = v.generation["metrics"], v.generation["meta"]
        rows.append(
            [
                v.name,
                meta["device_name"],
                meta["dtype"],
                f'{metrics["load_seconds"]:.1f}',
                f'{metrics["generate_seconds"]:.1f}',
                metrics["generated_tokens"],
                f'{metrics["tokens_per_second"]:.1f}',
                f'{metrics["truncated_inputs"]} / {v.generation["run"]["examples"]}',
                f'{metrics["stopped_naturally"]} / {v.generation["run"]["examples"]}',
            ]
        )
    return table(header, rows, numeric_from=3)


def _examples(config: Mapping[str, Any], variants: Sequence[VariantResult], eval_examples: Sequence[Mapping[str, Any]]) -> str:
    count = min(config["report"]["examples"], len(eval_examples))
    inputs = {row["id"]: row["input"] for row in eval_examples}
    # A seeded choice, not the first few: the first rows of a file are no more typical than any.
    chosen = sorted(np.random.default_rng(config["report"].get("seed", 0)).choice(len(eval_examples), size=count, replace=False))
    blocks = []
    for example_index in chosen:
        example_id = eval_examples[example_index]["id"]
        text = inputs[example_id]
        preview = text if len(text) <= INPUT_PREVIEW_CHARS else text[:INPUT_PREVIEW_CHARS] + " …"
        cells = [f"<td><b>input</b>\n{escape(preview)}</td>", f"<td><b>reference</b>\n{escape(eval_examples[example_index]['reference'])}</td>"]
        for v in variants:
            prediction = next(row["prediction"] for row in v.predictions if row["id"] == example_id)
            cells.append(f"<td><b>{escape(v.name)}</b>\n{escape(prediction) or '<i>(empty)</i>'}</td>")
        blocks.append(f'<h3>{escape(example_id)}</h3><table class="example"><tr>{"".join(cells)}</tr></table>')
    return "".join(blocks) or "<p>No examples requested (report.examples = 0).</p>"


def _provenance(variants: Sequence[VariantResult]) -> str:
    rows = []
    for v in variants:
        meta = v.generation["meta"]
        rows.append((f"{v.name}: run", f'{meta["created_at"]} on {meta["device_name"]} ({meta["platform"]})'))
    versions = variants[0].generation["meta"]["versions"] if variants else package_versions()
    rows += [(name, version) for name, version in versions.items()]
    rows.append(("report built with", ", ".join(f"{k} {v}" for k, v in package_versions().items() if v)))
    return table(["", ""], rows, numeric_from=99)


def figure_svg(figure: Any) -> str:
    """A matplotlib figure as inline SVG markup (the page stays one offline file), closed after."""
    import io as _io

    import matplotlib.pyplot as plt

    buffer = _io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    svg = buffer.getvalue()
    return f'<figure>{svg[svg.index("<svg"):]}</figure>'
