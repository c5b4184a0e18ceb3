"""The learning-rate stage's section: per swept method, the validation curve against the rate
with intervals, the chosen rate, and the ratio of each LoRA method's chosen rate to full
fine-tuning's on the same data (selection.json files of rule select_learning_rate)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lora_study.core.grid import VariantSpec, fft_partner, rate_label
from lora_study.core.results import read_result
from lora_study.report.inputs import Files, Stage
from lora_study.report.page import Section, escape, table
from lora_study.report.plotting import palette, plot_svg
from lora_study.stages.selection.selection import edge_text, grid_edge, rate_ratio, ratio_edge_text


def sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    selections = [read_result(path) for path in files["selection"]]
    if not selections:
        return []
    # The level the selection's own intervals were computed at.
    confidence = selections[0]["metrics"]["candidates"][0]["interval"]["confidence"]
    return [
        Section(
            "learning-rates",
            "Learning rates chosen on the validation split",
            selection_body(selections=selections, confidence=confidence),
        )
    ]


STAGE = Stage(name="selection", inputs=("selection",), sections=sections)


def selection_body(*, selections: Sequence[Mapping[str, Any]], confidence: float) -> str:
    intro = (
        "<p>Each method below was trained at every candidate rate (every seed at each) and measured on the "
        "validation subset, which is apart from the training, evaluation and drift texts. "
        f"Choice: {escape(selections[0]['metrics']['criterion'])}. Only the chosen rate's variants are "
        "evaluated on the test set and appear in the rest of this report: no rate was selected on the test "
        "set. The intervals are over validation examples; two rates whose intervals overlap were not told "
        "apart by this validation set, so the choice between them is the point estimate's.</p>"
    )
    return (
        intro
        + _curve(selections)
        + _table(selections)
        + _not_told_apart(selections)
        + _ratios(selections, confidence=confidence)
    )


def _not_told_apart(selections: Sequence[Mapping[str, Any]]) -> str:
    """Per method, the candidates whose interval overlaps the chosen rate's: the validation set
    did not tell them apart, so the choice among them rests on the point estimates."""
    items = []
    for selection in selections:
        rows = selection["metrics"]["candidates"]
        chosen = next(r for r in rows if r["learning_rate"] == selection["metrics"]["chosen"]["learning_rate"])
        close = [
            rate_label(r["learning_rate"])
            for r in rows
            if r is not chosen
            and r["interval"]["low"] <= chosen["interval"]["high"]
            and chosen["interval"]["low"] <= r["interval"]["high"]
        ]
        told = (
            f"its interval overlaps that of {', '.join(close)}: not told apart by this validation set"
            if close
            else "its interval overlaps no other candidate's"
        )
        edge = edge_text(method=selection["run"]["method"], edge=grid_edge(selection["metrics"]))
        beyond = f" <strong>{escape(edge)}</strong>." if edge else ""
        items.append(
            f"<li>{escape(selection['run']['method'])}: {rate_label(chosen['learning_rate'])} chosen; {told}.{beyond}</li>"
        )
    return f"<ul>{''.join(items)}</ul>"


def _spec(selection: Mapping[str, Any]) -> VariantSpec:
    return VariantSpec.from_dict(selection["run"]["specs"][0])


def _table(selections: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for selection in selections:
        chosen = selection["metrics"]["chosen"]["learning_rate"]
        for row in selection["metrics"]["candidates"]:
            interval = row["interval"]
            rows.append(
                [
                    selection["run"]["method"],
                    rate_label(row["learning_rate"]),
                    f"{row['mean_loss']:.4f}",
                    f"[{interval['low']:.4f}, {interval['high']:.4f}]",
                    len(row["variants"]),
                    row["examples"],
                    "chosen" if row["learning_rate"] == chosen else "",
                ]
            )
    header = ["method", "learning rate", "validation loss", "interval", "seeds", "examples", ""]
    return table(header, rows, numeric_from=1)


def _curve(selections: Sequence[Mapping[str, Any]]) -> str:
    colours = palette(len(selections))

    def draw(figure: Figure, axes: Axes) -> None:
        for colour, selection in zip(colours, selections, strict=True):
            rows = selection["metrics"]["candidates"]
            rates = [row["learning_rate"] for row in rows]
            means = [row["mean_loss"] for row in rows]
            errors = [
                [m - row["interval"]["low"] for m, row in zip(means, rows, strict=True)],
                [row["interval"]["high"] - m for m, row in zip(means, rows, strict=True)],
            ]
            axes.errorbar(
                rates, means, yerr=errors, marker="o", capsize=3, color=colour, label=selection["run"]["method"]
            )
            chosen = selection["metrics"]["chosen"]["learning_rate"]
            axes.plot([chosen], [means[rates.index(chosen)]], marker="*", markersize=14, color=colour, linestyle="none")
        axes.set_xscale("log")
        axes.set_xlabel("peak learning rate")
        axes.set_ylabel("validation loss per reference token")
        axes.set_title("Validation loss against the learning rate (star: chosen)")
        axes.legend(fontsize="small")

    return plot_svg(draw, figsize=(8, 4))


def _ratios(selections: Sequence[Mapping[str, Any]], *, confidence: float) -> str:
    """LoRA's chosen rate over full fine-tuning's, per LoRA method with a swept FFT partner."""
    by_method = {selection["run"]["method"]: selection for selection in selections}
    specs = {method: _spec(selection) for method, selection in by_method.items()}
    rows = []
    for method, selection in by_method.items():
        partner_method = fft_partner(specs[method], specs)  # the swept FFT on the same data and settings
        if partner_method is None:
            continue
        partner = by_method[partner_method]
        ratio = rate_ratio(numerator=selection["metrics"], denominator=partner["metrics"], confidence=confidence)
        interval = ratio["interval"]
        spread = f"[{interval['low']:.3g}, {interval['high']:.3g}]" if interval else ratio["why_no_interval"]
        edge = ratio_edge_text(numerator=selection["metrics"], denominator=partner["metrics"]) or ""
        rows.append(
            [f"{selection['run']['method']} / {partner['run']['method']}", f"{ratio['ratio']:.3g}", spread, edge]
        )
    if not rows:
        return ""
    return (
        "<h3>LoRA's chosen rate over full fine-tuning's</h3>"
        + table(["methods", "ratio", f"{confidence:.0%} interval over seeds", "grid"], rows)
        + "<p class=muted>Published guidance puts LoRA's best rate at about 10x full fine-tuning's; a ratio "
        "here is bounded by the candidate grid (a chosen rate at the end of its grid may not be the best).</p>"
    )
