"""Validation loss of a trained variant: what a learning-rate sweep chooses on.

The loss is the training objective itself, measured on examples the variant never trained
on and the study never tests on (data.draw_validation): the mean next-token cross-entropy
of each validation example's reference tokens (prompt masked, the same prompt and target as
training: training.make_item), one value per example, so that the choice has an interval
over examples. It needs no generation, so it costs one forward pass per example.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from lora_study.core.data import read_examples
from lora_study.core.grid import VariantSpec
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.model.loading import ModelLoader, load_tokenizer
from lora_study.model.prompts import PromptBuilder
from lora_study.model.training import TrainItem, collate, make_items, target_loss_sum


@torch.inference_mode()
def example_losses(*, model: Any, items: Sequence[TrainItem], pad_id: int, device: str) -> list[float]:
    """Mean cross-entropy per reference token of each item, one item per forward pass (no
    padding, so an example's loss never depends on another's length)."""
    losses = []
    for item in items:
        batch = collate([item], pad_id=pad_id, device=device)
        losses.append(float(target_loss_sum(model, batch)) / item.target_tokens)
    return losses


def validate_variant(
    *,
    spec: VariantSpec,
    load: ModelLoader,
    model_dir: str | Path,
    validation_path: str | Path,
    config: Mapping[str, Any],
    out_path: str | Path,
) -> dict[str, Any]:
    """Write validation.json: the variant's loss on every validation example."""
    started = time.perf_counter()
    loaded = load()
    tokenizer = load_tokenizer(model_dir)
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=config["prompt"])
    examples = read_examples(validation_path)
    items = make_items(
        builder=builder,
        tokenizer=tokenizer,
        examples=examples,
        max_target_tokens=config["training"]["max_target_tokens"],
        task=config.get("task"),
    )
    losses = example_losses(model=loaded.model, items=items, pad_id=tokenizer.pad_token_id, device=loaded.device)
    result = {
        "run": {"variant": spec.name, "spec": spec.to_dict(), "validation_file": str(validation_path)},
        "metrics": {
            "criterion": "validation loss: mean cross-entropy per reference token, per example",
            "mean_loss": sum(losses) / len(losses),
            "per_example": [{"id": e.id, "loss": loss} for e, loss in zip(examples, losses, strict=True)],
            "seconds": time.perf_counter() - started,
        },
        "meta": {**meta_info(device=loaded.device), "dtype": loaded.dtype},
    }
    write_result(out_path, **result)
    return result
