"""The `prefilled` KV cache of `evaluation.cache`: what a batched generate() wastes on a CPU,
and how the cache avoids it without changing what is computed.

Measured on the default evaluation (20 aclsum prompts of 133-345 tokens, SmolLM2-135M,
float32, 2 threads; bench/generation_speed.py):
- A left-padded batch prefills every row to the longest prompt's width: 6,900 positions
  for 4,282 real tokens, 8.2 s against 4.9 s for the same prompts one at a time.
- transformers' DynamicCache grows by concatenation, copying the whole cache of every
  layer at every decoding step: 44% of a step's time at 20 prompts.
- Every prompt opens with the same tokens (chat template and instruction: 49 of 214 on
  average), computed again for each.

So each prompt but its last token is prefilled on its own, without padding, continuing a
cache of the prompts' shared opening that is computed once; its keys and values are copied
right-aligned into buffers allocated once for the batch (prompt width + max_new_tokens).
generate() then runs as before on the left-padded batch and this cache: it computes the
last prompt position of every row, and each decoding step writes its column in place while
attention reads a view of the columns written so far. Keys and values are those of the
padded batch (causal attention: a token's keys depend only on the tokens before it; the
positions are the same), so greedy predictions equal the per-example loop's
(tests/test_generation.py).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel
from transformers.cache_utils import Cache, DynamicLayer

from lora_study.model.prompts import Prompt


class PreallocatedLayer(DynamicLayer):
    """One layer's keys and values in buffers of `capacity` positions, allocated at the first
    write: `update` writes the new positions in place and returns views of those written."""

    def __init__(self, *, rows: int, capacity: int) -> None:
        super().__init__()
        self.rows, self.capacity, self.length = rows, capacity, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        heads = key_states.shape[1]
        self.key_buffer = key_states.new_zeros((self.rows, heads, self.capacity, key_states.shape[-1]))
        self.value_buffer = value_states.new_zeros((self.rows, heads, self.capacity, value_states.shape[-1]))
        self.is_initialized = True
        self._expose()

    def _expose(self) -> None:
        self.keys = self.key_buffer[:, :, : self.length]
        self.values = self.value_buffer[:, :, : self.length]

    def write_row(self, *, row: int, start: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Place one prompt's keys and values (heads x positions x dim) at positions start.."""
        self.key_buffer[row, :, start : start + keys.shape[-2]] = keys
        self.value_buffer[row, :, start : start + values.shape[-2]] = values

    def set_length(self, length: int) -> None:
        self.length = length
        self._expose()

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"prefilled KV cache full: {end} positions asked of {self.capacity} allocated")
        self.key_buffer[:, :, self.length : end] = key_states
        self.value_buffer[:, :, self.length : end] = value_states
        self.set_length(end)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def keep(self, *, rows: torch.Tensor, first_column: int) -> None:
        """Keep only `rows` (a finished row leaves the batch: lora_study.model.greedy) and the columns
        from `first_column` on (copied, so the dropped ones free their memory)."""
        self.key_buffer = self.key_buffer[:, :, first_column:].index_select(0, rows)
        self.value_buffer = self.value_buffer[:, :, first_column:].index_select(0, rows)
        self.rows, self.capacity, self.length = len(rows), self.capacity - first_column, self.length - first_column
        self._expose()

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("the prefilled cache serves plain greedy and sampled generation only")

    batch_select_indices = batch_repeat_interleave = reorder_cache = crop


def text_config(model: PreTrainedModel) -> Any:
    """The config of the model's language part (a multimodal model nests it)."""
    return model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config


def supports_prefill(model: PreTrainedModel) -> bool:
    """True when every layer of the model's default cache is a plain growing one (no sliding
    window, no linear-attention state), the only kind whose keys can be copied position by
    position."""
    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=text_config(model)).layers)


def shared_opening(prompts: Sequence[Prompt]) -> int:
    """Tokens every prompt starts with, leaving each at least its last token to generate() (so
    every row's prefill continues the shared part)."""
    first = prompts[0].input_ids
    limit = min(len(p.input_ids) for p in prompts) - 1
    length = 0
    while length < limit and all(p.input_ids[length] == first[length] for p in prompts):
        length += 1
    return length


@torch.inference_mode()
def prefilled_cache(
    *, model: PreTrainedModel, prompts: Sequence[Prompt], new_tokens: int, rows_per_pass: int = 1
) -> Cache:
    """A cache holding every prompt but its last token, right-aligned as `generation.left_pad`
    places the prompts, with room for `new_tokens` more positions (module docstring).

    `rows_per_pass` prompts are prefilled per forward pass: 1 computes nothing on padding (a
    CPU's choice); more put them in one right-padded pass (an accelerator's, whose parallelism
    outweighs the padding), where padding sits after a row's tokens, so causal attention keeps
    it out of every real position's keys and values."""
    device = model.device
    width = max(len(p.input_ids) for p in prompts)
    config = text_config(model)
    layers = [
        PreallocatedLayer(rows=len(prompts), capacity=width + new_tokens) for _ in range(config.num_hidden_layers)
    ]
    opening = shared_opening(prompts)
    shared = DynamicCache(config=config)
    if opening:
        ids = torch.tensor([prompts[0].input_ids[:opening]], device=device)
        model(input_ids=ids, past_key_values=shared, use_cache=True, logits_to_keep=1)
    for first in range(0, len(prompts), rows_per_pass):
        group = prompts[first : first + rows_per_pass]
        rests = [p.input_ids[opening:-1] for p in group]
        longest = max(map(len, rests))
        cache = copy.deepcopy(shared)
        if opening and len(group) > 1:
            cache.batch_repeat_interleave(len(group))
        if longest:
            ids = torch.zeros((len(group), longest), dtype=torch.long)  # right padding: any token will do
            for row, rest in enumerate(rests):
                ids[row, : len(rest)] = torch.tensor(rest, dtype=torch.long)
            positions = torch.arange(opening, opening + longest).expand(len(group), -1)
            model(
                input_ids=ids.to(device),
                position_ids=positions.to(device),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        for index, prompt in enumerate(group):
            written = len(prompt.input_ids) - 1
            for layer, filled in zip(layers, cache.layers, strict=True):
                if not filled.is_initialized:  # one-token prompts: nothing before their last token
                    continue
                if not layer.is_initialized:
                    layer.lazy_initialization(filled.keys, filled.values)
                layer.write_row(
                    row=first + index,
                    start=width - len(prompt.input_ids),
                    keys=filled.keys[index, :, :written],
                    values=filled.values[index, :, :written],
                )
    for layer in layers:
        layer.set_length(width - 1)
    return Cache(layers=layers)
