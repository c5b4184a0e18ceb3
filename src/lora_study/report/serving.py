"""The serving stage's sections (Study 4's deployment half, Study 2's merge): latency and
throughput against batch size per mode, memory per mode, the overhead verdicts, the
multi-adapter table, the merge checks and Study 4's success criteria in one table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from lora_study.core.results import read_result
from lora_study.report.inputs import Files, Stage
from lora_study.report.page import Section, escape, table
from lora_study.report.plotting import palette, plot_svg

MB = 1e6


def sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    if not files["serving_summary"]:
        return []
    summary = read_result(files["serving_summary"][0])
    served = [read_result(path) for path in files["serving"]]
    multi = read_result(files["multi_adapter"][0]) if files["multi_adapter"] else None
    body = (
        _conditions(served, multi)
        + _latency_plots(served)
        + _memory_table(served)
        + _overhead_table(summary)
        + _multi_adapter(summary, multi)
        + _merges(summary)
    )
    return [
        Section("serving", "Serving: merged vs unmerged adapters, batch 1-16, several adapters at once", body),
        Section("study4", "Study 4: success criteria", _criteria(summary)),
    ]


STAGE = Stage(name="serving", inputs=("serving", "multi_adapter", "serving_summary"), sections=sections)


def _label(result: Mapping[str, Any]) -> str:
    run = result["run"]
    return "base" if run["mode"] == "base" else f"{run['variant']} {run['mode']}"


def _conditions(served: Sequence[Mapping[str, Any]], multi: Mapping[str, Any] | None) -> str:
    first = served[0]
    settings = first["run"]["config"]["serving"]
    files = [(_label(r), r["metrics"]["under_load"]) for r in served]
    if multi is not None:
        files.append(("multi-adapter", multi["metrics"].get("under_load")))
    loaded = [label for label, flag in files if flag is True]
    unknown = [label for label, flag in files if flag is None]
    if loaded:
        load_note = (
            f"<p><strong>Taken under load:</strong> {escape(', '.join(loaded))}: other processes used CPU this job "
            "needed during some timed calls (the files' under_load_definition); those overheads support no verdict.</p>"
        )
    elif unknown:
        load_note = f"<p>Load not measurable on this OS for: {escape(', '.join(unknown))}.</p>"
    else:
        load_note = "<p class=muted>No timed call was taken under load.</p>"
    return (
        f"<p>Every mode served the same requests: the first evaluation prompts, inputs cut to "
        f"{settings['max_prompt_tokens']} prompt tokens; at batch size b the first b of them. Each call generated "
        f"exactly {settings['new_tokens']} tokens per request (greedy, EOS suppressed); {settings['warmup']} untimed "
        f"and {settings['repeats']} timed passes per batch size, on {escape(first['meta']['device_name'])}, "
        f"{escape(first['meta']['dtype'])}, {first['meta']['torch_threads']} torch threads. A variant's merged and "
        "unmerged modes ran in one job, their passes alternating, so the overhead is measured pass by pass.</p>"
        + load_note
    )


def _latency_plots(served: Sequence[Mapping[str, Any]]) -> str:
    colours = palette(len(served))

    def draw(figure: Figure, axes: Any) -> None:
        latency, throughput = axes
        for colour, result in zip(colours, served, strict=True):
            batches = result["metrics"]["batches"]
            sizes = [b["batch_size"] for b in batches]
            p50 = [b["metrics"]["request_latency_seconds"]["p50"] for b in batches]
            p95 = [b["metrics"]["request_latency_seconds"]["p95"] for b in batches]
            tps = [b["metrics"]["throughput_tokens_per_second"]["p50"] for b in batches]
            latency.plot(sizes, p50, marker="o", color=colour, label=f"{_label(result)} p50")
            latency.plot(sizes, p95, marker="x", linestyle="--", color=colour, label=f"{_label(result)} p95")
            throughput.plot(sizes, tps, marker="o", color=colour, label=_label(result))
        for ax, ylabel in ((latency, "request latency (s)"), (throughput, "throughput (tokens/s, median pass)")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("batch size")
            ax.set_ylabel(ylabel)
        latency.set_title("Latency per request: p50 (solid), p95 (dashed)")
        throughput.set_title("Aggregate throughput")
        throughput.legend(fontsize="small")

    return plot_svg(draw, figsize=(11, 4), ncols=2)


def _memory_table(served: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for result in served:
        metrics = result["metrics"]
        peaks = [b["metrics"]["peak_rss_bytes"] for b in metrics["batches"]]
        cuda = [b["metrics"]["peak_cuda_bytes"] for b in metrics["batches"] if b["metrics"]["peak_cuda_bytes"]]
        rows.append(
            [
                _label(result),
                f"{metrics['load_seconds']:.2f}",
                f"{metrics['weight_bytes'] / MB:,.1f}",
                f"{max(peaks) / MB:,.1f}",
                f"{max(cuda) / MB:,.1f}" if cuda else "n/a",
            ]
        )
    return "<h3>Memory per mode</h3>" + table(
        ["mode", "load s", "weights held MB", "peak RSS MB (largest batch)", "peak CUDA MB"], rows
    )


def _overhead_table(summary: Mapping[str, Any]) -> str:
    rows = summary["metrics"]["overhead"]
    if not rows:
        return ""
    body = [
        [
            r["variant"],
            r["batch_size"],
            f"{r['merged_latency_seconds']:.3f}",
            f"{r['unmerged_latency_seconds']:.3f}",
            f"{r['merged_p95_seconds']:.3f}",
            f"{r['unmerged_p95_seconds']:.3f}",
            f"{r['overhead']['estimate']:+.1%}",
            f"[{r['overhead']['low']:+.1%}, {r['overhead']['high']:+.1%}]",
            f"{r['outcome']}" + {True: " (under load)", None: " (load unknown)"}.get(r["under_load"], ""),
        ]
        for r in rows
    ]
    confidence = rows[0]["overhead"]["confidence"]
    return (
        "<h3>Overhead of the unmerged adapter</h3>"
        + table(
            [
                "variant",
                "batch",
                "merged mean s",
                "unmerged mean s",
                "merged p95 s",
                "unmerged p95 s",
                "overhead",
                f"{confidence:.2%} interval",
                f"at most {rows[0]['max_overhead']:.0%}",
            ],
            body,
        )
        + f"<p class=muted>{escape(summary['run']['overhead_definition'])}. Holds: the whole interval is at or "
        "below the limit; does not hold: the whole interval is above it; otherwise not supported.</p>"
    )


def _multi_adapter(summary: Mapping[str, Any], multi: Mapping[str, Any] | None) -> str:
    rows = summary["metrics"]["multi_adapter"]
    excluded = summary["metrics"]["multi_adapter_excluded"]
    if multi is None:
        return ""
    adapters = multi["run"]["adapters"]
    text = (
        f"<h3>Several adapters at once</h3><p>{len(adapters)} adapters ({escape(', '.join(adapters))}) on one base; "
        "request i asks for adapter i mod k. <em>mixed</em>: one call per batch, each row its own adapter; "
        "<em>grouped</em>: one call per adapter in the batch, switching the active adapter; <em>merged</em>: "
        "one merged model per adapter, one call per adapter.</p>"
    )
    if excluded:
        text += "<p>Left out: " + "; ".join(f"{escape(k)}: {escape(v)}" for k, v in excluded.items()) + ".</p>"
    body = [
        [
            r["mode"],
            r["batch_size"],
            r["calls_per_batch"],
            f"{r['throughput_tokens_per_second']:.1f}",
            f"{r['p50_latency_seconds']:.3f}",
            f"{r['p95_latency_seconds']:.3f}",
            f"{r['weight_bytes'] / MB:,.1f}",
            f"{r['peak_rss_bytes'] / MB:,.1f}",
        ]
        for r in rows
    ]
    return text + table(
        ["mode", "batch", "calls", "tokens/s", "p50 s", "p95 s", "weights held MB", "peak RSS MB"], body
    )


def _merges(summary: Mapping[str, Any]) -> str:
    merges = summary["metrics"]["merges"]
    if not merges:
        return ""
    body = [
        [
            m["variant"],
            m["dtype"],
            f"{m['max_abs_logit_difference']:.2e}",
            f"{m['tolerance']:.1e}",
            "" if m.get("adapter_max_abs_logit_effect") is None else f"{m['adapter_max_abs_logit_effect']:.2e}",
            f"{m['top_token_agreement']:.2%}",
            f"{m['merged_bytes'] / MB:,.1f}",
        ]
        for m in merges
    ]
    # A tolerance at or above the adapter's own effect passes any merge, a wrong one too.
    blind = [m for m in merges if m.get("tolerance_below_adapter_effect") is False]
    warning = (
        "<p><strong>The merge check could not fail</strong> for "
        + ", ".join(
            f"{escape(m['variant'])} (tolerance {m['tolerance']:.3g} &ge; the adapter's own effect "
            f"{m['adapter_max_abs_logit_effect']:.3g})"
            for m in blind
        )
        + ": a merge that dropped the adapter would pass it too. Set serving.merge.tolerance below the "
        "adapter's effect.</p>"
        if blind
        else ""
    )
    return (
        "<h3>Merged exports</h3>"
        + warning
        + table(
            [
                "variant",
                "dtype",
                "max |logit diff|",
                "tolerance",
                "adapter's own max |logit change|",
                "top token agrees",
                "size MB",
            ],
            body,
        )
        + (
            "<p class=muted>Each adapter merged into its base (QLoRA: the de-quantised 4-bit base) and exported as a "
            "plain model folder; its logits against the unmerged adapter's on every evaluation prompt. The adapter's "
            "own change (unmerged adapter against the base, first batch of prompts) is what a wrong merge would "
            "move the logits by: the tolerance must be below it for the check to mean anything.</p>"
        )
    )


def _criteria(summary: Mapping[str, Any]) -> str:
    rows = summary["metrics"]["criteria"]
    if not rows:
        return "<p>No LoRA variant has a full fine-tuning partner: Study 4's criteria cannot be judged.</p>"
    body = []
    for r in rows:
        quality = r["quality"]
        diff = quality.get("difference")
        quality_text = (
            f"{diff['mean']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}] ≤ {quality['max_gap']}: {quality['outcome']}"
            if diff
            else quality["outcome"]
        )
        ratio = r["drift"]["ratio"]
        drift_text = (
            f"{ratio['estimate']:.3f} [{ratio['low']:.3f}, {ratio['high']:.3f}] ≤ {r['drift']['threshold']:.2f}: "
            f"{r['drift']['outcome']}" + (f" (but {r['drift']['caveat']})" if r["drift"].get("caveat") else "")
        )
        worst = r["serving"]["worst"]
        serving_text = (
            f"worst at batch {worst['batch_size']}: {worst['overhead']['estimate']:+.1%} "
            f"[{worst['overhead']['low']:+.1%}, {worst['overhead']['high']:+.1%}]: {r['serving']['outcome']}"
            if worst
            else r["serving"]["outcome"]
        )
        body.append([f"{r['variant']} vs {r['fft']}", quality_text, drift_text, serving_text, r["criterion"]])
    sources = rows[0]
    return (
        "<p>Study 4 succeeds for a LoRA variant when its quality is within the gap of full fine-tuning, and "
        f"either it drifts at least {1 - sources['drift']['threshold']:.0%} less than full fine-tuning or its "
        "unmerged serving overhead is at most the limit at every batch size. Each leg is judged on its "
        "interval.</p>"
        + table(
            [
                "LoRA vs FFT",
                "quality: FFT − LoRA [interval]",
                "drift ratio LoRA / FFT [interval]",
                "serving overhead",
                "criterion",
            ],
            body,
            numeric_from=5,
        )
        + "<p class=muted>Sources: quality "
        + escape(sources["quality"]["source"])
        + "; drift "
        + escape(sources["drift"]["source"])
        + "; serving "
        + escape(sources["serving"]["source"])
        + ".</p>"
    )
