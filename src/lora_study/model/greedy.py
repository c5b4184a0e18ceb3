"""Greedy decoding of a prefilled batch that drops each row once it has ended its answer.

What it saves over transformers' generate() on the same prefilled cache (the default
evaluation: 20 prompts, at most 128 new tokens, SmolLM2-135M, float32, 2 threads):
- generate() keeps computing every row until the last one ends: 22% of the row-steps came
  after their row's stop token (2,005 tokens generated in 20 x 128 row-steps). Here a row
  leaves the batch at its stop token, and with it the cache columns that only it used.
- generate()'s own bookkeeping per step (input preparation, logits processors, stopping
  criteria): about 4 ms of a 94 ms step.
Side by side, 130.1 tokens/s against 122.6 (bench/generation_speed.py; its record in
docs/results/2026-11-27-4807af3-bench-generation_speed).

It computes what generate() computes for greedy decoding: each step feeds every row its
last token at its own position, under the batch's left-padded attention mask, and takes
the argmax of the last position's logits (the first of equal maxima, as generate() does).
The study's generation settings add no logits processor, and generation.without_model_defaults
keeps the model's own ones out, so there is nothing else to apply; generation.generate uses
this loop only for greedy decoding on the prefilled cache. Each row's logits at each step are
those of its prompt and tokens so far in one forward pass (tests/test_greedy.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import Cache

from lora_study.model.prefill import PreallocatedLayer
from lora_study.model.prompts import Prompt


def keep_rows(*, cache: Cache, rows: torch.Tensor, first_column: int) -> None:
    """Keep only `rows` of every layer, and the columns from `first_column` on."""
    for layer in cache.layers:
        if not isinstance(layer, PreallocatedLayer):
            raise TypeError(f"greedy decoding drops rows of a prefilled cache only, not of {type(layer).__name__}")
        layer.keep(rows=rows, first_column=first_column)


@torch.inference_mode()
def greedy_decode(
    *,
    model: PreTrainedModel,
    prompts: Sequence[Prompt],
    cache: Cache,
    new_tokens: int,
    stop_ids: set[int],
    on_token: Callable[[int, int], None] | None = None,
) -> list[list[int]]:
    """Each prompt's generated tokens, up to and excluding its first stop token, at most
    `new_tokens`. `cache`: prefill.prefilled_cache of these prompts in this order (every
    prompt but its last token, right-aligned to the longest). `on_token(tokens decoded, rows
    ended)` after each step, for progress lines."""
    device = model.device
    width = max(len(p.input_ids) for p in prompts)
    # The first real column of each row; every column from it on is attended to, including
    # the ones the coming steps will write.
    starts = torch.tensor([width - len(p.input_ids) for p in prompts])
    mask = (torch.arange(width + new_tokens)[None, :] >= starts[:, None]).long().to(device)
    tokens = torch.tensor([[p.input_ids[-1]] for p in prompts], device=device)
    positions = torch.tensor([[len(p.input_ids) - 1] for p in prompts], device=device)
    stops = torch.tensor(sorted(stop_ids), device=device)
    live = list(range(len(prompts)))  # the prompt of each row still in the batch
    generated: list[list[int]] = [[] for _ in prompts]
    for step in range(new_tokens):
        held = cache.get_seq_length()
        logits = model(
            input_ids=tokens,
            attention_mask=mask[:, : held + 1],
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        tokens = logits[:, -1].argmax(dim=-1, keepdim=True)
        ended = torch.isin(tokens[:, 0], stops).tolist()
        for prompt, token, end in zip(live, tokens[:, 0].tolist(), ended, strict=True):
            if not end:
                generated[prompt].append(token)
        if on_token is not None:
            on_token(step + 1, len(prompts) - len(live) + sum(ended))
        if all(ended) or step == new_tokens - 1:
            break
        positions = positions + 1
        if any(ended):
            kept = [row for row, end in enumerate(ended) if not end]
            rows = torch.tensor(kept)  # on the CPU, with `starts`; a copy goes to the model's device
            first_column = int(starts[rows].min())  # columns before it are padding in every remaining row
            on_device = rows.to(device)
            keep_rows(cache=cache, rows=on_device, first_column=first_column)
            live = [live[row] for row in kept]
            tokens, positions = tokens[on_device], positions[on_device]
            mask, starts = mask[on_device, first_column:], starts[rows] - first_column
    return generated
