"""The serving benchmark (Study 4's deployment half): requests served at each batch size.

Every mode serves the same request stream: the first prompts of the evaluation set, built
by the evaluation's prompt builder with the input cut to `serving.max_prompt_tokens`. At
batch size b the batch is the first b requests (the same rows for every mode, cycling
through the evaluation set when it has fewer). A served batch is a plan of generate()
calls: one call for a single model (`base`, `merged`, `unmerged`), one call per adapter
group where requests are grouped (lora_study.stages.serving.multi_adapter). Every call generates exactly
`new_tokens` tokens per row (EOS suppressed), greedy, so every mode does equal work.

Per batch size: `warmup` untimed passes over the plan (so each shape has run once), then
`repeats` timed passes, every call kept raw with its run conditions. Modes measured in one
job (merged and unmerged of a variant) alternate pass by pass, so their comparison is paired,
in an order that is reversed every other pass (`pass_order`: ABBA), so neither always runs first. A request's latency
is the time from the start of its batch until its call returned (requests grouped behind
another adapter's call wait for it); its time to first token likewise; its decode speed is
that of its own call after the first token.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lora_study.core.conditions import load_summary
from lora_study.core.data import read_examples
from lora_study.model.loading import load_tokenizer
from lora_study.model.memory import cuda_memory, current_rss_bytes, peak_rss_bytes, reset_peak_rss
from lora_study.model.prompts import Prompt, PromptBuilder, PromptError
from lora_study.model.timing import summarise, synchroniser, timed_generate

log = logging.getLogger(__name__)

SINGLE_MODES = ("base", "merged", "unmerged")
DECODING = "greedy, exactly new_tokens tokens per request (EOS suppressed)"


@dataclass(frozen=True)
class Request:
    id: str
    prompt: Prompt


@dataclass(frozen=True)
class Call:
    """One generate() call of a served batch: which rows of the batch, on which model."""

    model: PreTrainedModel
    rows: Sequence[int]
    label: str  # what serves it: the mode, or the adapter
    generate_kwargs: Mapping[str, Any] | None = None  # PEFT's per-row `adapter_names`
    prepare: Callable[[], None] | None = None  # runs first, inside the timing (switching the active adapter)


# A batch of requests -> the calls that serve it.
Planner = Callable[[Sequence[Request]], list[Call]]


def request_stream(
    *,
    eval_path: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    prompt: Mapping[str, Any],
    max_prompt_tokens: int,
    count: int,
) -> list[Request]:
    """`count` requests: the evaluation prompts in file order, cycling when there are fewer
    (a repeated request gets `#k` after its id), inputs cut to `max_prompt_tokens`."""
    examples = read_examples(eval_path)
    if not examples:
        raise ValueError(f"{eval_path}: no evaluation examples to serve")
    limit = min(int(prompt["max_input_tokens"]), max_prompt_tokens)
    try:
        builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt={**prompt, "max_input_tokens": limit})
        # With fixed fields (a question, an agenda) the room left for the input is per example.
        built = [builder.build(example.input, fields=example.fields) for example in examples]
    except PromptError as error:
        raise PromptError(
            f"serving.max_prompt_tokens={max_prompt_tokens}: {error}; raise serving.max_prompt_tokens"
        ) from None
    requests = []
    for index in range(count):
        lap, position = divmod(index, len(examples))
        suffix = f"#{lap}" if lap else ""
        requests.append(Request(id=f"{examples[position].id}{suffix}", prompt=built[position]))
    return requests


def served_requests(
    *, model_dir: str | Path, eval_path: str | Path, config: Mapping[str, Any]
) -> tuple[PreTrainedTokenizerBase, list[Request]]:
    """The tokenizer and the request stream of a serving job: as many requests as the largest
    of `config["serving"]["batch_sizes"]`. `config` holds the `prompt` and `serving` blocks."""
    settings = config["serving"]
    tokenizer = load_tokenizer(model_dir)
    requests = request_stream(
        eval_path=eval_path,
        tokenizer=tokenizer,
        prompt=config["prompt"],
        max_prompt_tokens=settings["max_prompt_tokens"],
        count=max(settings["batch_sizes"]),
    )
    return tokenizer, requests


def serve_once(
    *,
    calls: Sequence[Call],
    requests: Sequence[Request],
    tokenizer: PreTrainedTokenizerBase,
    new_tokens: int,
    device: str,
) -> dict[str, Any]:
    """Serve one batch by its calls, in order; per request its latency, TTFT and decode speed."""
    latency: list[float | None] = [None] * len(requests)
    ttft: list[float | None] = [None] * len(requests)
    decode: list[float | None] = [None] * len(requests)
    tokens: list[list[int] | None] = [None] * len(requests)
    records = []
    synchronise = synchroniser(device)
    synchronise()
    started = time.perf_counter()
    for call in calls:
        call_start = time.perf_counter() - started
        if call.prepare is not None:
            call.prepare()
        timing = timed_generate(
            model=call.model,
            tokenizer=tokenizer,
            prompts=[requests[row].prompt for row in call.rows],
            new_tokens=new_tokens,
            device=device,
            generate_kwargs=call.generate_kwargs,
        )
        call_end = time.perf_counter() - started
        decode_seconds = timing.seconds - timing.ttft_seconds
        for row, token_ids in zip(call.rows, timing.token_ids, strict=True):
            tokens[row] = token_ids
            latency[row] = call_end
            ttft[row] = call_end - timing.seconds + timing.ttft_seconds
            decode[row] = (new_tokens - 1) / decode_seconds if new_tokens > 1 and decode_seconds > 0 else None
        records.append(
            {
                "label": call.label,
                "rows": list(call.rows),
                "start_seconds": call_start,
                "seconds": timing.seconds,
                "ttft_seconds": timing.ttft_seconds,
                "new_tokens": timing.new_tokens,
                **timing.conditions,
            }
        )
    if any(value is None for value in latency):
        raise ValueError("a served batch's calls left some requests unserved")
    return {
        "seconds": time.perf_counter() - started,
        "request_latency_seconds": latency,
        "request_ttft_seconds": ttft,
        "request_decode_tokens_per_second": decode,
        # What each request got: every mode and plan must give a request the same tokens.
        "request_token_ids": tokens,
        "calls": records,
    }


def sweep(
    *,
    plans: Mapping[str, Planner],
    requests: Sequence[Request],
    tokenizer: PreTrainedTokenizerBase,
    batch_sizes: Sequence[int],
    new_tokens: int,
    warmup: int,
    repeats: int,
    device: str,
) -> dict[str, list[dict[str, Any]]]:
    """Per batch size b: the first b requests served by each of `plans` (mode -> planner),
    warm-up passes then timed passes, the modes' passes interleaved (mode 1, mode 2, then
    mode 2, mode 1, ...: `pass_order`) so that a change of machine load hits every mode alike,
    neither always runs first, and pass k of each mode can be paired. Per mode and batch size:
    the raw passes, their summary and the process's peak memory while serving that batch size
    (every mode's model is loaded: one figure for all)."""
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in plans}
    for batch_size in batch_sizes:
        batch = list(requests[:batch_size])
        if len(batch) < batch_size:
            raise ValueError(f"batch size {batch_size} needs {batch_size} requests, got {len(requests)}")
        calls = {mode: plan(batch) for mode, plan in plans.items()}
        gc.collect()
        peak_reset = reset_peak_rss()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        passes: dict[str, list[dict[str, Any]]] = {mode: [] for mode in plans}
        schedule = [("warmup", -1, k) for k in range(warmup)] + [("timed", k, k) for k in range(repeats)]
        for phase, repeat, index in schedule:
            for position, mode in enumerate(pass_order(list(plans), index=index)):
                served = serve_once(
                    calls=calls[mode], requests=batch, tokenizer=tokenizer, new_tokens=new_tokens, device=device
                )
                passes[mode].append({"phase": phase, "repeat": repeat, "position": position, **served})
        cuda = cuda_memory(device)
        for mode in plans:
            warm, timed = passes[mode][:warmup], passes[mode][warmup:]
            results[mode].append(
                {
                    "batch_size": batch_size,
                    "request_ids": [request.id for request in batch],
                    "prompt_tokens": [len(request.prompt.input_ids) for request in batch],
                    "calls_per_batch": len(calls[mode]),
                    "metrics": {
                        **batch_metrics(timed, batch_size=batch_size, new_tokens=new_tokens),
                        # The process's peak while serving this batch size (since a reset of
                        # the mark where the OS allows one, else since the process started).
                        "peak_rss_bytes": peak_rss_bytes(),
                        "peak_rss_since_reset": peak_reset,
                        "peak_cuda_bytes": cuda["peak_allocated_bytes"] if cuda else None,
                    },
                    "runs": timed,
                    "warmup": warm,
                }
            )
            summary = results[mode][-1]["metrics"]
            log.info(
                "%s batch %d: request latency p50 %.3f s, p95 %.3f s; %.1f tokens/s",
                mode,
                batch_size,
                summary["request_latency_seconds"]["p50"],
                summary["request_latency_seconds"]["p95"],
                summary["throughput_tokens_per_second"]["p50"],
            )
    return results


def pass_order(modes: Sequence[str], *, index: int) -> list[str]:
    """The modes' order in a phase's pass `index`: as given on even passes, reversed on odd
    ones (A B, B A, A B, ...: ABBA for two modes). A mode that always ran first would carry any
    within-pass drift of the machine (caches, clock) into the comparison: an independent
    re-timing of merged against unmerged moved the overhead from -16% to +14% by order alone.
    Each pass records its `position`; with an odd number of timed passes the given order
    runs first once more than the reversed one."""
    return list(modes) if index % 2 == 0 else list(reversed(modes))


def batch_metrics(runs: Sequence[Mapping[str, Any]], *, batch_size: int, new_tokens: int) -> dict[str, Any]:
    """Summary statistics of one batch size's timed passes (`serve_once` results)."""
    if not runs:
        raise ValueError("no timed passes to summarise")
    decode = [value for run in runs for value in run["request_decode_tokens_per_second"] if value is not None]
    return {
        "timed_passes": len(runs),
        # Per request: every request of every timed pass.
        "request_latency_seconds": summarise([v for run in runs for v in run["request_latency_seconds"]]),
        "ttft_seconds": summarise([v for run in runs for v in run["request_ttft_seconds"]]),
        "request_decode_tokens_per_second": summarise(decode) if decode else None,
        # Per pass: the whole batch.
        "batch_seconds": summarise([run["seconds"] for run in runs]),
        "throughput_tokens_per_second": summarise([batch_size * new_tokens / run["seconds"] for run in runs]),
        **load_summary((call for run in runs for call in run["calls"]), threads=torch.get_num_threads()),
    }


def memory_held(*, models: Sequence[torch.nn.Module], device: str) -> dict[str, int | None]:
    """Bytes of weights the models hold (shared tensors once) and the process's memory now."""
    from lora_study.model.memory import weight_bytes

    gc.collect()
    cuda = cuda_memory(device)
    return {
        "weight_bytes": sum(weight_bytes(model) for model in models),
        "rss_after_load_bytes": current_rss_bytes(),
        "cuda_allocated_bytes": cuda["allocated_bytes"] if cuda else None,
    }
