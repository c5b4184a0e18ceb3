"""Batched generation with left padding, returning only what the model generated."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from lora_study.prompts import Prompt, generated_token_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    generated_tokens: int
    stopped: bool  # True: the model ended its answer; False: cut at max_new_tokens


def stop_token_ids(*, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """Tokens that end an answer: the model's EOS id(s) and the tokenizer's EOS."""
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def generation_config(*, settings: Mapping[str, Any], pad_id: int, stop_ids: set[int]) -> GenerationConfig:
    """An explicit config, so a model's own generation defaults never change the study."""
    sampling = {} if settings["greedy"] else {"temperature": settings["temperature"], "top_p": settings["top_p"]}
    return GenerationConfig(
        max_new_tokens=settings["max_new_tokens"],
        do_sample=not settings["greedy"],
        pad_token_id=pad_id,
        eos_token_id=sorted(stop_ids),
        **sampling,
    )


def left_pad(*, prompts: Sequence[Prompt], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask with every prompt right-aligned, so all rows'
    generated tokens start at the same position."""
    width = max(len(p.input_ids) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt.input_ids) :] = torch.tensor(prompt.input_ids)
        mask[row, width - len(prompt.input_ids) :] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def generate(
    *,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Prompt],
    settings: Mapping[str, Any],
    batch_size: int,
) -> list[Generation]:
    """Generate for every prompt, in batches of similar length (less padding), and return
    the results in the prompts' order."""
    device = str(model.device)
    pad_id = tokenizer.pad_token_id
    stop_ids = stop_token_ids(model=model, tokenizer=tokenizer)
    config = generation_config(settings=settings, pad_id=pad_id, stop_ids=stop_ids)
    if not settings["greedy"]:
        torch.manual_seed(settings["seed"])
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i].input_ids))
    results: dict[int, Generation] = {}
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        ids, mask = left_pad(prompts=[prompts[i] for i in batch], pad_id=pad_id, device=device)
        sequences = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        rows = generated_token_ids(sequences=sequences, prompt_length=ids.shape[1], stop_ids=stop_ids)
        for index, row in zip(batch, rows, strict=True):
            results[index] = Generation(
                text=tokenizer.decode(row, skip_special_tokens=True).strip(),
                prompt_tokens=len(prompts[index].input_ids),
                generated_tokens=len(row),
                stopped=len(row) < settings["max_new_tokens"],
            )
        done = start + len(batch)
        log.info("generated %d/%d examples (%.1f s)", done, len(order), time.perf_counter() - started)
    return [results[i] for i in range(len(prompts))]
