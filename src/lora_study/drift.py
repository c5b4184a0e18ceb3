"""Representation drift: every layer's hidden states of two causal LMs (base and fine-tuned)
on the same prompts, compared by CKA and cosine, with baselines; plus perplexity.

Features are pooled per example ("mean" over real tokens or the "last" real token) and,
optionally, compared token by token through a streaming CKA, so only one batch of hidden
states is ever in memory. Everything works from the attention mask, never from positions,
so left padding (as generation uses) and right padding are both handled.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from lora_study.cka import LinearCKAStream, UndefinedCKA, cka_matrix, cosine_similarity_mean, linear_cka
from lora_study.generation import left_pad
from lora_study.prompts import Prompt

POOLINGS = ("mean", "last")


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
    """Every real token's vector, (n_real, d) float64, row by row then position by position."""
    return hidden[attention_mask.bool()].double()


def hidden_state_batches(
    *, model: torch.nn.Module, prompts: Sequence[Prompt], pad_id: int, batch_size: int, device: str
) -> Iterator[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
    """(hidden_states, attention_mask) per batch of left-padded prompts, in prompt order.

    hidden_states[0] is the embedding output and hidden_states[i] the output of block i;
    Hugging Face applies the model's final norm to the last one, so it is the normed
    representation the LM head reads, not the raw residual stream of the last block."""
    for start in range(0, len(prompts), batch_size):
        ids, mask = left_pad(prompts=prompts[start : start + batch_size], pad_id=pad_id, device=device)
        # A plain forward numbers positions 0..t-1 including the padding; positions counted
        # from the mask (what generate() does) make a left-padded row match the prompt alone.
        # Rotary models only see relative positions and would not notice, absolute ones would.
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            outputs = model(
                input_ids=ids, attention_mask=mask, position_ids=position_ids,
                output_hidden_states=True, use_cache=False,
                logits_to_keep=1,  # only the hidden states are wanted: skip (batch x length x vocab) logits
            )
        yield outputs.hidden_states, mask


def compare_models(
    *,
    base: torch.nn.Module,
    tuned: torch.nn.Module,
    prompts: Sequence[Prompt],
    pad_id: int,
    batch_size: int,
    device: str,
    pooling: str,
    token_level: bool,
    shuffle_seed: int,
) -> dict[str, Any]:
    """Per-layer similarity of base and tuned hidden states on the same prompts, as JSON-ready values.

    Lists are indexed by hidden-state index (0 = embeddings): `cka_debiased`, `cka_biased`,
    `cosine_mean` on pooled features, `token_cka_debiased` / `token_cka_biased` over all
    real tokens when `token_level`. `matrix_debiased` / `matrix_biased` are base layer x
    tuned layer. Baselines on the base features alone: `self` (base vs base, 1 by
    construction: a check of the pipeline) and `shuffled` (base vs base with examples
    permuted: what unrelated examples score at this n). A value is None where CKA is
    undefined because a layer's features do not vary: with "last" pooling the embedding
    layer sees the same final template token in every prompt."""
    _check_pooling(pooling)
    if len(prompts) < 4:
        raise ValueError(f"debiased CKA needs at least 4 prompts, got {len(prompts)}")
    base_pooled: list[list[np.ndarray]] = []
    tuned_pooled: list[list[np.ndarray]] = []
    token_streams: list[LinearCKAStream] = []
    batches = zip(
        hidden_state_batches(model=base, prompts=prompts, pad_id=pad_id, batch_size=batch_size, device=device),
        hidden_state_batches(model=tuned, prompts=prompts, pad_id=pad_id, batch_size=batch_size, device=device),
    )
    for (base_hidden, mask), (tuned_hidden, _) in batches:
        if len(base_hidden) != len(tuned_hidden):
            raise ValueError(f"the models differ in depth: {len(base_hidden)} vs {len(tuned_hidden)} hidden states")
        if not base_pooled:
            base_pooled, tuned_pooled = [[] for _ in base_hidden], [[] for _ in base_hidden]
            token_streams = [LinearCKAStream() for _ in base_hidden] if token_level else []
        for layer, (b, t) in enumerate(zip(base_hidden, tuned_hidden)):
            base_pooled[layer].append(_numpy(pool(hidden=b, attention_mask=mask, pooling=pooling)))
            tuned_pooled[layer].append(_numpy(pool(hidden=t, attention_mask=mask, pooling=pooling)))
            if token_level:
                # Both models see identical inputs, so their real-token rows align one to one.
                token_streams[layer].update(
                    x=_numpy(real_token_rows(hidden=b, attention_mask=mask)),
                    y=_numpy(real_token_rows(hidden=t, attention_mask=mask)),
                )
    xs = [np.concatenate(rows) for rows in base_pooled]
    ys = [np.concatenate(rows) for rows in tuned_pooled]
    shuffled = [x[shuffled_pairing(n=len(prompts), seed=shuffle_seed)] for x in xs]  # the same pairing for every layer
    result: dict[str, Any] = {"examples": len(prompts), "layers": len(xs), "pooling": pooling}
    for debiased, name in ((True, "debiased"), (False, "biased")):
        result[f"cka_{name}"] = [_cka(x, y, debiased=debiased) for x, y in zip(xs, ys)]
        result[f"matrix_{name}"] = [[_finite(v) for v in row] for row in cka_matrix(xs=xs, ys=ys, debiased=debiased)]
        if token_level:
            result[f"token_cka_{name}"] = [_stream_cka(s, debiased=debiased) for s in token_streams]
    result["cosine_mean"] = [cosine_similarity_mean(x=x, y=y) for x, y in zip(xs, ys)]
    for baseline, others in (("self", xs), ("shuffled", shuffled)):
        result[baseline] = {
            f"cka_{name}": [_cka(x, other, debiased=debiased) for x, other in zip(xs, others)]
            for debiased, name in ((True, "debiased"), (False, "biased"))
        }
    if token_level:
        result["tokens"] = token_streams[0].n
    return result


def shuffled_pairing(*, n: int, seed: int) -> np.ndarray:
    """A seeded random pairing of n examples in which no example meets itself (a plain
    permutation can leave fixed points, which would raise the chance level): the examples
    in shuffled order, each paired with the next one round the cycle."""
    order = np.random.default_rng(seed).permutation(n)
    pairing = np.empty(n, dtype=np.int64)
    pairing[order] = np.roll(order, -1)
    return pairing


def perplexity(
    *,
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_tokens: int,
    batch_size: int,
    device: str,
) -> dict[str, Any]:
    """Token-weighted mean negative log-likelihood (nats) of the texts and its exp.

    Each text is tokenised on its own (special tokens added, cut to `max_tokens`); every
    token but the first, which nothing predicts, counts once."""
    encoded = [tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_tokens).input_ids for text in texts]
    total_nll, tokens = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start : start + batch_size]
        width = max(len(ids) for ids in batch)
        # Right padding: positions of real tokens are unchanged, so no position_ids are needed.
        # Padding is masked and labelled -100, so which id fills it does not matter.
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, row_ids in enumerate(batch):
            ids[row, : len(row_ids)] = torch.tensor(row_ids)
            mask[row, : len(row_ids)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            targets = labels[:, 1:]
            nll = F.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
            )
        total_nll += float(nll)
        tokens += int((targets != -100).sum())
    if tokens == 0:
        raise ValueError("no token to score: every text is at most one token long")
    mean_nll = total_nll / tokens
    return {"texts": len(texts), "tokens": tokens, "mean_nll": mean_nll, "perplexity": math.exp(mean_nll)}


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


def _stream_cka(stream: LinearCKAStream, *, debiased: bool) -> float | None:
    try:
        return stream.value(debiased=debiased)
    except UndefinedCKA:
        return None


def _finite(value: float) -> float | None:
    # cka_matrix marks undefined entries nan; JSON has no nan.
    return None if math.isnan(value) else float(value)
