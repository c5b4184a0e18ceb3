"""Latency statistics on known arrays, and the timing loop on a tiny random Llama."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lora_study.model.loading import load_model, load_tokenizer
from lora_study.model.memory import current_rss_bytes, peak_rss_bytes, reset_peak_rss
from lora_study.model.prompts import PromptBuilder
from lora_study.model.timing import Run, latency_metrics, measure, percentile, summarise


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4], 50, 2.5),  # between the two middle values
        ([15, 20, 35, 40, 50], 50, 35),
        ([15, 20, 35, 40, 50], 95, 48),  # rank 3.8: 40 + 0.8 x 10
        ([15, 20, 35, 40, 50], 0, 15),
        ([15, 20, 35, 40, 50], 100, 50),
        ([50, 15, 40, 20, 35], 25, 20),  # order of the input does not matter
        ([7.5], 95, 7.5),
        (list(range(1, 101)), 95, 95.05),
    ],
)
def test_percentile_on_known_arrays(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_agrees_with_numpy() -> None:
    rng = np.random.default_rng(0)
    for size in (2, 3, 10, 101):
        values = rng.lognormal(size=size).tolist()
        for q in (5, 50, 90, 95, 99):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0], 101)


def test_summary_of_known_values() -> None:
    summary = summarise([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert summary["n"] == 8 and summary["mean"] == 5.0
    assert summary["std"] == pytest.approx(math.sqrt(32 / 7))  # sample standard deviation
    assert (summary["min"], summary["p50"], summary["max"]) == (2.0, 4.5, 9.0)
    assert summary["p95"] == pytest.approx(8.3)
    assert summarise([3.0])["std"] == 0.0


def run(ids: list[str], seconds: float, ttft: float, new_tokens: int = 5) -> Run:
    return Run(
        phase="timed",
        repeat=0,
        example_ids=ids,
        prompt_tokens=[10] * len(ids),
        seconds=seconds,
        ttft_seconds=ttft,
        new_tokens=new_tokens,
    )


def test_metrics_weigh_every_example_by_its_call() -> None:
    runs = [run(["a", "b"], 2.0, 0.5), run(["c"], 1.0, 0.2)]
    metrics = latency_metrics(runs)
    # a and b each waited 2 s, c 1 s: per-example latencies [2, 2, 1].
    assert metrics["latency_seconds"]["n"] == 3
    assert metrics["latency_seconds"]["mean"] == pytest.approx(5 / 3)
    assert metrics["latency_seconds"]["p50"] == 2.0
    assert metrics["ttft_seconds"]["n"] == 2
    assert metrics["tokens_per_second"] == pytest.approx(15 / 3.0)  # 3 rows x 5 tokens in 3 s
    # decode: (rows x 4 tokens after the first) / (seconds - ttft)
    assert runs[0].decode_tokens_per_second == pytest.approx(8 / 1.5)
    assert metrics["decode_tokens_per_second"]["max"] == pytest.approx(8 / 1.5)
    assert run(["a"], 1.0, 0.5, new_tokens=1).decode_tokens_per_second is None


def test_timing_loop_forces_the_token_count_and_keeps_every_run(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    builder = PromptBuilder(tokenizer=tokenizer, instruction="Summarize.", chat_template=True, max_input_tokens=128)
    prompts = [(f"ex{i}", builder.build(text)) for i, text in enumerate(["One.", "Two words " * 5, "Three."])]
    warm, timed = measure(
        model=model, tokenizer=tokenizer, prompts=prompts, batch_size=2, new_tokens=6, warmup=2, repeats=2, device="cpu"
    )
    # Each warm-up pass covers every timed batch: every shape has run before it is timed.
    assert all(r.phase == "warmup" for r in warm)
    assert [r.example_ids for r in warm] == [["ex0", "ex1"], ["ex2"]] * 2
    assert {tuple(r.prompt_tokens) for r in timed} <= {tuple(r.prompt_tokens) for r in warm}
    # 3 prompts in batches of 2 -> 2 calls per pass, 2 passes.
    assert [r.example_ids for r in timed] == [["ex0", "ex1"], ["ex2"]] * 2
    assert [r.repeat for r in timed] == [0, 0, 1, 1]
    for r in timed:
        assert r.new_tokens == 6  # a random model emits EOS whenever; the count is forced
        assert 0 < r.ttft_seconds < r.seconds
        assert r.prompt_tokens == [len(p.input_ids) for i, p in prompts if i in r.example_ids]
        # Every run says what else the machine did meanwhile.
        assert r.cpu_seconds is not None and r.cpu_seconds > 0
        assert r.load_average_1m is not None and r.load_average_1m >= 0
        assert r.other_cpu_seconds is not None and r.other_cpu_seconds >= 0


def test_peak_rss_is_reported_and_resettable() -> None:
    assert peak_rss_bytes() > 10_000_000  # a Python process with torch loaded holds tens of MB at least
    if not reset_peak_rss():
        pytest.skip("this OS cannot reset the peak-RSS mark")
    base = current_rss_bytes()
    assert base is not None and peak_rss_bytes() < base + 50_000_000
    block = bytearray(200_000_000)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    assert peak_rss_bytes() >= base + 150_000_000
    del block  # a large block goes back to the OS at once
    assert reset_peak_rss() and peak_rss_bytes() < base + 100_000_000
