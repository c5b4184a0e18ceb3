"""The weight-space stage's sections, built only from weights.json (and mitigation.json)
files: update norm, effective rank and intruder dimensions per variant and per layer, the
epsilon sweep, and the intruder-mitigation curve when it was run.

LoRA and full fine-tuning are compared on the same modules: per-layer numbers and sweep
totals cover only the module kinds the LoRA variants target (q_proj and v_proj by default),
while the table also gives full fine-tuning's numbers over all its modules.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lora_study.core.grid import group_of
from lora_study.core.results import read_result
from lora_study.report.inputs import Files, ReportInputError, Stage, by_variant, one
from lora_study.report.page import Section, escape, table
from lora_study.report.plotting import palette, plot_svg
from lora_study.stats.learning import gain_over_base, gain_text


@dataclass(frozen=True)
class WeightResult:
    name: str
    weights: Mapping[str, Any]  # weights.json
    mitigation: Mapping[str, Any] | None = None  # mitigation.json, when mitigation ran

    @property
    def is_fft(self) -> bool:
        return self.weights["run"]["spec"]["kind"] == "fft"

    @property
    def modules(self) -> Sequence[Mapping[str, Any]]:
        return self.weights["metrics"]["modules"]

    @property
    def group(self) -> str:
        """The seed group comparisons.json compares, from the spec weights.json records."""
        return group_of(self.weights["run"]["spec"])


def load_weights(files: Files) -> list[WeightResult]:
    """weights.json per trained variant, with its mitigation.json where mitigation ran; both
    matched by the variant each file records."""
    weights, mitigation = by_variant(files["weights"]), by_variant(files["mitigation"])
    unknown = sorted(set(mitigation) - set(weights))
    if unknown:
        raise ReportInputError(f"input mitigation holds variants that input weights lacks: {', '.join(unknown)}")
    return [
        WeightResult(name=name, weights=result, mitigation=mitigation.get(name)) for name, result in weights.items()
    ]


def sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    return weight_sections(results=load_weights(files), comparisons=read_result(one(files, "comparisons")))


STAGE = Stage(name="weights", inputs=("weights", "mitigation", "comparisons"), sections=sections)


def compared_kinds(results: Sequence[WeightResult]) -> set[str]:
    """The module kinds every variant is compared on: those the LoRA variants target, or
    every kind when there is no LoRA variant."""
    lora = {m["kind"] for r in results if not r.is_fft for m in r.modules}
    return lora or {m["kind"] for r in results for m in r.modules}


def per_layer(result: WeightResult, *, kinds: set[str]) -> dict[int, dict[str, float]]:
    """Per layer, over the modules of `kinds`: mean effective rank and total intruders."""
    layers: dict[int, list[Mapping[str, Any]]] = {}
    for module in result.modules:
        if module["layer"] is not None and module["kind"] in kinds:
            layers.setdefault(module["layer"], []).append(module)
    return {
        layer: {
            "effective_rank": statistics.fmean(m["effective_rank"] for m in modules),
            "intruders": sum(m["intruders"] for m in modules),
        }
        for layer, modules in sorted(layers.items())
    }


def weight_sections(*, results: Sequence[WeightResult], comparisons: Mapping[str, Any] | None = None) -> list[Section]:
    """Nothing when no variant is trained; the mitigation section only when it ran. `comparisons`
    (comparisons.json) says which variants are shown to beat the base (None: not measured)."""
    if not results:
        return []
    sections = [
        Section(
            "weight-drift",
            "Weight-space drift: update rank and intruder dimensions",
            _weights_body(results, comparisons),
        )
    ]
    mitigated = [r for r in results if r.mitigation is not None]
    if mitigated:
        sections.append(
            Section(
                "intruder-mitigation",
                "Intruder-dimension mitigation: quality against forgetting",
                _mitigation_body(mitigated),
            )
        )
    else:
        sections[0] = Section(
            sections[0].anchor,
            sections[0].title,
            sections[0].body
            + (
                "<p class=muted>Intruder mitigation did not run (drift.mitigation.enabled: false, the CPU default; "
                "each strength is one more evaluation of every adapter).</p>"
            ),
        )
    return sections


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3e}" if 0 < abs(value) < 10 ** -(digits - 1) else f"{value:.{digits}f}"


def _subset(result: WeightResult, kinds: set[str]) -> list[Mapping[str, Any]]:
    return [m for m in result.modules if m["kind"] in kinds]


def _weights_body(results: Sequence[WeightResult], comparisons: Mapping[str, Any] | None) -> str:
    settings = results[0].weights["run"]["settings"]
    kinds = compared_kinds(results)
    kind_list = ", ".join(sorted(kinds))
    gains = {r.name: gain_over_base(comparisons=comparisons, group=r.group) for r in results}
    rows = []
    for r in results:
        summary, compared = r.weights["metrics"]["summary"], _subset(r, kinds)
        ranks = [m["effective_rank"] for m in compared]
        rows.append(
            [
                r.name,
                summary["modules"],
                _number(summary["mean_relative_update_norm"]),
                _number(summary["median_effective_rank"], 1),
                _number(summary["mean_effective_rank"], 1),
                summary["intruders"],
                summary["modules_with_intruders"],
                _number(statistics.median(ranks), 1) if ranks else "n/a",
                sum(m["intruders"] for m in compared),
                gain_text(gains[r.name]),
            ]
        )
    protocol = (
        f"<p class=muted>Every Linear weight that training changed (full fine-tuning) or that the adapter targets "
        f"(LoRA: the merged weight W + dW, PEFT's own merge into a float32 base, QLoRA's too), against the base, "
        f"decomposed in float64. Relative update: ||dW||<sub>F</sub> / ||W||<sub>F</sub>. Effective rank of dW: the "
        f"singular values holding {settings['energy']:.0%} of its squared norm. Intruder dimensions "
        f"(Shuttleworth et al. 2024, arXiv 2410.21228): among the top {settings['top_k']} left singular vectors of "
        f"W + dW, those whose largest |cosine| with every pre-trained left singular vector is below "
        f"epsilon = {settings['epsilon']}. Per-layer figures and the sweep cover the modules compared across "
        f"variants: <b>{escape(kind_list)}</b> (what the LoRA variants target), mean effective rank per layer and "
        f"intruders summed per layer; full fine-tuning's other modules count only in the table's all-module columns.</p>"
    )
    header = [
        "variant",
        "modules",
        "mean relative update",
        "median eff. rank",
        "mean eff. rank",
        f"intruders (k={settings['top_k']}, eps={settings['epsilon']})",
        "modules with intruders",
        f"median eff. rank on {kind_list}",
        f"intruders on {kind_list}",
        "gain over the base shown",
    ]
    return (
        protocol
        + table(header, rows)
        + _unlearned(results, gains)
        + _layer_plots(results, kinds)
        + "<h3>Intruders against epsilon</h3>"
        + _sweep(results, kinds)
    )


def _unlearned(results: Sequence[WeightResult], gains: Mapping[str, Mapping[str, Any]]) -> str:
    """Beside the table: the variants not shown to beat the base, whose small update, low rank or
    few intruders may say they are under-trained rather than how their method changes weights."""
    unlearned = [r for r in results if gains[r.name]["shown"] is False]
    unknown = [r.name for r in results if gains[r.name]["shown"] is None]
    text = ""
    if unlearned:
        items = "".join(
            f"<li>{escape(r.name)}: {r.weights['metrics']['summary']['intruders']} intruders, median effective rank "
            f"{_number(r.weights['metrics']['summary']['median_effective_rank'], 1)}; "
            f"{escape(gains[r.name]['note'])}.</li>"
            for r in unlearned
        )
        text += f"<p><strong>Not shown to have learned:</strong></p><ul>{items}</ul>"
    if unknown:
        text += (
            f"<p class=muted>Gain over the base not measured for {escape(', '.join(unknown))}: whether their weight "
            "changes reflect learning is unknown.</p>"
        )
    return text


def _style(result: WeightResult) -> str:
    return "--" if result.is_fft else "-"


def _layer_plots(results: Sequence[WeightResult], kinds: set[str]) -> str:
    """Effective rank and intruders by layer, one line per variant (LoRA solid, FFT dashed)."""

    def draw(figure: Figure, axes: np.ndarray) -> None:
        rank_axes, intruder_axes = axes
        for colour, r in zip(palette(len(results)), results, strict=True):
            layers = per_layer(r, kinds=kinds)
            x = list(layers)
            rank_axes.plot(
                x, [v["effective_rank"] for v in layers.values()], _style(r), color=colour, marker=".", label=r.name
            )
            intruder_axes.plot(
                x, [v["intruders"] for v in layers.values()], _style(r), color=colour, marker=".", label=r.name
            )
        rank_axes.set(xlabel="layer", ylabel="effective rank of dW (mean over modules)", title="Update rank by layer")
        rank_axes.set_yscale("symlog", linthresh=1.0)  # LoRA ranks of a few beside FFT's hundreds; 0 stays drawable
        intruder_axes.set(xlabel="layer", ylabel="intruder dimensions (sum over modules)", title="Intruders by layer")
        rank_axes.legend(fontsize=8)
        figure.tight_layout()

    return plot_svg(draw, figsize=(11.0, 4.0), ncols=2)


def _sweep(results: Sequence[WeightResult], kinds: set[str]) -> str:
    """Intruders summed over the compared modules at each epsilon of the sweep: table and plot."""
    epsilons = results[0].weights["run"]["settings"]["epsilon_sweep"]
    totals = {
        r.name: [sum(m["intruders_sweep"][i] for m in _subset(r, kinds)) for i in range(len(epsilons))] for r in results
    }
    rows = [[r.name, *totals[r.name]] for r in results]

    def draw(figure: Figure, axes: Axes) -> None:
        for colour, r in zip(palette(len(results)), results, strict=True):
            axes.plot(epsilons, totals[r.name], _style(r), color=colour, marker="o", label=r.name)
        axes.set(xlabel="epsilon (cosine threshold)", ylabel="intruder dimensions")
        axes.legend(fontsize=8)

    return table(["variant", *(f"eps {e}" for e in epsilons)], rows) + plot_svg(draw, figsize=(6.0, 3.6))


def _mitigation_body(results: Sequence[WeightResult]) -> str:
    first = results[0].mitigation
    settings = first["run"]["settings"]
    rows = []
    for r in results:
        metrics = r.mitigation["metrics"]
        base_nll = metrics["base"]["forgetting"]["mean_nll"]
        for point in metrics["curve"]:
            rows.append(
                [
                    r.name,
                    f"{point['strength']:.2f}",
                    f"{point['mitigation_lambda']:.2f}",
                    f"{metrics['intruders']['total']} in {metrics['intruders']['modules_with_intruders']}/{metrics['intruders']['modules']}",
                    _number(point["update_remaining"], 3),
                    f"{point['quality']['value']:.4f}",
                    f"{point['forgetting']['mean_nll']:.4f}",
                    f"{point['forgetting']['mean_nll'] - base_nll:+.4f}",
                ]
            )
    base = first["metrics"]["base"]
    protocol = (
        f"<p class=muted>PEFT's <code>reduce_intruder_dimension</code> (top {settings['top_k']} singular vectors of "
        f"W + dW, epsilon {settings['threshold_epsilon']}) at each strength, the share of each intruder direction "
        f"removed (PEFT's mitigation_lambda = 1 - strength; 0 is the adapter as trained), then the adapter refitted "
        f"at its rank. Quality: {escape(base['quality']['label'])} on the evaluation set, generated by the main evaluation's code. "
        f"Forgetting: mean token cross-entropy (nats) on {base['forgetting']['texts']} general texts outside the "
        f"task's domain, minus the base model's ({base['forgetting']['mean_nll']:.4f}; base {escape(base['quality']['label'])} "
        f"{base['quality']['value']:.4f}). Where no intruder is found the strength changes nothing.</p>"
    )
    header = [
        "variant",
        "strength",
        "lambda",
        "intruders (modules)",
        "update kept",
        base["quality"]["label"],
        "general-text NLL",
        "forgetting (vs base)",
    ]
    return protocol + _mitigation_plot(results) + table(header, rows)


def _mitigation_plot(results: Sequence[WeightResult]) -> str:
    """Quality (the task's headline metric) and forgetting against strength, one line per variant."""

    def draw(figure: Figure, axes: np.ndarray) -> None:
        quality, forgetting = axes
        for colour, r in zip(palette(len(results)), results, strict=True):
            metrics = r.mitigation["metrics"]
            strengths = [p["strength"] for p in metrics["curve"]]
            base_nll = metrics["base"]["forgetting"]["mean_nll"]
            quality.plot(
                strengths,
                [p["quality"]["value"] for p in metrics["curve"]],
                "-o",
                color=colour,
                label=r.name,
            )
            forgetting.plot(
                strengths,
                [p["forgetting"]["mean_nll"] - base_nll for p in metrics["curve"]],
                "-o",
                color=colour,
                label=r.name,
            )
        quality.set(
            xlabel="mitigation strength (share of intruders removed)",
            ylabel=results[0].mitigation["metrics"]["base"]["quality"]["label"],
            title="Quality",
        )
        forgetting.set(
            xlabel="mitigation strength (share of intruders removed)",
            ylabel="general-text NLL minus base (nats)",
            title="Forgetting",
        )
        forgetting.axhline(0.0, color="grey", linewidth=0.8)
        quality.legend(fontsize=8)
        figure.tight_layout()

    return plot_svg(draw, figsize=(11.0, 3.8), ncols=2)
