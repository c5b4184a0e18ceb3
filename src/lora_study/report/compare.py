"""The comparison stage's sections: verdicts, forest plot, paired tests, seeds, failure modes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lora_study.core.results import read_result
from lora_study.report.inputs import Files, Stage, one
from lora_study.report.page import Section, escape, table
from lora_study.report.plotting import plot_svg
from lora_study.tasks import task_named


def sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    return comparison_sections(read_result(one(files, "comparisons")))


STAGE = Stage(name="compare", inputs=("comparisons",), sections=sections)


def comparison_sections(comparisons: Mapping[str, Any]) -> list[Section]:
    """`comparisons`: comparisons.json (its `run` and `metrics`)."""
    run = comparisons["run"]
    return [
        Section("verdicts", "Verdicts", _verdicts(comparisons)),
        Section(
            "differences",
            f"Differences ({run.get('metric_label', run['metric'])}, {run['confidence']:.0%} intervals)",
            _differences(comparisons),
        ),
        Section("seeds", "Seed-to-seed variation", _seeds(comparisons)),
        Section("failure-modes", "Failure modes", _failure_modes(comparisons)),
    ]


def supported_means(run: Mapping[str, Any]) -> str:
    """What "supported" means, in the report's words (docs/STATISTICS.md has the detail)."""
    alpha = run.get("alpha", 1 - run["confidence"])
    return (
        f"Supported means: the p-value the decision uses is below {alpha:g} and the {run['confidence']:.0%} "
        "interval excludes 0. That p is the raw one for a lone primary question (declared in advance, "
        "<code>statistics.primary</code>), and Holm-adjusted within its family otherwise: several primary "
        "questions form one family, every other comparison (against the base, rank against rank, LoRA "
        "against full fine-tuning, configured pairs, quantised precisions against full) another, so the "
        f"chance of any false &quot;supported&quot; in a family stays at most {alpha:g}. Intervals: "
        "studentised bootstrap over examples, never narrower than Student's t; for a 0/1 metric (accuracy, "
        "exact match) with one seed a side, Bonett and Price's interval for paired proportions, which keeps its "
        "level there where the bootstrap does not. With several seeds a "
        "difference must also hold over seeds (Welch t on per-seed means): the larger p and the wider "
        "interval of the two levels are used. Intervals are not adjusted for multiplicity."
    )


def metric_note(run: Mapping[str, Any]) -> str:
    """The task's note on the comparisons' metric, as a paragraph ("" when it has none)."""
    note = task_named(run.get("task", "summarisation")).notes_for([run["metric"]])
    return f"<p class=muted>{escape(note)}.</p>" if note else ""


def _verdicts(comparisons: Mapping[str, Any]) -> str:
    lines = [f"<li>{escape(v['text'])}</li>" for v in comparisons["metrics"]["verdicts"]]
    if not lines:
        return "<p>No primary question: the configuration trains fewer than two LoRA ranks and sets no <code>statistics.primary</code>.</p>"
    run = comparisons["run"]
    return (
        f"<ul>{''.join(lines)}</ul><p class=muted>The primary question: b minus a, on {run['examples']} evaluation "
        f"examples; {run['resamples']:,} resamples, seed {run['seed']}. {supported_means(run)}</p>"
    )


def _differences(comparisons: Mapping[str, Any]) -> str:
    records = comparisons["metrics"]["comparisons"]
    seeds = any(c.get("seed_level") for c in records)
    rows = [
        [
            f"{c['b']} − {c['a']}",
            c["why"],
            f"{c.get('family', '?')} ({c.get('family_size', '?')})",
            f"{c['difference']['mean']:+.4f}",
            f"[{c['difference']['low']:+.4f}, {c['difference']['high']:+.4f}]",
            f"{c['p_value']:.3g}",
            f"{c['p_adjusted']:.3g}" if c.get("adjustment") == "Holm" else "(none)",
            *([_p(c["example_level"]), _p(c["seed_level"])] if seeds else []),
            f"{c['seeds_a']} / {c['seeds_b']}",
            f"{c['seed_spread']:.4f}",
            "yes" if c["supported"] else "no",
            *detectable_cells(c),
            gap_cell(c),
            c["reason"],
        ]
        for c in records
    ]
    header = [
        "comparison",
        "why",
        "family (size)",
        "difference",
        "interval",
        "p raw",
        "p Holm",
        *(["p examples", "p seeds"] if seeds else []),
        "seeds",
        "seed spread",
        "supported",
        *DETECTABLE_HEADER,
        "LoRA within gap of FFT",
        "reason",
    ]
    run = comparisons["run"]
    gap = run.get("max_quality_gap")
    note = (
        f"<p class=muted>{supported_means(run)} "
        + (
            f"LoRA within gap of FFT: Study 4's criterion, LoRA no more than {gap:g} {run.get('metric_label', run['metric'])} below full "
            "fine-tuning at the far end of the interval (non-inferiority), not at the point estimate. "
            if gap is not None
            else ""
        )
        + detectable_means(run)
        + " How each number is computed and what it does not cover: docs/STATISTICS.md.</p>"
        + metric_note(run)
    )
    return _forest_plot(comparisons) + table(header, rows, numeric_from=3) + note


DETECTABLE_HEADER = ("detectable at 80% power (alpha)", "examples needed for the effect that matters")


def detectable_cells(comparison: Mapping[str, Any]) -> list[str]:
    """The detectable effect at the alpha it was computed at, and the examples needed to detect
    the effect that matters (comparisons.json's `detectable`; '' for a record without one)."""
    could = comparison.get("detectable")
    if not could:
        return ["", ""]
    mde = "undefined" if could["mde"] is None else f"{could['mde']:.4f}"
    needed = [f"{could['needed_examples']:,}"] if could["needed_examples"] is not None else []
    needed += [could["needed_note"]] if could.get("needed_note") else []
    return [f"{mde} ({could['alpha']:.3g})", f"{'; '.join(needed)} for {could['effect']:g}"]


def detectable_means(run: Mapping[str, Any]) -> str:
    """What the detectable effect and the examples needed are, in the report's words."""
    power = run.get("power", 0.8)
    return (
        f"Detectable: the difference this run would call with {power:.0%} power, from the observed spread of the "
        "per-example differences (and, with several seeds, of the per-seed means), at alpha for the lone primary "
        "question and at alpha / m in a Holm family of m (the level at which a comparison is called whatever the "
        "others' p-values). Examples needed: how many would give that power for the effect that matters "
        f"(<code>statistics.effect_size</code>, {run.get('effect_size', 0.03):g}; for LoRA against full "
        f"fine-tuning <code>statistics.max_quality_gap</code>, {run.get('max_quality_gap', 0.03):g}), the spreads "
        "held at the observed ones. A comparison that is not supported says which it is: a run that would have "
        "detected the effect that matters (which still does not show the two are equal), or one that could not."
    )


def _p(level: Mapping[str, Any] | None) -> str:
    return "n/a" if not level else f"{level['p_value']:.3g}"


def gap_cell(comparison: Mapping[str, Any]) -> str:
    """Study 4's "LoRA within the gap of FFT": yes, or not shown and why ('' where not asked)."""
    gap = comparison.get("quality_gap")
    if not gap:
        return ""
    if gap["holds"]:
        return "yes"
    return f"not shown: {gap['not_shown']}" if gap.get("not_shown") else "not shown"


def _forest_plot(comparisons: Mapping[str, Any]) -> str:
    against_base = [c for c in comparisons["metrics"]["comparisons"] if c["a"] == "base"]
    if not against_base:
        return ""

    def draw(figure: Figure, axes: Axes) -> None:
        for row, c in enumerate(reversed(against_base)):
            d = c["difference"]
            color = "#1b7837" if c["supported"] and d["mean"] > 0 else "#b2182b" if c["supported"] else "#555555"
            axes.errorbar(
                d["mean"], row, xerr=[[d["mean"] - d["low"]], [d["high"] - d["mean"]]], fmt="o", color=color, capsize=4
            )
        axes.axvline(0, color="black", linewidth=1)
        axes.set_yticks(range(len(against_base)), [c["b"] for c in reversed(against_base)])
        axes.set_xlabel(
            f"{comparisons['run'].get('metric_label', comparisons['run']['metric'])} difference against the base model"
        )
        axes.set_title("Variants against the base model (colour: supported after Holm)")

    return plot_svg(draw, figsize=(8, 0.5 * len(against_base) + 1.2))


def _seeds(comparisons: Mapping[str, Any]) -> str:
    rows = [
        [
            name,
            info["seeds"],
            ", ".join(f"{m:.4f}" for m in info["per_seed_means"]),
            f"{info['mean']:.4f}",
            f"{info['seed_std']:.4f}",
        ]
        for name, info in comparisons["metrics"]["groups"].items()
    ]
    return table(["group", "seeds", "per-seed means", "mean", "seed std"], rows)


def _failure_modes(comparisons: Mapping[str, Any]) -> str:
    task = task_named(comparisons["run"].get("task", "summarisation"))
    header = ["variant", *task.failure_labels.values(), *task.failure_means.values()]
    rows = []
    for name, info in comparisons["metrics"]["variants"].items():
        summary = info["failure_modes"]
        rates, means = summary["rates"], summary["means"]
        rows.append(
            [
                name,
                *(f"{rates[key]:.0%}" for key in task.failure_labels),
                *(f"{means[key]:.2f}" for key in task.failure_means),
            ]
        )
    return table(header, rows) + f"<p class=muted>{escape(task.failure_note)}</p>"
