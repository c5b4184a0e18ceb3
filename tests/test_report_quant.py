"""The quantisation stage's section: numbers come from the result files; the plot is inline SVG."""

from __future__ import annotations

from typing import Any

from lora_study.report.quantisation import PrecisionResult, quantisation_sections
from lora_study.report.summary import latency_against


def result(
    name: str,
    *,
    p50: float,
    p95: float,
    rouge_l: float,
    weights: str,
    backend: str,
    device: str = "cpu",
    under_load: bool | None = False,
) -> PrecisionResult:
    summary = {"n": 4, "mean": p50, "std": 0.0, "min": p50, "p50": p50, "p95": p95, "max": p95}
    latency: dict[str, Any] = {
        "run": {"example_ids": ["a", "b"], "config": {"latency": {"repeats": 2}}},
        "metrics": {
            "load_seconds": 1.25,
            "weight_bytes": 220_000_000,
            "peak_rss_bytes": 1_200_000_000,
            "peak_cuda_bytes": None,
            "latency_seconds": summary,
            "ttft_seconds": {**summary, "p50": 0.5},
            "decode_tokens_per_second": {**summary, "p50": 7.0},
            "tokens_per_second": 32 / p50,
            "batch_size": 1,
            "new_tokens": 32,
            "warmup_runs": 1,
            "timed_runs": 4,
            "under_load": under_load,
            "runs_under_load": 2 if under_load else 0,
        },
        "meta": {
            "device": device,
            "device_name": "NVIDIA H200" if device == "cuda" else "x86_64 (2 threads)",
            "torch_threads": 2,
            "dtype": weights,
            "model": {"weights": weights, "compute_dtype": "float32", "backend": backend},
        },
    }
    mean = {kind: rouge_l for kind in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
    scores = {"run": {"examples": 20, "task": "summarisation"}, "metrics": {"mean_values": mean}}
    return PrecisionResult(name=name, latency=latency, scores=scores)


def test_no_precision_no_section() -> None:
    assert quantisation_sections(results=[], comparisons=[], metric="rougeL") == []


def test_table_plot_and_ordering_come_from_the_results() -> None:
    results = [
        result("full", p50=3.4, p95=4.0, rouge_l=0.2379, weights="float32", backend="torch 2.13.0"),
        result("int8", p50=5.9, p95=6.6, rouge_l=0.2333, weights="int8", backend="bitsandbytes 0.50.2"),
        result("<b>x</b>", p50=2.2, p95=2.6, rouge_l=0.1351, weights="qint8", backend="torch"),
    ]
    [section] = quantisation_sections(results=results, comparisons=[], metric="rougeL")
    body = section.body
    assert section.anchor == "quantisation"
    for value in (
        "3.400",
        "6.600",
        "0.2379",
        "0.2333",
        "220.0",
        "1,200.0",
        "<td>int8</td><td>cpu</td><td>int8; compute float32; bitsandbytes 0.50.2</td>",  # device column
    ):
        assert value in body
    assert "<b>x</b>" not in body and "&lt;b&gt;x&lt;/b&gt;" in body  # names are escaped
    assert "fastest first: &lt;b&gt;x&lt;/b&gt; (2.200 s) &lt; full (3.400 s) &lt; int8 (5.900 s)" in body
    assert "<figure><svg" in body and "Latency vs quality" in body
    assert "peak CUDA MB" not in body  # CPU-only results: no CUDA column
    assert "Mixed devices" not in body  # one device: no warning


def test_a_cpu_timing_is_never_ranked_against_gpu_timings() -> None:
    """Under model.device auto on a GPU machine, int8-dynamic (CPU only) runs on the CPU: the
    table says where each precision ran, a warning names both devices, and each device has
    its own latency order."""
    results = [
        result("full", p50=0.40, p95=0.5, rouge_l=0.2379, weights="bfloat16", backend="torch", device="cuda"),
        result("int8", p50=0.90, p95=1.0, rouge_l=0.2333, weights="int8", backend="bitsandbytes", device="cuda"),
        result("int8-dynamic", p50=2.50, p95=2.9, rouge_l=0.1170, weights="qint8", backend="torch", device="cpu"),
    ]
    [section] = quantisation_sections(results=results, comparisons=[], metric="rougeL")
    body = section.body
    assert "<th>device</th>" in body
    assert "<td>int8-dynamic</td><td>cpu</td>" in body and "<td>full</td><td>cuda</td>" in body
    assert (
        "The precisions ran on different devices: full, int8 on cuda (NVIDIA H200); "
        "int8-dynamic on cpu (x86_64 (2 threads))" in body
    )
    assert "on cuda, fastest first: full (0.400 s) &lt; int8 (0.900 s)" in body
    assert "on cpu, fastest first: int8-dynamic (2.500 s)." in body
    assert "int8-dynamic (2.500 s) &lt;" not in body and "&lt; int8-dynamic" not in body  # never ranked together
    assert "device (full, int8)" in body and "device (int8-dynamic)" in body  # protocol: each device named
    assert "int8-dynamic (cpu)" in body  # the plot's label


def test_paired_tests_against_full_are_shown_when_given() -> None:
    results = [
        result("full", p50=3.4, p95=4.0, rouge_l=0.2379, weights="float32", backend="torch 2.13.0"),
        result("int8-dynamic", p50=1.2, p95=1.4, rouge_l=0.1170, weights="qint8", backend="torch"),
    ]
    record = {
        "a": "full",
        "b": "int8-dynamic",
        "difference": {"mean": -0.1209, "low": -0.1602, "high": -0.0811, "confidence": 0.95},
        "p_value": 0.0001,
        "p_adjusted": 0.0007,
        "family_size": 7,
        "examples": 20,
        "supported": True,
    }
    [section] = quantisation_sections(results=results, comparisons=[record], metric="rougeL")
    for value in (
        "int8-dynamic − full",
        "-0.1209",
        "[-0.1602, -0.0811]",
        "0.0001",
        "0.0007",
        "p Holm (7)",
        "rougeL difference",
    ):
        assert value in section.body
    [plain] = quantisation_sections(results=results, comparisons=[], metric="rougeL")
    assert "p Holm" not in plain.body  # no comparisons: no paired tests


def test_timings_taken_under_load_are_flagged_wherever_a_latency_or_its_ratio_shows() -> None:
    """A latency.json with `under_load: true` is marked in the table, the order, the ratio and the
    plot, with a note naming it, as the serving section does; a quiet run is not marked."""
    results = [
        result("full", p50=1.0, p95=1.1, rouge_l=0.2379, weights="float32", backend="torch"),
        result("int8", p50=2.62, p95=3.0, rouge_l=0.2333, weights="int8", backend="bitsandbytes", under_load=True),
    ]
    [section] = quantisation_sections(results=results, comparisons=[], metric="rougeL")
    body = section.body
    assert "<strong>Taken under load:</strong> int8: 2 of 4 timed runs" in body
    assert ">2.620 (under load)</td>" in body and ">1.000</td>" in body  # the quiet one is not marked
    assert "full (1.000 s) &lt; int8 (2.620 s) (under load)." in body
    assert "The slowest, int8 (under load), takes 2.62x the fastest, full, a ratio of timings taken under load." in body
    assert "int8 (under load)" in body.split("<figure>")[1]  # the plot's label
    quiet = [result("full", p50=1.0, p95=1.1, rouge_l=0.2, weights="float32", backend="torch")] * 2
    [plain] = quantisation_sections(results=quiet, comparisons=[], metric="rougeL")
    assert "under load" not in plain.body.replace("No timed run was taken under load", "")
    unknown = [result("full", p50=1.0, p95=1.1, rouge_l=0.2, weights="float32", backend="torch", under_load=None)]
    [unmeasured] = quantisation_sections(results=unknown, comparisons=[], metric="rougeL")
    assert "Load not measurable (or not recorded) for: full" in unmeasured.body and "(load unknown)" in unmeasured.body


def test_the_summary_flags_a_latency_ratio_of_timings_taken_under_load() -> None:
    """The summary's "2.62x full" is a clean ratio only when neither timing was under load."""

    def timing(p50: float, under_load: bool | None) -> dict[str, Any]:
        return {"metrics": {"latency_seconds": {"p50": p50}, "under_load": under_load}, "meta": {"device": "cpu"}}

    loaded = {"full": timing(1.0, False), "int8": timing(2.62, True)}
    assert latency_against(loaded, name="int8", reference="full") == (
        "2.620 s (under load) (2.62x full's 1.000 s: a ratio of timings taken under load, not of the precisions alone)"
    )
    reference_loaded = {"full": timing(1.0, True), "int8": timing(2.62, False)}
    assert "full's 1.000 s (under load): a ratio of timings taken under load" in latency_against(
        reference_loaded, name="int8", reference="full"
    )
    unknown = {"full": timing(1.0, None), "int8": timing(2.62, False)}
    assert latency_against(unknown, name="int8", reference="full").endswith(
        "(load unknown): the load during these timings is unknown)"
    )
    quiet = {"full": timing(1.0, False), "int8": timing(2.62, False)}
    assert latency_against(quiet, name="int8", reference="full") == "2.620 s (2.62x full's 1.000 s)"


KERNEL = {
    "cpu": {
        "model": "Intel(R) Xeon(R) Processor",
        "vendor": "GenuineIntel",
        "family": "6",
        "model_number": "143",
        "stepping": "8",
        "isa": ["avx2", "avx512f", "avx512_vnni", "amx_int8"],
    },
    "torch_cpu_capability": "AVX512",
    "torch_threads": 2,
    "torch_quantized_engine": "x86",
}


def test_the_quality_figures_name_the_machine_and_kernels_they_hold_on() -> None:
    """Quantised quality is one greedy run, repeatable on one machine only: beside the quality
    columns the section names each quality run's CPU, ISA, torch capability, quantized engine and
    bitsandbytes kernels (generation.json), and says a file that predates the record."""
    bnb_kernel = {
        **{k: v for k, v in KERNEL.items() if k != "torch_quantized_engine"},
        "bitsandbytes": {
            "device_kernels": ["int8_linear_matmul"],
            "native_library": "libbitsandbytes_cpu.so",
            "cpu_gemm_4bit_kernel": False,
        },
    }

    def with_generation(r: PrecisionResult, kernel: dict | None, workers: int = 1) -> PrecisionResult:
        model = {"kernel": kernel} if kernel else {}
        generation = {"run": {"workers": workers}, "meta": {"model": model}}
        return PrecisionResult(name=r.name, latency=r.latency, scores=r.scores, generation=generation)

    results = [
        with_generation(result("full", p50=1.0, p95=1.1, rouge_l=0.24, weights="float32", backend="torch"), None),
        with_generation(
            result("int8-dynamic", p50=0.8, p95=0.9, rouge_l=0.14, weights="qint8", backend="torch"), KERNEL, workers=2
        ),
        with_generation(result("int8", p50=2.6, p95=3.0, rouge_l=0.22, weights="int8", backend="bnb"), bnb_kernel),
    ]
    [section] = quantisation_sections(results=results, comparisons=[], metric="rougeL")
    body = section.body
    assert "The quality columns hold on this machine's kernels." in body
    assert (
        "<li>int8-dynamic: Intel(R) Xeon(R) Processor (vendor GenuineIntel, family 6, model 143, stepping 8); "
        "ISA avx2, avx512f, avx512_vnni, amx_int8; torch CPU capability AVX512; 2 torch threads; "
        "torch quantized engine x86 (2 worker processes of one thread each)</li>"
    ) in body
    assert "bitsandbytes&#x27; own kernels: int8_linear_matmul; native library libbitsandbytes_cpu.so" in body
    assert "4-bit matmul from the kernels package: not loaded" in body
    assert "<li>full: not recorded (a result file from before the kernel record)</li>" in body
    reused = {"run": {"workers": 1, "reused_from": {}}, "meta": {"device_name": "AMD EPYC (2 threads)", "model": {}}}
    results[0] = PrecisionResult(name="full", latency=results[0].latency, scores=results[0].scores, generation=reused)
    [section] = quantisation_sections(results=results, comparisons=[], metric="rougeL")
    assert "<li>full: the base evaluation&#x27;s run, unquantised, on AMD EPYC (2 threads)" in section.body
