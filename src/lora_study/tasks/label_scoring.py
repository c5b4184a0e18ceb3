"""Scores every label of a classification task for every prompt: the summed log-probability
the model gives the label's answer (its verbaliser and the answer's end marker, exactly as
training writes it) after the prompt. The highest-scoring label is the prediction.

Prompt and answer are left-padded together, with position ids counted from each row's first
real token, so a row scores the same alone or in a batch; logits are kept for the answer's
positions only (the vocabulary is large, the answers are short).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lora_study.model.generation import batch_count
from lora_study.model.prompts import Prompt, PromptBuilder


def answer_ids(*, builder: PromptBuilder, words: Mapping[str, str]) -> dict[str, list[int]]:
    """label -> the token ids of its answer as training writes it (builder.completion_text)."""
    tokenizer = builder.tokenizer
    return {
        label: list(tokenizer(builder.completion_text(text), add_special_tokens=False).input_ids)
        for label, text in words.items()
    }


@torch.inference_mode()
def sequence_log_probs(
    *, model: Any, prompts: Sequence[list[int]], answers: Sequence[list[int]], pad_id: int, batch_size: int
) -> list[float]:
    """log P(answer | prompt), summed over the answer's tokens, for each (prompt, answer) pair."""
    device = str(model.device)
    scores: list[float] = []
    for start in range(0, len(prompts), batch_size):
        rows = [
            p + a for p, a in zip(prompts[start : start + batch_size], answers[start : start + batch_size], strict=True)
        ]
        width, keep = max(len(r) for r in rows), max(len(a) for a in answers[start : start + batch_size]) + 1
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            logits_to_keep=keep,
        ).logits.float()
        log_probs = torch.log_softmax(logits, dim=-1)  # [rows, keep, vocab]: the last `keep` positions
        for i, answer in enumerate(answers[start : start + batch_size]):
            # Position t predicts token t + 1: the answer's tokens are the row's last len(answer),
            # predicted by the len(answer) positions before the last one.
            steps = log_probs[i, keep - 1 - len(answer) : keep - 1]
            target = torch.tensor(answer, device=steps.device)
            scores.append(float(steps.gather(1, target[:, None]).sum()))
    return scores


def label_predictions(
    *,
    model: Any,
    builder: PromptBuilder,
    prompts: Sequence[Prompt],
    words: Mapping[str, str],
    batch_size: int | str,
    **_: Any,
) -> list[dict[str, Any]]:
    """Per prompt: every label's score and the highest-scoring label (ties: the first label)."""
    answers = answer_ids(builder=builder, words=words)
    labels = list(answers)
    # Prompts of similar length together (less padding), every label of a prompt in the same
    # batch: its labels then share one padding, so 16-bit rounding cannot favour one of them.
    by_length = sorted(range(len(prompts)), key=lambda i: -len(prompts[i].input_ids))
    order = [i * len(labels) + k for i in by_length for k in range(len(labels))]
    pairs = [(p.input_ids, answers[label]) for p in prompts for label in labels]
    rows_per_call = batch_count(batch_size, len(pairs))
    scored = sequence_log_probs(
        model=model,
        prompts=[pairs[i][0] for i in order],
        answers=[pairs[i][1] for i in order],
        pad_id=builder.tokenizer.pad_token_id,
        batch_size=max(1, rows_per_call // len(labels)) * len(labels),
    )
    by_pair = dict(zip(order, scored, strict=True))
    rows = []
    for index in range(len(prompts)):
        scores = {label: by_pair[index * len(labels) + k] for k, label in enumerate(labels)}
        if not all(math.isfinite(s) for s in scores.values()):
            raise ValueError(f"prompt {index}: a label's log-probability is not finite: {scores}")
        rows.append({"label_scores": scores, "label": max(labels, key=lambda label: scores[label])})
    return rows
