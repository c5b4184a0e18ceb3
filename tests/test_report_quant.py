"""The quantisation stage's section: numbers come from the result files; the plot is inline SVG."""

from __future__ import annotations

from typing import Any

from lora_study.report.quantisation import PrecisionResult, quantisation_sections


def result(name: str, *, p50: float, p95: float, rouge_l: float, weights: str, backend: str) -> PrecisionResult:
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
        },
        "meta": {
            "device": "cpu",
            "device_name": "x86_64 (2 threads)",
            "torch_threads": 2,
            "dtype": weights,
            "model": {"weights": weights, "compute_dtype": "float32", "backend": backend},
        },
    }
    mean = {kind: {"fmeasure": rouge_l} for kind in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
    return PrecisionResult(name=name, latency=latency, rouge={"run": {"examples": 20}, "metrics": {"mean": mean}})


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
        "int8; compute float32; bitsandbytes 0.50.2, cpu",
    ):
        assert value in body
    assert "<b>x</b>" not in body and "&lt;b&gt;x&lt;/b&gt;" in body  # names are escaped
    assert "fastest first: &lt;b&gt;x&lt;/b&gt; (2.200 s) &lt; full (3.400 s) &lt; int8 (5.900 s)" in body
    assert "<figure><svg" in body and "Latency vs quality" in body
    assert "peak CUDA MB" not in body  # CPU-only results: no CUDA column


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
        "rougeL F difference",
    ):
        assert value in section.body
    [plain] = quantisation_sections(results=results, comparisons=[], metric="rougeL")
    assert "p Holm" not in plain.body  # no comparisons: no paired tests
