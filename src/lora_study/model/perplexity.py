"""Per-text perplexity of a causal LM: the forgetting measure of the drift and weights stages."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase


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
    per_text_nll: list[float] = []
    per_text_tokens: list[int] = []
    encoded = [
        tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_tokens).input_ids for text in texts
    ]
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
                logits[:, :-1].float().transpose(1, 2), targets, ignore_index=-100, reduction="none"
            ).double()
        per_text_nll += nll.sum(dim=1).tolist()
        per_text_tokens += (targets != -100).sum(dim=1).tolist()
        total_nll += float(nll.sum())
        tokens += int((targets != -100).sum())
    if tokens == 0:
        raise ValueError("no token to score: every text is at most one token long")
    mean_nll = total_nll / tokens
    return {
        "texts": len(texts),
        "tokens": tokens,
        "mean_nll": mean_nll,
        "perplexity": math.exp(mean_nll),
        # Per text, for intervals over texts: summed NLL (nats) and tokens scored.
        "per_text_nll": per_text_nll,
        "per_text_tokens": per_text_tokens,
    }
