"""Training, done the way a careful researcher would, in a lean loop of our own.

- Every job starts from a freshly loaded base model (`adapters.attach_adapter` refuses a
  model that already carries an adapter).
- The prompt is built by the same `PromptBuilder` as evaluation; the loss covers the
  reference tokens (and the end-of-turn marker) only: prompt and padding are masked.
- Little compute on padding, without a fixed batch order: each epoch shuffles the
  examples with the seed, cuts them into megabatches of `megabatch` batches, sorts each
  megabatch by length and cuts it into batches (which pad only to their own longest
  example), then shuffles the batches. Every seed and epoch draws new batch-mates, so
  seed-to-seed spread includes data-order variance (a global length sort made most
  batches the same in every epoch and seed: bench/batch_order.py).
- The loss of an optimizer step is the mean over every target token of the step (the
  "token-level mean" of most trainers): every target token of a step weighs the same, so
  an example's weight is its target tokens over the step's, and depends on its
  batch-mates. Batching by length makes a long example weigh less (weight-length
  correlation -0.48 with megabatches of 8 on the default data, -0.55 with one global
  sort, -0.15 with random batches: bench/batch_order.py). Kept: within a step all
  tokens weigh the same, and Adam's normalisation damps differences between steps.
- The learning rate warms up linearly to its peak at the end of warm-up, starting at
  peak/(W+1), never at 0 (the first step would be wasted); the rate logged for a step is
  the rate that step used.
- No vocabulary projection for prompt positions: the output head runs only on the
  positions whose next token is a target (on SmolLM2-135M the head's 2 x 576 x 49,152
  FLOPs are a fifth of a token's forward FLOPs: 57 M against 212 M for the 30 blocks'
  linear layers, plus attention).
- Seeded: the same seed gives identical weights on CPU.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from lora_study.core.data import Example
from lora_study.model.flops import linear_costs, step_flops
from lora_study.model.memory import peak_rss_bytes
from lora_study.model.prompts import PromptBuilder
from lora_study.tasks import task_of

log = logging.getLogger(__name__)
IGNORE = -100  # label of positions that carry no loss


@dataclass(frozen=True)
class TrainItem:
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt positions
    prompt_truncated: bool = False

    @property
    def target_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


@dataclass(frozen=True)
class StepRecord:
    step: int
    epoch: int
    loss: float  # mean cross-entropy per target token over the optimizer step
    learning_rate: float  # the rate this step's update used
    tokens: int  # non-padding tokens processed
    target_tokens: int
    padded_tokens: int  # padding positions in this step's batches (computed, no loss)
    seconds: float
    flops: float  # forward + backward FLOPs executed (see flops.py)
    # Batches of this step whose shape (rows x padded width) the job had not run before: such
    # a step also pays one-off costs (kernel selection, allocator growth; 1-1.7 s on a GPU
    # against 0.014-0.027 s in steady state), so steady-state throughput leaves it out.
    first_shapes: int = 0


def make_item(
    *,
    builder: PromptBuilder,
    tokenizer: PreTrainedTokenizerBase,
    example: Example,
    max_target_tokens: int,
    task: Mapping[str, Any] | None = None,
) -> TrainItem:
    """Prompt ids (masked) followed by the completion ids: the task's target for the example
    (a summary, a label's verbaliser, an answer or the abstention answer) and the end marker.
    `task`: the config's task block (None: summarisation)."""
    prompt = builder.build(example.input, fields=example.fields)
    chosen, settings = task_of({"task": task} if task else {})
    target = chosen.target(example=example, settings=settings)
    completion = tokenizer(builder.completion_text(target), add_special_tokens=False).input_ids
    completion = completion[:max_target_tokens]
    return TrainItem(
        input_ids=prompt.input_ids + completion,
        labels=[IGNORE] * len(prompt.input_ids) + completion,
        prompt_truncated=prompt.truncated,
    )


def make_items(
    *,
    builder: PromptBuilder,
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[Example],
    max_target_tokens: int,
    task: Mapping[str, Any] | None = None,
) -> list[TrainItem]:
    """`make_item` for each example: training and validation build their items alike."""
    return [
        make_item(builder=builder, tokenizer=tokenizer, example=e, max_target_tokens=max_target_tokens, task=task)
        for e in examples
    ]


def megabatch_batches(*, lengths: Sequence[int], batch_size: int, megabatch: int, seed: int) -> list[list[int]]:
    """Every index once, in batches of similar length drawn afresh for each seed: a seeded
    shuffle, cut into megabatches of `megabatch` x `batch_size` examples, each sorted by
    length (stable, so ties keep the shuffled order) and cut into batches; then the
    batches are shuffled. A batch pads to its own longest example; a megabatch of 8
    batches pads 5.9% of positions on the default data, against 2.4% for one global sort
    (which repeats 19 of 25 batches between epochs) and 17.7% for random batches."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = megabatch * batch_size
    batches = []
    for start in range(0, len(order), span):
        window = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [window[i : i + batch_size] for i in range(0, len(window), batch_size)]
    rng.shuffle(batches)
    return batches


def epoch_batches(*, lengths: Sequence[int], batch_size: int, megabatch: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch of one seed's run: a different draw for every (seed, epoch)."""
    return megabatch_batches(lengths=lengths, batch_size=batch_size, megabatch=megabatch, seed=seed * 1_000_003 + epoch)


def padding_share(*, lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Padded positions over all positions of the right-padded batches."""
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    return 1.0 - sum(lengths[i] for batch in batches for i in batch) / padded if padded else 0.0


def learning_rate_factor(*, step: int, warmup_steps: int, total_steps: int, schedule: str) -> float:
    """Multiplier of the peak learning rate for optimizer step `step` (0-based).

    Warm-up rises linearly as (step + 1) / (W + 1), so the first step already learns
    (transformers' schedules start at 0 and waste it) and step W runs at the peak; then
    linear decay towards 0 (the last step keeps 1/(T - W) of the peak), half a cosine, or
    constant. Warm-up applies to `constant` too (transformers' `constant` ignores it)."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown learning-rate schedule {schedule!r} (linear, cosine, constant)")


def collate(items: Sequence[TrainItem], *, pad_id: int, device: str) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels (padding labelled IGNORE)."""
    width = max(len(item.input_ids) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        ids[row, : len(item.input_ids)] = torch.tensor(item.input_ids)
        labels[row, : len(item.labels)] = torch.tensor(item.labels)
        mask[row, : len(item.input_ids)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def target_loss_sum(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed next-token cross-entropy over target positions, projecting to the
    vocabulary only there. Falls back to the model's full logits for architectures whose
    head does more than a linear map (e.g. logit soft-capping)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = batch["labels"][:, 1:]
    selected = labels != IGNORE
    head = base.get_output_embeddings()
    plain_head = head is not None and not any(
        getattr(base.config, name, None) for name in ("final_logit_softcapping", "logit_scale")
    )
    if plain_head:
        hidden = base.get_decoder()(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        logits = head(hidden[:, :-1][selected])
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1][selected]
    return F.cross_entropy(logits.float(), labels[selected], reduction="sum")


def accumulate_gradients(
    *,
    model: Any,
    window: Sequence[Sequence[TrainItem]],
    pad_id: int,
    device: str,
    compute_dtype: torch.dtype = torch.float32,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """Backward over every batch of an accumulation window, each batch's summed loss
    divided by the window's target-token count: the gradients equal those of the whole
    window as one batch. Returns the window's mean loss per target token."""
    window_targets = sum(item.target_tokens for batch in window for item in batch)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    total = 0.0
    for batch_items in window:
        batch = collate(batch_items, pad_id=pad_id, device=device)
        with torch.autocast(device_type=device_type, dtype=compute_dtype, enabled=compute_dtype != torch.float32):
            loss = target_loss_sum(model, batch) / window_targets
        (scaler.scale(loss) if scaler is not None else loss).backward()
        total += loss.item()
    return total


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def peak_memory_bytes(device: str) -> dict[str, int]:
    """Peak resident memory of this process (and peak CUDA memory on a GPU)."""
    peaks = {"peak_rss_bytes": peak_rss_bytes()}  # ru_maxrss is KiB on Linux but bytes on macOS
    if device.startswith("cuda"):
        peaks["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
    return peaks


def optimizer_steps(*, items: int, settings: Mapping[str, Any]) -> int:
    """Optimizer steps of a training run: accumulation windows per epoch (the last may be
    short) times epochs."""
    batches = math.ceil(items / settings["batch_size"])
    return math.ceil(batches / settings["grad_accumulation"]) * settings["epochs"]


def train_loop(
    *,
    model: Any,
    items: Sequence[TrainItem],
    settings: dict[str, Any],
    learning_rate: float,
    seed: int,
    pad_id: int,
    device: str,
    compute_dtype: torch.dtype = torch.float32,
    on_step: Callable[[StepRecord], None] = lambda record: None,
) -> list[StepRecord]:
    """Optimise the model's trainable parameters on `items`; return one record per step.

    The loss of an optimizer step is the mean over every target token in its
    accumulation window, so gradient accumulation equals one big batch exactly.
    `settings["megabatch"]` batches form one length-sorted megabatch (megabatch_batches).
    With a 16-bit `compute_dtype` (GPU), matrix products run under autocast while the
    trainable weights stay float32, and float16 losses are scaled against underflow.
    """
    accumulation, epochs = settings["grad_accumulation"], settings["epochs"]
    total_steps = optimizer_steps(items=len(items), settings=settings)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=settings["weight_decay"])
    warmup_steps = round(settings["warmup_ratio"] * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: learning_rate_factor(
            step=step, warmup_steps=warmup_steps, total_steps=total_steps, schedule=settings["schedule"]
        ),
    )
    costs = linear_costs(model)
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    scaler = torch.amp.GradScaler(device_type, enabled=compute_dtype == torch.float16)
    model.train()
    records: list[StepRecord] = []
    lengths = [len(item.input_ids) for item in items]
    seen_shapes: set[tuple[int, int]] = set()
    for epoch in range(epochs):
        batches = epoch_batches(
            lengths=lengths, batch_size=settings["batch_size"], megabatch=settings["megabatch"], seed=seed, epoch=epoch
        )
        for start in range(0, len(batches), accumulation):
            window = [[items[i] for i in batch] for batch in batches[start : start + accumulation]]
            window_targets = sum(item.target_tokens for batch in window for item in batch)
            used_rate = optimizer.param_groups[0]["lr"]  # read before the scheduler moves it on
            started = time.perf_counter()
            loss_total = accumulate_gradients(
                model=model, window=window, pad_id=pad_id, device=device, compute_dtype=compute_dtype, scaler=scaler
            )
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, settings["max_grad_norm"])
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            sequence_lengths = [len(item.input_ids) for batch in window for item in batch]
            widths = [len(batch) * max(len(item.input_ids) for item in batch) for batch in window]
            shapes = [(len(batch), max(len(item.input_ids) for item in batch)) for batch in window]
            first_shapes = len(set(shapes) - seen_shapes)
            seen_shapes.update(shapes)
            record = StepRecord(
                step=len(records) + 1,
                epoch=epoch + 1,
                loss=loss_total,
                learning_rate=used_rate,
                tokens=sum(sequence_lengths),
                target_tokens=window_targets,
                padded_tokens=sum(widths) - sum(sequence_lengths),
                seconds=time.perf_counter() - started,
                flops=step_flops(costs=costs, sequence_lengths=sequence_lengths, target_tokens=window_targets),
                first_shapes=first_shapes,
            )
            records.append(record)
            on_step(record)
    model.eval()
    return records


STEADY_STATE_DEFINITION = (
    "non-padding tokens over seconds of the optimizer steps none of whose batches has a shape "
    "(rows x padded width) that an earlier step of the job already ran; a step with a first-seen "
    "shape also pays one-off costs (kernel selection, allocator growth). The whole-job "
    "tokens_per_second beside it counts every step, and train_seconds also the time between steps."
)


def steady_state(records: Sequence[StepRecord]) -> dict[str, Any]:
    """Throughput without the steps that ran a batch shape for the first time (train.json's
    `steady_state`, STEADY_STATE_DEFINITION); tokens_per_second None when every step did."""
    steady = [record for record in records if record.first_shapes == 0]
    seconds = sum(record.seconds for record in steady)
    tokens = sum(record.tokens for record in steady)
    return {
        "tokens_per_second": tokens / seconds if steady and seconds > 0 else None,
        "steps": len(steady),
        "excluded_steps": len(records) - len(steady),
        "tokens": tokens,
        "seconds": seconds,
        "definition": STEADY_STATE_DEFINITION,
    }


def write_loss_csv(path: str | Path, records: Sequence[StepRecord]) -> None:
    from lora_study.core.io import atomic_write_text

    fields = list(StepRecord.__dataclass_fields__)
    lines = [",".join(fields)] + [",".join(str(getattr(r, f)) for f in fields) for r in records]
    atomic_write_text(path, "\n".join(lines) + "\n")
