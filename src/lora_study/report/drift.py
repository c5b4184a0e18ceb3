"""The drift stage's sections (Study 4): per-layer drift of every trained variant group with
its interval, the layer x layer CKA heatmaps, forgetting on in-domain and general text with
intervals, learning against forgetting, and the verdict of Study 4's criterion as the summary
job judged it (drift/summary.json)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lora_study.core.results import read_result
from lora_study.report.compare import metric_note
from lora_study.report.inputs import Files, Stage, by_variant, one
from lora_study.report.page import Section, escape, table
from lora_study.report.plotting import palette, plot_svg
from lora_study.stats.learning import gain_text

TEXT_LABELS = {"in_domain": "in-domain held-out text", "general": "general text (another domain)"}


@dataclass(frozen=True)
class DriftResult:
    name: str
    drift: Mapping[str, Any]  # drift.json

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.drift["metrics"]

    @property
    def is_fft(self) -> bool:
        return self.drift["run"]["spec"]["kind"] == "fft"


def sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    results = [DriftResult(name=name, drift=drift) for name, drift in by_variant(files["drift"]).items()]
    # One summary when a variant is trained, none otherwise (rules/report.smk).
    summaries = [read_result(path) for path in files["drift_summary"]]
    # The serving summary judges the criterion's other alternative; none when serving did not run.
    serving = [read_result(path) for path in files["serving_summary"]]
    return drift_sections(
        results=results,
        summary=summaries[0] if summaries else None,
        comparisons=read_result(one(files, "comparisons")),
        serving_summary=serving[0] if serving else None,
    )


STAGE = Stage(name="drift", inputs=("drift", "drift_summary", "comparisons", "serving_summary"), sections=sections)


def drift_sections(
    *,
    results: Sequence[DriftResult],
    summary: Mapping[str, Any] | None,
    comparisons: Mapping[str, Any],
    serving_summary: Mapping[str, Any] | None = None,
) -> list[Section]:
    """`summary`: drift/summary.json; `comparisons`: comparisons.json; `serving_summary`: the
    serving stage's summary.json (None: serving did not run). Nothing when no variant is trained."""
    if not results or summary is None:
        return []
    return [
        Section("drift", "Representational drift by layer", _drift_body(results, summary, serving_summary)),
        Section("cka-matrices", "CKA between base and tuned layers", _heatmaps(results)),
        Section("forgetting", "Forgetting: cross-entropy on held-out and general text", _forgetting(summary)),
        Section("learning-forgetting", "Learning against forgetting", _learning_forgetting(summary, comparisons)),
    ]


def drift_number(value: float) -> str:
    """Four decimals, or three significant digits for drifts too small to show in four
    (a short training run moves representations by 1e-5)."""
    return f"{value:.3e}" if 0 < abs(value) < 5e-4 else f"{value:.4f}"


def interval_text(interval: Mapping[str, float], *, number: Any = drift_number) -> str:
    return f"{number(interval['estimate'])} [{number(interval['low'])}, {number(interval['high'])}]"


def _defined(values: Sequence[float | None]) -> list[float]:
    """The values where CKA is defined (None: a layer whose features do not vary)."""
    return [value for value in values if value is not None]


def _span(values: Sequence[float], digits: int) -> str:
    return f"{min(values):.{digits}f} to {max(values):.{digits}f}" if values else "undefined"


def _mean(values: Sequence[float | None]) -> str:
    defined = _defined(values)
    return f"{sum(defined) / len(defined):.4f}" if defined else "undefined"


def _drift_body(
    results: Sequence[DriftResult], summary: Mapping[str, Any], serving_summary: Mapping[str, Any] | None
) -> str:
    first = results[0].metrics
    run = summary["run"]
    self_cka = _defined(first["baselines"]["self"]["cka_debiased"])
    chance = _defined(first["baselines"]["shuffled"]["cka_debiased"])
    chance_biased = _defined(first["baselines"]["shuffled"]["cka_biased"])
    scope = (
        "the example's own input tokens (template, instruction, attention sink and padding masked)"
        if first["tokens"] == "input"
        else "every prompt token (template and instruction included: they are the same in every prompt and "
        "dominate the pooled vector, so CKA reads high whatever training did)"
    )
    rows = []
    for group, info in summary["metrics"]["groups"].items():
        layers = info["per_layer"]
        largest = max(layers, key=lambda row: row["estimate"] if row["estimate"] == row["estimate"] else -1.0)
        members = [r for r in results if r.name in info["variants"]]
        # The same layers as the mean drift (layer 0 out unless drift.include_embeddings), over the seeds.
        first_layer = 0 if run["include_embeddings"] else 1
        per_layer = [row for r in members for row in r.metrics["per_layer"] if row["layer"] >= first_layer]
        token = [row.get("token_cka_debiased") for row in per_layer]
        rows.append(
            [
                group,
                info["seeds"],
                interval_text(info["mean_drift"]),
                f"{drift_number(largest['estimate'])} (layer {largest['layer']})",
                _mean([row["cka_biased"] for row in per_layer]),
                _mean([row["cosine_centred"] for row in per_layer]),
                _mean(token) if any(value is not None for value in token) else "-",
                gain_text(info.get("gain_over_base")),
            ]
        )
    protocol = (
        f"<p class=muted>{first['examples']} prompts (texts outside every training subset, built as in evaluation), "
        f"{first['layers']} hidden states (embeddings, then each block's output; the last after the final norm), "
        f"pooled by <b>{escape(first['pooling'])}</b> over <b>{escape(scope)}</b>. Drift = 1 - linear CKA with the "
        f"debiased (unbiased HSIC) estimator; mean drift over {escape(run['mean_over'])}"
        f"{'' if run['include_embeddings'] else ' (layer 0, the embedding lookup, left out)'}. Intervals: "
        f"{run['confidence']:.0%}, {escape(run['interval'])}, {run['resamples']:,} resamples. Baselines on the base "
        f"model: itself gives CKA {_span(self_cka, 4)} (a check of the estimator); a shuffled pairing of prompts, none "
        f"with itself (chance at this sample size), gives debiased CKA {_span(chance, 3)} and biased "
        f"{_span(chance_biased, 3)}. Cosine is of matched prompts after subtracting each model's mean feature "
        "(uncentred, different prompts already score near 1).</p>"
    )
    header = [
        "group",
        "seeds",
        "mean drift [interval]",
        "largest drift",
        "mean biased CKA",
        "mean centred cosine",
        "mean token-level CKA (debiased)",
        "gain over the base shown",
    ]
    return _drift_plot(results, summary) + protocol + table(header, rows) + _verdict_text(summary, serving_summary)


def serving_alternative(serving_summary: Mapping[str, Any] | None) -> str:
    """Where the criterion's other alternative (at most a serving overhead) is judged: in Study 4's
    success criteria when the serving stage ran, nowhere in this run otherwise."""
    if serving_summary is None:
        return (
            "The criterion's alternative, a bounded serving overhead, was not judged in this run: the serving stage "
            "did not run (serving.enabled false, or no LoRA variant to serve)."
        )
    limit = serving_summary["run"]["settings"]["max_overhead"]
    return (
        f"The criterion's alternative, at most {limit:.0%} serving overhead of the unmerged adapter, is judged by the "
        "serving stage: Study 4's success criteria (below) combine quality, this drift leg and that serving leg."
    )


def _verdict_text(summary: Mapping[str, Any], serving_summary: Mapping[str, Any] | None) -> str:
    run = summary["run"]
    heading = (
        f"<h3>Study 4's criterion: LoRA within {run['max_quality_gap']:.2f} of full fine-tuning's quality "
        f"and at least {run['criterion']:.0%} less drift</h3>"
    )
    verdicts = summary["metrics"]["verdicts"]
    if not verdicts:
        return heading + (
            "<p>No verdict: no LoRA variant has a full fine-tuning run on the same data (training.fft.enabled).</p>"
        )
    items = "".join(f"<li>{escape(v['text'])}</li>" for v in verdicts)
    return (
        heading
        + f"<ul>{items}</ul>"
        + (
            "<p class=muted>Drift holds when the whole interval of the drift ratio LoRA / FFT is at or below "
            f"{1 - run['criterion']:.2f}, does not hold when the whole interval is above, and is not supported when the "
            "interval straddles it. Ratio intervals are simultaneous over the verdicts (Bonferroni). Quality holds when "
            "the paired interval of FFT minus LoRA lies below the gap (comparisons). "
            + escape(serving_alternative(serving_summary))
            + "</p>"
        )
    )


def _forgetting(summary: Mapping[str, Any]) -> str:
    rows = []
    for group, info in summary["metrics"]["groups"].items():
        cells = [group]
        for name in TEXT_LABELS:
            f = info["forgetting"][name]
            cells.append(interval_text(f, number=lambda v: f"{v:+.4f}"))
        rows.append(cells)
    any_group = next(iter(summary["metrics"]["groups"].values()))["forgetting"]
    base = "; ".join(
        f"{TEXT_LABELS[name]}: {any_group[name]['texts']} texts, base {any_group[name]['base_mean_nll']:.4f} nats/token"
        for name in TEXT_LABELS
    )
    return table(["group", *(f"change on {label}" for label in TEXT_LABELS.values())], rows) + (
        f"<p class=muted>Forgetting = mean token cross-entropy of the tuned model minus the base's on the same texts "
        f"(nats per token; positive: the tuning cost language modelling there), token-weighted, with a paired "
        f"bootstrap interval over texts. {escape(base)}. In-domain text is from the task's own source, where "
        "tuning usually helps; general text is from another domain, where forgetting shows.</p>"
    )


def _learning_forgetting(summary: Mapping[str, Any], comparisons: Mapping[str, Any]) -> str:
    """One point per group: quality gain over the base (paired interval, comparisons) against
    forgetting on general text (interval); frontier points marked."""
    against_base = {c["b"]: c for c in comparisons["metrics"]["comparisons"] if c["a"] == "base"}
    points = [
        (group, info["forgetting"]["general"], against_base[group]["difference"])
        for group, info in summary["metrics"]["groups"].items()
        if group in against_base
    ]
    if not points:
        return "<p>No comparison with the base model to plot.</p>"
    frontier = {
        group
        for group, f, gain in points
        if not any(
            o_f["estimate"] <= f["estimate"]
            and o_gain["mean"] >= gain["mean"]
            and (o_f["estimate"], o_gain["mean"]) != (f["estimate"], gain["mean"])
            for _, o_f, o_gain in points
        )
    }

    def draw(figure: Figure, axes: Axes) -> None:
        for colour, (group, f, gain) in zip(palette(len(points)), points, strict=True):
            axes.errorbar(
                f["estimate"],
                gain["mean"],
                xerr=[[f["estimate"] - f["low"]], [f["high"] - f["estimate"]]],
                yerr=[[gain["mean"] - gain["low"]], [gain["high"] - gain["mean"]]],
                fmt="D" if group in frontier else "o",
                color=colour,
                capsize=3,
                label=f"{group}{' (frontier)' if group in frontier else ''}",
            )
        axes.axhline(0, color="black", linewidth=0.8)
        axes.axvline(0, color="black", linewidth=0.8)
        axes.set_xlabel("forgetting on general text: cross-entropy change, nats/token (lower is better)")
        axes.set_ylabel(
            f"{comparisons['run'].get('metric_label', comparisons['run']['metric'])} gain over the base (higher is better)"
        )
        axes.set_title("Learning against forgetting")
        axes.legend(fontsize=8)

    return plot_svg(draw, figsize=(7.0, 4.4)) + (
        "<p class=muted>Each point is a variant group: its quality gain over the base model with the paired interval "
        "of the comparisons, against its forgetting on general text with its interval. Frontier (diamonds): no other "
        "group learns more while forgetting less.</p>" + metric_note(comparisons["run"])
    )


def _drift_plot(results: Sequence[DriftResult], summary: Mapping[str, Any]) -> str:
    """1 - debiased CKA by layer with its interval band, one line per group (FFT dashed), as inline SVG."""
    groups = summary["metrics"]["groups"]
    # Full fine-tuning by the spec each drift.json records, not by the look of a name.
    fft = {r.name for r in results if r.is_fft}

    def draw(figure: Figure, axes: Axes) -> None:
        for colour, (group, info) in zip(palette(len(groups)), groups.items(), strict=True):
            layers = [row["layer"] for row in info["per_layer"]]
            axes.plot(
                layers,
                [row["estimate"] for row in info["per_layer"]],
                label=group,
                color=colour,
                linestyle="--" if set(info["variants"]) <= fft else "-",
                marker="o",
                markersize=3,
            )
            axes.fill_between(
                layers,
                [row["low"] for row in info["per_layer"]],
                [row["high"] for row in info["per_layer"]],
                color=colour,
                alpha=0.2,
                linewidth=0,
            )
        axes.set_xlabel("layer (0 = embeddings)")
        axes.set_ylabel("drift: 1 - CKA (debiased)")
        axes.set_title("Drift from the base model by layer (bands: intervals; dashed: full fine-tuning)")
        axes.legend(fontsize=8)

    return plot_svg(draw, figsize=(7.0, 4.2))


def _heatmaps(results: Sequence[DriftResult]) -> str:
    columns = min(3, len(results))
    rows = -(-len(results) // columns)

    def draw(figure: Figure, grid: np.ndarray) -> None:
        for axes, r in zip(
            grid.flat, results, strict=False
        ):  # the grid may have more cells than results: those are hidden below
            matrix = [
                [float("nan") if value is None else value for value in row] for row in r.metrics["matrix"]["debiased"]
            ]
            image = axes.imshow(matrix, vmin=0, vmax=1, cmap="viridis", aspect="equal", interpolation="nearest")
            figure.colorbar(image, ax=axes, shrink=0.7)
            axes.set_title(r.name, fontsize=9)
            axes.set_xlabel("tuned layer")
            axes.set_ylabel("base layer")
        for axes in list(grid.flat)[len(results) :]:
            axes.set_visible(False)
        figure.tight_layout()

    return plot_svg(draw, figsize=(4.2 * columns, 3.8 * rows), nrows=rows, ncols=columns, style="white", grid=True) + (
        "<p class=muted>Debiased linear CKA of every base layer (rows) against every tuned layer (columns); "
        "a bright diagonal means each layer still represents the examples as the base's same layer does. "
        "Both estimators' matrices are in each variant's cka_matrix.npz.</p>"
    )
