"""One training job: a fresh base, one variant, its artefacts and train.json.

LoRA-family variants save a PEFT adapter folder (adapter_config.json +
adapter_model.safetensors) that `PeftModel.from_pretrained` loads on the prepared base;
full fine-tuning saves a complete model folder. Beside it: train.json (what ran, how
fast, how much memory, the final loss, the sha256 of every saved file that loaders check:
`checksums.verify_trained`) and loss.csv (one row per optimizer step).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lora_study.core.checksums import TRAIN_KEY, folder_hashes
from lora_study.core.data import read_examples
from lora_study.core.grid import VariantSpec
from lora_study.core.io import atomic_directory
from lora_study.core.progress import Progress
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.model.adapters import adapter_scaling, attach_adapter, count_parameters
from lora_study.model.flops import matmul_peak_gflops
from lora_study.model.loading import (
    dtype_name,
    load_base_for,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
)
from lora_study.model.prompts import PromptBuilder
from lora_study.model.training import (
    StepRecord,
    make_items,
    optimizer_steps,
    peak_memory_bytes,
    seed_everything,
    steady_state,
    train_loop,
    write_loss_csv,
)

log = logging.getLogger(__name__)


def train_variant(
    *,
    spec: VariantSpec,
    model_dir: str | Path,
    train_path: str | Path,
    config: Mapping[str, Any],
    weights_out: str | Path,
    train_json: str | Path,
    loss_csv: str | Path,
) -> dict[str, Any]:
    """Train `spec` on the examples in `train_path` and write its artefacts."""
    settings = config["training"]
    device = resolve_device(config["model"]["device"])
    # The configured dtype is the compute dtype. Trained weights stay float32: PEFT keeps
    # adapter weights float32 on a 16-bit base, and full fine-tuning loads float32 master
    # weights and computes under autocast (AdamW on 16-bit weights loses small updates).
    dtype = resolve_dtype(config["model"]["dtype"], device=device)
    seed_everything(spec.seed)
    tokenizer = load_tokenizer(model_dir)
    load_dtype = torch.float32 if spec.kind == "fft" else dtype
    model = load_base_for(spec=spec, model_dir=model_dir, device=device, dtype=load_dtype)
    if spec.is_lora:
        model = attach_adapter(model=model, spec=spec)
    trainable, total = count_parameters(model)
    log.info("%s: %d trainable of %d parameters (%.3f%%)", spec.name, trainable, total, 100 * trainable / total)

    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=config["prompt"])
    examples = read_examples(train_path)
    items = make_items(
        builder=builder,
        tokenizer=tokenizer,
        examples=examples,
        max_target_tokens=settings["max_target_tokens"],
        task=config.get("task"),
    )

    peak_gflops = matmul_peak_gflops(device=device, dtype=dtype)
    steps = Progress(total=optimizer_steps(items=len(items), settings=settings), unit="steps")

    def progress(record: StepRecord) -> None:
        log.info(
            "epoch %d/%d: loss %.4f, lr %.2e, %d tokens in %.1f s; %s",
            record.epoch,
            settings["epochs"],
            record.loss,
            record.learning_rate,
            record.tokens,
            record.seconds,
            steps.line(record.step),
        )

    started = time.perf_counter()
    records = train_loop(
        model=model,
        items=items,
        settings=settings,
        learning_rate=spec.learning_rate,
        seed=spec.seed,
        pad_id=tokenizer.pad_token_id,
        device=device,
        compute_dtype=dtype,
        on_step=progress,
    )
    train_seconds = time.perf_counter() - started

    weights_out = Path(weights_out)
    with atomic_directory(weights_out) as folder:
        model.save_pretrained(folder, safe_serialization=True)
        if not spec.is_lora:
            tokenizer.save_pretrained(folder)
        hashes = folder_hashes(folder)
    write_loss_csv(loss_csv, records)
    tokens = sum(r.tokens for r in records)
    padded = sum(r.padded_tokens for r in records)
    result = {
        "run": {
            "variant": spec.name,
            "spec": spec.to_dict(),
            "train_file": str(train_path),
            "examples": len(items),
            "config": {key: config[key] for key in ("model", "prompt", "training")},
            "task": config.get("task"),
        },
        "metrics": {
            "trainable_parameters": trainable,
            "total_parameters": total,
            "trainable_percent": 100 * trainable / total,
            # alpha/r (alpha/sqrt(r) for rslora) as PEFT applied it; null for full fine-tuning.
            "lora_scaling": adapter_scaling(model),
            "artefact_bytes": sum(f.stat().st_size for f in weights_out.rglob("*") if f.is_file()),
            # A property of the files this job wrote, like their size (metrics, not run: run
            # is what was asked); every loader checks them (checksums.verify_trained).
            TRAIN_KEY: hashes,
            "train_seconds": train_seconds,
            "steps": len(records),
            "tokens": tokens,
            "target_tokens": sum(r.target_tokens for r in records),
            # Padded positions / all positions of the batches (computed, masked out of the loss).
            "padding_share": padded / (tokens + padded) if tokens else None,
            "tokens_per_second": tokens / train_seconds,
            # Beside the whole-job figure: steps that ran an already-seen batch shape only.
            "steady_state": steady_state(records),
            "achieved_gflops": sum(r.flops for r in records) / train_seconds / 1e9,
            "matmul_peak_gflops": peak_gflops,
            "final_loss": records[-1].loss if records else None,
            "truncated_prompts": sum(item.prompt_truncated for item in items),
            **peak_memory_bytes(device),
        },
        "meta": {**meta_info(device=device), "dtype": dtype_name(dtype)},
    }
    write_result(train_json, **result)
    return result
