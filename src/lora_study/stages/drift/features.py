"""Representation drift: every layer's hidden states of two causal LMs (base and fine-tuned)
on the same prompts, compared by CKA and cosine, with baselines; plus per-text perplexity.

Features are pooled per example over a selection of tokens (by default the example's own
input text: template, instruction, attention sink and padding masked; "mean" over them or
the "last" of them) and, optionally, compared token by token through a streaming CKA, so
only one batch of hidden states is ever in memory. Everything works from masks, never
from positions, so left padding (as generation uses) and right padding are both handled.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from lora_study.model.generation import left_pad
from lora_study.model.prompts import Prompt, PromptBuilder
from lora_study.stats.cka import LinearCKAStream, UndefinedCKA, cka_matrix, cosine_similarity_mean, linear_cka

POOLINGS = ("mean", "last")
SCOPES = ("input", "prompt")  # drift.tokens: which tokens of a prompt are pooled


def pool(*, hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(b, t, d) hidden states to (b, d) float64 features over the real tokens (mask 1)."""
    _check_pooling(pooling)
    real = attention_mask.bool()
    if not bool(real.any(dim=1).all()):
        raise ValueError("a row has no real tokens to pool")
    if pooling == "mean":
        # masked_fill, not a multiply by the mask: padding may hold inf or nan, and nan * 0 is nan.
        summed = hidden.double().masked_fill(~real[..., None], 0.0).sum(dim=1)
        return summed / real.sum(dim=1, keepdim=True)
    positions = torch.arange(real.shape[1], device=real.device).expand_as(real)
    last = torch.where(real, positions, -1).max(dim=1).values
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].double()


def real_token_rows(*, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Every selected token's vector, (n_selected, d) float64, row by row then position by position."""
    return hidden[attention_mask.bool()].double()


def scope_masks(*, builder: PromptBuilder, prompts: Sequence[Prompt], scope: str) -> list[list[bool]]:
    """Per prompt, the tokens whose hidden states are pooled: `input` = the example's own
    input text only, `prompt` = every token of the prompt.

    Why `input` is the default: every prompt starts with the same template and instruction,
    whose hidden states are identical across prompts (attention is causal), and the first
    of them is the attention sink, whose norm is 45-177x the others' in SmolLM2's middle
    layers. Pooled over the whole prompt, each feature is then close to one fixed vector
    divided by the prompt length, and CKA between two models reads near 1 whatever
    training did."""
    if scope not in SCOPES:
        raise ValueError(f"unknown drift.tokens {scope!r}: use one of {', '.join(SCOPES)}")
    masks = [builder.input_mask(p) if scope == "input" else [True] * len(p.input_ids) for p in prompts]
    for number, mask in enumerate(masks, start=1):
        if not any(mask):
            raise ValueError(f"drift prompt {number} has no token of its input text to pool (an empty input?)")
    return masks


def hidden_state_batches(
    *,
    model: torch.nn.Module,
    prompts: Sequence[Prompt],
    scopes: Sequence[Sequence[bool]],
    pad_id: int,
    batch_size: int,
    device: str,
) -> Iterator[tuple[list[int], tuple[torch.Tensor, ...], torch.Tensor]]:
    """(prompt indices, hidden_states, pooling mask) per batch of left-padded prompts.

    Prompts are batched in order of length (less padding, the same batches for every
    model); the indices say which prompts a batch holds. The pooling mask is `scopes`
    aligned with the padding (padding is never selected).

    hidden_states[0] is the embedding output and hidden_states[i] the output of block i;
    Hugging Face applies the model's final norm to the last one, so it is the normed
    representation the LM head reads, not the raw residual stream of the last block."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i].input_ids))
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = [prompts[i] for i in indices]
        ids, mask = left_pad(prompts=batch, pad_id=pad_id, device=device)
        selected = torch.zeros_like(mask, dtype=torch.bool)
        for row, i in enumerate(indices):
            selected[row, mask.shape[1] - len(scopes[i]) :] = torch.tensor(scopes[i], dtype=torch.bool)
        # A plain forward numbers positions 0..t-1 including the padding; positions counted
        # from the mask (what generate() does) make a left-padded row match the prompt alone.
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            outputs = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=position_ids,
                output_hidden_states=True,
                use_cache=False,
                logits_to_keep=1,  # only the hidden states are wanted: skip (batch x length x vocab) logits
            )
        yield indices, outputs.hidden_states, selected


def pooled_features(
    *,
    model: torch.nn.Module,
    prompts: Sequence[Prompt],
    scopes: Sequence[Sequence[bool]],
    pad_id: int,
    batch_size: int,
    device: str,
    pooling: str,
) -> list[np.ndarray]:
    """Per hidden state (0 = embeddings), the (prompts, d) float64 features in prompt order;
    only one batch of hidden states is in memory at a time."""
    _check_pooling(pooling)
    layers: list[np.ndarray] = []
    for indices, hidden, selected in hidden_state_batches(
        model=model, prompts=prompts, scopes=scopes, pad_id=pad_id, batch_size=batch_size, device=device
    ):
        if not layers:
            layers = [np.empty((len(prompts), h.shape[-1])) for h in hidden]
        for layer, states in enumerate(hidden):
            layers[layer][indices] = _numpy(pool(hidden=states, attention_mask=selected, pooling=pooling))
    return layers


def token_level_cka(
    *,
    base: torch.nn.Module,
    tuned: torch.nn.Module,
    prompts: Sequence[Prompt],
    scopes: Sequence[Sequence[bool]],
    pad_id: int,
    batch_size: int,
    device: str,
) -> dict[str, Any]:
    """CKA over every selected token of every prompt (base and tuned see identical inputs,
    so their token rows align one to one), streamed: memory does not grow with the tokens."""
    streams: list[LinearCKAStream] = []
    batches = zip(
        hidden_state_batches(
            model=base, prompts=prompts, scopes=scopes, pad_id=pad_id, batch_size=batch_size, device=device
        ),
        hidden_state_batches(
            model=tuned, prompts=prompts, scopes=scopes, pad_id=pad_id, batch_size=batch_size, device=device
        ),
        strict=True,
    )
    for (_, base_hidden, selected), (_, tuned_hidden, _) in batches:
        if len(base_hidden) != len(tuned_hidden):
            raise ValueError(f"the models differ in depth: {len(base_hidden)} vs {len(tuned_hidden)} hidden states")
        streams = streams or [LinearCKAStream() for _ in base_hidden]
        for stream, b, t in zip(streams, base_hidden, tuned_hidden, strict=True):
            stream.update(
                x=_numpy(real_token_rows(hidden=b, attention_mask=selected)),
                y=_numpy(real_token_rows(hidden=t, attention_mask=selected)),
            )
    return {
        "tokens": streams[0].n,
        **{
            f"token_cka_{name}": [_stream_cka(s, debiased=debiased) for s in streams]
            for debiased, name in ((True, "debiased"), (False, "biased"))
        },
    }


def compare_features(*, xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], shuffle_seed: int) -> dict[str, Any]:
    """Per-layer similarity of base features `xs` and tuned features `ys` (per layer, the
    same prompts in the same order), as JSON-ready values.

    Lists are indexed by hidden-state index (0 = embeddings): `cka_debiased`, `cka_biased`,
    `cosine_centred` (mean cosine of matched examples after subtracting each model's mean
    feature: uncentred, different examples already score 0.94-0.99, so it says little) and
    `cosine_raw`. `matrix_debiased` / `matrix_biased` are base layer x tuned layer. Baselines
    on the base features alone: `self` (base vs base, 1 by construction: a check of the
    pipeline) and `shuffled` (base vs base with examples permuted: what unrelated examples
    score at this n). A value is None where CKA is undefined because a layer's features do
    not vary."""
    if len(xs) != len(ys):
        raise ValueError(f"the models differ in depth: {len(xs)} vs {len(ys)} hidden states")
    n = xs[0].shape[0]
    if n < 4:
        raise ValueError(f"debiased CKA needs at least 4 prompts, got {n}")
    shuffled = [x[shuffled_pairing(n=n, seed=shuffle_seed)] for x in xs]  # the same pairing for every layer
    result: dict[str, Any] = {"examples": n, "layers": len(xs)}
    for debiased, name in ((True, "debiased"), (False, "biased")):
        result[f"cka_{name}"] = [_cka(x, y, debiased=debiased) for x, y in zip(xs, ys, strict=True)]
        result[f"matrix_{name}"] = [[_finite(v) for v in row] for row in cka_matrix(xs=xs, ys=ys, debiased=debiased)]
    result["cosine_centred"] = [_cosine(x - x.mean(axis=0), y - y.mean(axis=0)) for x, y in zip(xs, ys, strict=True)]
    result["cosine_raw"] = [_cosine(x, y) for x, y in zip(xs, ys, strict=True)]
    for baseline, others in (("self", xs), ("shuffled", shuffled)):
        result[baseline] = {
            f"cka_{name}": [_cka(x, other, debiased=debiased) for x, other in zip(xs, others, strict=True)]
            for debiased, name in ((True, "debiased"), (False, "biased"))
        }
    return result


def shuffled_pairing(*, n: int, seed: int) -> np.ndarray:
    """A seeded random pairing of n examples in which no example meets itself (a plain
    permutation can leave fixed points, which would raise the chance level): the examples
    in shuffled order, each paired with the next one round the cycle."""
    order = np.random.default_rng(seed).permutation(n)
    pairing = np.empty(n, dtype=np.int64)
    pairing[order] = np.roll(order, -1)
    return pairing


def _check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}: use one of {', '.join(POOLINGS)}")


def _numpy(features: torch.Tensor) -> np.ndarray:
    return features.cpu().numpy()


def _cka(x: np.ndarray, y: np.ndarray, *, debiased: bool) -> float | None:
    try:
        return linear_cka(x, y, debiased=debiased)
    except UndefinedCKA:
        return None


def _cosine(x: np.ndarray, y: np.ndarray) -> float | None:
    """Mean cosine of matched rows; None when a row is all zeros (no direction to compare)."""
    try:
        return cosine_similarity_mean(x=x, y=y)
    except UndefinedCKA:
        return None


def _stream_cka(stream: LinearCKAStream, *, debiased: bool) -> float | None:
    try:
        return stream.value(debiased=debiased)
    except UndefinedCKA:
        return None


def _finite(value: float) -> float | None:
    # cka_matrix marks undefined entries nan; JSON has no nan.
    return None if math.isnan(value) else float(value)
