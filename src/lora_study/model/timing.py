"""Generation latency measured the way the benchmark literature does it.

- Every timed run generates exactly `new_tokens` tokens per prompt (`min_new_tokens =
  max_new_tokens`, so EOS cannot end a run early): precisions are compared on equal work.
  The quality run, which stops naturally, is a separate job (`evaluate.predict`).
- Warm-up passes come first, each over every batch the timed passes use; they are
  excluded from the statistics but counted and kept.
- Every timed run records what else the machine did meanwhile (lora_study.core.conditions),
  and the summary says whether any run was taken under load.
- Every timed run is kept raw beside the summary (mean, p50, p95, ...).
- Time to first token is read inside the same `generate()` call: a streamer stamps the
  clock when each new token comes out (the first stamp ends prefill + one decode step), so
  TTFT and decode speed cost no extra runs.
- On CUDA the device is synchronised before every clock reading (kernels run async).

Latency of an example = wall time of the `generate()` call that produced its tokens (at
batch size 1 this is Study 1's "latency per example"; at larger batches every example in
a call waits for the whole call).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.streamers import BaseStreamer

from lora_study.core.conditions import conditions, load_summary, snapshot
from lora_study.model.generation import left_pad, stop_token_ids, without_model_defaults
from lora_study.model.prompts import Prompt

log = logging.getLogger(__name__)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating linearly between the closest ranks
    (numpy's default, Hyndman & Fan type 7): p50 of [1, 2, 3, 4] is 2.5."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must lie in [0, 100], got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise(values: Sequence[float]) -> dict[str, float | int]:
    """n, mean, sample standard deviation, min, p50, p95 and max of `values`."""
    if not values:
        raise ValueError("no values to summarise")
    count = len(values)
    mean = sum(values) / count
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (count - 1)) if count > 1 else 0.0
    return {
        "n": count,
        "mean": mean,
        "std": std,
        "min": min(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values),
    }


def synchroniser(device: str) -> Callable[[], None]:
    """What to call before reading a clock: wait for queued CUDA kernels; nothing on CPU."""
    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


class TokenClock(BaseStreamer):
    """A streamer that stamps the time at which each generated token is available.

    `generate()` first hands the streamer the prompt, then every new token (batch rows
    together), so stamp i is when token i + 1 of every row was ready."""

    def __init__(self, synchronise: Callable[[], None]) -> None:
        self.synchronise = synchronise
        self.stamps: list[float] = []
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.synchronise()
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


@dataclass(frozen=True)
class Run:
    """One generate() call on one batch of prompts."""

    phase: str  # "warmup" or "timed"
    repeat: int  # pass over the timed examples (warm-up runs: -1)
    example_ids: list[str]
    prompt_tokens: list[int]  # per row, before padding
    seconds: float  # the whole call: prefill + every new token
    ttft_seconds: float  # call start to the first new token of every row
    new_tokens: int  # per row (always the requested number)
    # What else the machine did meanwhile (lora_study.core.conditions); None where not recorded.
    load_average_1m: float | None = None
    cpu_seconds: float | None = None
    other_cpu_seconds: float | None = None
    other_cores: float | None = None

    @property
    def decode_tokens_per_second(self) -> float | None:
        """Tokens per second after the first token, over all rows of the batch."""
        decode_seconds = self.seconds - self.ttft_seconds
        if self.new_tokens < 2 or decode_seconds <= 0:
            return None
        return len(self.example_ids) * (self.new_tokens - 1) / decode_seconds

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "decode_tokens_per_second": self.decode_tokens_per_second}


@dataclass(frozen=True)
class Timing:
    """One timed generate() call."""

    seconds: float  # the whole call: prefill + every new token
    ttft_seconds: float  # call start to the first new token of every row
    new_tokens: int  # per row
    conditions: Mapping[str, float | None]  # lora_study.core.conditions.conditions
    token_ids: list[list[int]]  # per row, the tokens generated


@torch.inference_mode()
def timed_generate(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    new_tokens: int,
    device: str,
    generate_kwargs: Mapping[str, Any] | None = None,
) -> Timing:
    """One greedy generate() call forced to `new_tokens` tokens per prompt. `generate_kwargs`
    go to generate() as they are (PEFT's per-row `adapter_names`)."""
    pad_id = tokenizer.pad_token_id
    stop_ids = stop_token_ids(model=model, tokenizer=tokenizer)
    config = without_model_defaults(
        config=GenerationConfig(
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,  # EOS is suppressed until then: equal work for every precision
            do_sample=False,
            pad_token_id=pad_id,
            eos_token_id=sorted(stop_ids),
        ),
        model=model,
    )
    ids, mask = left_pad(prompts=prompts, pad_id=pad_id, device=device)
    synchronise = synchroniser(device)
    clock = TokenClock(synchronise)
    synchronise()
    before = snapshot()
    started = time.perf_counter()
    sequences = model.generate(
        input_ids=ids, attention_mask=mask, generation_config=config, streamer=clock, **(generate_kwargs or {})
    )
    synchronise()
    seconds = time.perf_counter() - started
    after = snapshot()
    generated = sequences.shape[1] - ids.shape[1]
    if generated != new_tokens or not clock.stamps:
        raise RuntimeError(f"a latency run generated {generated} tokens per prompt, not the forced {new_tokens}")
    return Timing(
        seconds=seconds,
        ttft_seconds=clock.stamps[0] - started,
        new_tokens=generated,
        conditions=conditions(start=before, end=after, seconds=seconds),
        token_ids=sequences[:, ids.shape[1] :].tolist(),
    )


def measure(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[tuple[str, Prompt]],
    batch_size: int,
    new_tokens: int,
    warmup: int,
    repeats: int,
    device: str,
) -> tuple[list[Run], list[Run]]:
    """`warmup` untimed passes, then `repeats` timed passes, over all `prompts` (id, prompt)
    in batches of `batch_size`, in order. Every warm-up pass covers every batch, so each
    shape the timed runs use has run once before (the first call of a new prompt length pays
    for kernel selection and allocation: on a GPU it became the p95). Returns (warm-up runs,
    timed runs)."""
    batches = [list(prompts[start : start + batch_size]) for start in range(0, len(prompts), batch_size)]
    if not batches:
        raise ValueError("no prompts to time")

    def run(batch: list[tuple[str, Prompt]], *, phase: str, repeat: int) -> Run:
        timing = timed_generate(
            model=model, tokenizer=tokenizer, prompts=[p for _, p in batch], new_tokens=new_tokens, device=device
        )
        return make_run(timing, phase=phase, repeat=repeat, batch=batch)

    warm = []
    for index in range(warmup):
        warm.extend(run(batch, phase="warmup", repeat=-1) for batch in batches)
        log.info("warm-up pass %d/%d: %d runs", index + 1, warmup, len(batches))
    timed = []
    for repeat in range(repeats):
        for batch in batches:
            timed.append(run(batch, phase="timed", repeat=repeat))
        recent = timed[-len(batches) :]
        log.info(
            "repeat %d/%d: %d runs, %.2f s median",
            repeat + 1,
            repeats,
            len(recent),
            percentile([r.seconds for r in recent], 50),
        )
    return warm, timed


def make_run(timing: Timing, *, phase: str, repeat: int, batch: Sequence[tuple[str, Prompt]]) -> Run:
    """The record of one timed call on `batch` ((id, prompt) rows)."""
    return Run(
        phase=phase,
        repeat=repeat,
        example_ids=[example_id for example_id, _ in batch],
        prompt_tokens=[len(p.input_ids) for _, p in batch],
        seconds=timing.seconds,
        ttft_seconds=timing.ttft_seconds,
        new_tokens=timing.new_tokens,
        **timing.conditions,
    )


def latency_metrics(runs: Sequence[Run]) -> dict[str, Any]:
    """Summary statistics over the timed runs: per example, TTFT, decode speed, throughput."""
    per_example = [run.seconds for run in runs for _ in run.example_ids]
    decode = [rate for run in runs if (rate := run.decode_tokens_per_second) is not None]
    total_tokens = sum(len(run.example_ids) * run.new_tokens for run in runs)
    total_seconds = sum(run.seconds for run in runs)
    return {
        "latency_seconds": summarise(per_example),
        "ttft_seconds": summarise([run.ttft_seconds for run in runs]),
        "decode_tokens_per_second": summarise(decode) if decode else None,
        "tokens_per_second": total_tokens / total_seconds,
        "timed_tokens": total_tokens,
        "timed_seconds": total_seconds,
        **load_summary((run.to_dict() for run in runs), threads=torch.get_num_threads()),
    }
