"""The quantisation stage's section (Study 1, Part 1): per precision latency.json (timing,
memory) and scores.json (quality), and the paired tests against full from comparisons.json."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lora_study.core.conditions import load_mark
from lora_study.core.results import read_result
from lora_study.report.inputs import Files, Stage, by_variant, one, same_variants
from lora_study.report.page import Section, escape, table
from lora_study.report.plotting import palette, plot_svg
from lora_study.tasks import Task, task_named

MB = 1e6


@dataclass(frozen=True)
class PrecisionResult:
    """One precision's result files."""

    name: str
    latency: Mapping[str, Any]
    scores: Mapping[str, Any]
    generation: Mapping[str, Any] | None = None  # the quality run's generation.json

    @property
    def quality_kernel(self) -> Mapping[str, Any] | None:
        """The machine and kernels the quality run computed on (quantise.kernel_record); None
        where the file predates the record."""
        return None if self.generation is None else self.generation["meta"].get("model", {}).get("kernel")

    def quality(self, kind: str | None = None) -> float:
        """The mean of a metric of the task (None: the task's headline metric)."""
        return float(self.scores["metrics"]["mean_values"][kind or self.task.default_metric])

    @property
    def task(self) -> Task:
        return task_named(self.scores["run"].get("task", "summarisation"))

    @property
    def headline(self) -> str:
        return self.task.metric_labels[self.task.default_metric]

    @property
    def p50(self) -> float:
        return float(self.latency["metrics"]["latency_seconds"]["p50"])

    @property
    def p95(self) -> float:
        return float(self.latency["metrics"]["latency_seconds"]["p95"])

    @property
    def under_load(self) -> bool | None:
        """Whether a timed run was taken under load (latency.json; None: not measurable, or a file
        from before the flag)."""
        return self.latency["metrics"].get("under_load")

    @property
    def timed(self) -> str:
        """The name with the mark of its timing's load, for every place that shows a latency."""
        return f"{self.name}{load_mark(self.under_load)}"

    @property
    def device(self) -> str:
        """The device the timing ran on, as latency.json records it (int8-dynamic: the CPU,
        even where the other precisions ran on a GPU)."""
        return str(self.latency["meta"]["device"])

    @property
    def dtype_backend(self) -> str:
        model = self.latency["meta"].get("model", {})
        compute = model.get("compute_dtype")
        weights = model.get("weights", self.latency["meta"].get("dtype"))
        parts = [str(weights)]
        if compute and compute != weights:
            parts.append(f"compute {compute}")
        parts.append(str(model.get("backend", "?")))
        if model.get("cpu_kernel"):
            parts.append(model["cpu_kernel"])
        return "; ".join(parts)


def load_precisions(files: Files) -> list[PrecisionResult]:
    """Per precision, matched by the precision each file records; in input order."""
    latency, scores = by_variant(files["quant_latency"]), by_variant(files["quant_scores"])
    generation = by_variant(files["quant_generation"])
    same_variants(quant_latency=latency, quant_scores=scores, quant_generation=generation)
    return [
        PrecisionResult(name=name, latency=latency[name], scores=scores[name], generation=generation[name])
        for name in latency
    ]


def sections(*, files: Files, config: Mapping[str, Any]) -> list[Section]:
    comparisons = read_result(one(files, "comparisons"))
    return quantisation_sections(
        results=load_precisions(files),
        comparisons=comparisons["metrics"]["precisions"],
        metric=comparisons["run"].get("metric_label", comparisons["run"]["metric"]),
    )


STAGE = Stage(
    name="quantisation", inputs=("quant_latency", "quant_scores", "quant_generation", "comparisons"), sections=sections
)


def quantisation_sections(
    *, results: Sequence[PrecisionResult], comparisons: Sequence[Mapping[str, Any]], metric: str
) -> list[Section]:
    """The table, the paired tests against full (comparisons.json's `precisions` records,
    when given), the latency-vs-quality plot and the measured ordering; nothing when no
    precision is configured."""
    if not results:
        return []
    body = (
        _load(results)
        + _table(results)
        + _mixed_devices(results)
        + _paired_tests(comparisons, metric=metric)
        + _ordering(results)
        + latency_quality_plot(results)
        + _protocol(results)
    )
    return [Section("quantisation", "Quantisation: latency, memory and quality per precision", body)]


def _paired_tests(comparisons: Sequence[Mapping[str, Any]], *, metric: str) -> str:
    """Each precision against full on the same examples: difference, interval, raw and
    Holm-adjusted p (the family is every secondary comparison of the study)."""
    if not comparisons:
        return ""
    rows = [
        [
            f"{c['b']} − {c['a']}",
            f"{c['difference']['mean']:+.4f}",
            f"[{c['difference']['low']:+.4f}, {c['difference']['high']:+.4f}]",
            f"{c['p_value']:.3g}",
            f"{c['p_adjusted']:.3g}",
            "yes" if c["supported"] else "no",
        ]
        for c in comparisons
    ]
    first = comparisons[0]
    confidence = first["difference"]["confidence"]
    # The interval each record says it used (0/1 metrics: the paired-proportion one).
    methods = "; ".join(dict.fromkeys(c["difference"].get("method", "studentised bootstrap") for c in comparisons))
    return table(
        [
            "precision",
            f"{metric} difference",
            f"{confidence:.0%} interval",
            "p raw",
            f"p Holm ({first['family_size']})",
            "supported",
        ],
        rows,
        numeric_from=1,
    ) + (
        f"<p class=muted>Paired on the same {first['examples']} evaluation examples: "
        f"interval by {escape(methods)}, sign-flip permutation p, "
        f"Holm-adjusted over the {first['family_size']} secondary comparisons of the study. Supported: "
        "the adjusted p is below alpha and the interval excludes 0; the difference is that of this machine's "
        "kernels (above), not of the precision on every machine. Latency is not tested: its runs "
        "are repeated timings on one machine, summarised by p50 and p95.</p>"
    )


def by_device(results: Sequence[PrecisionResult]) -> dict[str, list[PrecisionResult]]:
    """The results grouped by the device their timing ran on, in order of first appearance."""
    groups: dict[str, list[PrecisionResult]] = {}
    for r in results:
        groups.setdefault(r.device, []).append(r)
    return groups


def _mixed_devices(results: Sequence[PrecisionResult]) -> str:
    """A warning when the precisions ran on different devices (int8-dynamic is CPU-only, so
    under `model.device: auto` on a GPU machine it runs on the CPU): timings compare only
    within a device."""
    groups = by_device(results)
    if len(groups) < 2:
        return ""
    ran = "; ".join(
        f"{', '.join(escape(r.name) for r in group)} on {escape(device)} "
        f"({escape(group[0].latency['meta']['device_name'])})"
        for device, group in groups.items()
    )
    return (
        f"<p><strong>Mixed devices.</strong> The precisions ran on different devices: {ran}. "
        "Latency, tokens/s and memory compare only between precisions on the same device; "
        "quality compares across them.</p>"
    )


def _load(results: Sequence[PrecisionResult]) -> str:
    """Which timings were taken under load, as the serving section says it: their latencies and
    every ratio to them are not the precision's own speed."""
    loaded = [r for r in results if r.under_load is True]
    unknown = [r for r in results if r.under_load is None]
    if loaded:
        runs = "; ".join(
            f"{escape(r.name)}: {r.latency['metrics'].get('runs_under_load', '?')} of "
            f"{r.latency['metrics']['timed_runs']} timed runs"
            for r in loaded
        )
        return (
            f"<p><strong>Taken under load:</strong> {runs}: other processes used CPU this job needed during those "
            "runs (latency.json's under_load_definition). Their latencies, throughput and every ratio or order "
            "below that involves them measure the machine's load as well as the precision.</p>"
        )
    if unknown:
        return f"<p>Load not measurable (or not recorded) for: {escape(', '.join(r.name for r in unknown))}.</p>"
    return "<p class=muted>No timed run was taken under load.</p>"


def _mb(value: Any) -> str:
    return "n/a" if value is None else f"{value / MB:,.1f}"


def _table(results: Sequence[PrecisionResult]) -> str:
    gpu = any(r.latency["metrics"].get("peak_cuda_bytes") is not None for r in results)
    header = [
        "precision",
        "device",
        "dtype / backend",
        "load s",
        "latency p50 s",
        "latency p95 s",
        "TTFT p50 s",
        "tokens/s",
        "decode tokens/s",
        "weights MB",
        "peak RSS MB",
        *(["peak CUDA MB"] if gpu else []),
        *(results[0].task.metric_labels[kind] for kind in results[0].task.metrics),
    ]
    rows = []
    for r in results:
        metrics = r.latency["metrics"]
        decode = metrics.get("decode_tokens_per_second")
        rows.append(
            [
                r.name,
                r.device,
                r.dtype_backend,
                f"{metrics['load_seconds']:.2f}",
                f"{r.p50:.3f}{load_mark(r.under_load)}",
                f"{r.p95:.3f}",
                f"{metrics['ttft_seconds']['p50']:.3f}",
                f"{metrics['tokens_per_second']:.1f}",
                f"{decode['p50']:.1f}" if decode else "n/a",
                _mb(metrics["weight_bytes"]),
                _mb(metrics["peak_rss_bytes"]),
                *([_mb(metrics.get("peak_cuda_bytes"))] if gpu else []),
                *(f"{r.quality(kind):.4f}" for kind in r.task.metrics),
            ]
        )
    note = (
        "<p class=muted>Latency per example: wall time of the generate() call that produced it. "
        "tokens/s: all timed new tokens over all timed seconds; decode tokens/s: after the first "
        "token (median over runs). Weights: bytes of the tensors the loaded model holds (quantised "
        "weights with their scales; embeddings and output head stay at full precision). Peak RSS: "
        "the process's peak resident memory, loading included. Quality: mean over "
        f"{results[0].scores['run']['examples']} evaluation examples, from predictions that stop "
        "naturally (the quality run, separate from the timed runs).</p>"
    )
    metric_notes = results[0].task.notes_for(results[0].task.metrics)
    note += f"<p class=muted>{escape(metric_notes)}.</p>" if metric_notes else ""
    return table(header, rows, numeric_from=3) + note + _quality_kernels(results)


def kernel_text(kernel: Mapping[str, Any] | None) -> str:
    """One line of what a run's arithmetic depended on (quantise.kernel_record)."""
    if not kernel:
        return "not recorded (a result file from before the kernel record)"
    cpu = kernel["cpu"]
    chip = f"{cpu['model']}" + (
        f" (vendor {cpu['vendor']}, family {cpu['family']}, model {cpu['model_number']}, stepping {cpu['stepping']})"
        if cpu.get("vendor")
        else ""
    )
    parts = [
        chip,
        f"ISA {', '.join(cpu['isa']) or 'none of the listed'}" if cpu.get("isa") is not None else "ISA unknown",
        f"torch CPU capability {kernel['torch_cpu_capability']}",
        f"{kernel['torch_threads']} torch threads",
    ]
    if "gpu" in kernel:
        gpu = kernel["gpu"]
        parts.insert(0, f"{gpu['name']} (compute capability {gpu['capability']}, CUDA {gpu['cuda']})")
    if "torch_quantized_engine" in kernel:
        parts.append(f"torch quantized engine {kernel['torch_quantized_engine']}")
    if "bitsandbytes" in kernel:
        bnb = kernel["bitsandbytes"]
        own = ", ".join(bnb["device_kernels"]) or "none (plain torch fallbacks)"
        parts.append(f"bitsandbytes' own kernels: {own}; native library {bnb['native_library'] or 'none'}")
        if bnb.get("cpu_gemm_4bit_kernel") is not None:
            parts.append(
                f"4-bit matmul from the kernels package: {'loaded' if bnb['cpu_gemm_4bit_kernel'] else 'not loaded'}"
            )
    return "; ".join(parts)


def _quality_machine(result: PrecisionResult) -> str:
    """kernel_text of the quality run; for `full`, whose predictions are the base evaluation's
    (lora_study.stages.evaluate.reuse), that run's machine: it loads no quantised kernel."""
    generation = result.generation or {}
    if result.quality_kernel is None and "reused_from" in generation.get("run", {}):
        return (
            f"the base evaluation's run, unquantised, on {generation['meta']['device_name']} "
            "(kernels are recorded for the quantisation stage's own runs)"
        )
    return kernel_text(result.quality_kernel)


def _quality_kernels(results: Sequence[PrecisionResult]) -> str:
    """Next to the quality figures: they are one greedy run each, repeatable on one machine and
    its kernels only. The same int8 models scored differently on CPUs with other instruction sets
    (recorded runs in docs/results), so each quality run's machine and kernels are named."""
    items = "".join(
        f"<li>{escape(r.name)}: {escape(_quality_machine(r))}"
        + (
            f" ({r.generation['run']['workers']} worker processes of one thread each)"
            if r.generation and r.generation["run"].get("workers", 1) > 1
            else ""
        )
        + "</li>"
        for r in results
    )
    return (
        "<p><strong>The quality columns hold on this machine's kernels.</strong> Each precision's quality is one "
        "greedy run: the same code and config give the same figure again on the same machine, but the quantised "
        "precisions' arithmetic depends on the CPU's instruction set (AVX2, AVX-512 and its VNNI and BF16 parts, "
        "AMX) or the GPU, on torch's quantized engine and on which bitsandbytes kernels loaded, and another "
        "machine can give other outputs and another figure. The quality runs computed on:</p>"
        f"<ul>{items}</ul>"
    )


def _ordering(results: Sequence[PrecisionResult]) -> str:
    """The finding, computed: the order by median latency (within each device: a CPU timing
    is never ranked against GPU timings) and the spread of the headline metric."""
    groups = by_device(results)
    rouge_l = [r.quality() for r in results]
    spread = max(rouge_l) - min(rouge_l)
    orders = " ".join(
        _latency_order(group, where="" if len(groups) == 1 else f" on {escape(device)}")
        for device, group in groups.items()
    )
    return f"<p>{orders} {results[0].headline} ranges over {spread:.4f} ({min(rouge_l):.4f} to {max(rouge_l):.4f}).</p>"


def _latency_order(results: Sequence[PrecisionResult], *, where: str) -> str:
    by_latency = sorted(results, key=lambda r: r.p50)
    order = " &lt; ".join(f"{escape(r.name)} ({r.p50:.3f} s){load_mark(r.under_load)}" for r in by_latency)
    slowest, fastest = by_latency[-1], by_latency[0]
    loads = (slowest.under_load, fastest.under_load)
    kind = (
        ", a ratio of timings taken under load"
        if True in loads
        else ", a ratio of timings whose load is unknown"
        if None in loads
        else ""
    )
    ratio = (
        f" The slowest, {escape(slowest.timed)}, takes {slowest.p50 / fastest.p50:.2f}x the fastest, "
        f"{escape(fastest.timed)}{kind}."
        if len(by_latency) > 1
        else ""
    )
    return f"Median latency per example{where}, fastest first: {order}.{ratio}"


def latency_quality_plot(results: Sequence[PrecisionResult]) -> str:
    """Latency (p50, whisker to p95) against the headline metric, one labelled point per precision, as inline SVG."""
    mixed = len(by_device(results)) > 1
    # With mixed devices each point says where it was timed.
    labels = [f"{r.timed} ({r.device})" if mixed else r.timed for r in results]
    p50, p95, quality = [r.p50 for r in results], [r.p95 for r in results], [r.quality() for r in results]

    def draw(figure: Figure, axes: Axes) -> None:
        axes.hlines(quality, p50, p95, colors="0.6", linewidth=1.5, zorder=1)
        axes.scatter(p50, quality, s=90, c=palette(len(results)), edgecolors="white", zorder=2)
        for label, x, y in zip(labels, p50, quality, strict=True):
            axes.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=10)
        axes.set_xlabel("latency p50 (s per example)")
        axes.set_ylabel(results[0].headline)
        axes.set_title("Latency vs quality per precision (line: p50 to p95)")
        axes.margins(x=0.15, y=0.25)
        axes.set_xlim(left=0)  # from zero, so distances show the real ratios

    return plot_svg(draw, figsize=(6.4, 4.2))


def _protocol(results: Sequence[PrecisionResult]) -> str:
    run, groups = results[0].latency, by_device(results)
    metrics, latency = run["metrics"], run["run"]["config"]["latency"]
    rows = [
        ("examples timed", len(run["run"]["example_ids"])),
        ("batch size (prompts per generate call)", metrics["batch_size"]),
        ("new tokens per prompt (forced, EOS suppressed)", metrics["new_tokens"]),
        ("warm-up runs (excluded)", metrics["warmup_runs"]),
        ("timed runs per precision (raw in latency.json)", metrics["timed_runs"]),
        ("repeats", latency["repeats"]),
        *(
            (
                f"device ({', '.join(r.name for r in group)})" if len(groups) > 1 else "device",
                f"{group[0].latency['meta']['device_name']}, "
                f"torch threads: {group[0].latency['meta'].get('torch_threads', '?')}",
            )
            for group in groups.values()
        ),
    ]
    return "<h3>Protocol</h3>" + table(["", ""], rows, numeric_from=99)
