"""Merge a trained LoRA-family adapter into its base and export a plain model folder.

The export is what a deployment loads: safetensors and tokenizer that
`AutoModelForCausalLM.from_pretrained` reads with no PEFT installed. Before anything is
written, the merged model's logits are compared with the unmerged PEFT model's on every
evaluation prompt; merge.json records the largest difference and the tolerance it was
checked against, and a difference above it fails the job.

QLoRA is merged into the de-quantised base: the 4-bit NF4 weights the adapter was trained
on, de-quantised to the compute dtype, never into the 4-bit weights themselves (re-quantising
W + dW to 4 bits would round most of dW away) and never into the original full-precision
weights (the adapter learnt to correct the 4-bit ones). DoRA is merged as PEFT defines it.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from torch import nn

from lora_study.core.checksums import MERGE_KEY, folder_hashes, verify_trained
from lora_study.core.data import read_examples
from lora_study.core.grid import VariantSpec
from lora_study.core.io import atomic_directory
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.model.generation import left_pad
from lora_study.model.loading import dtype_name, load_tokenizer, load_unmerged, resolve_device, resolve_dtype
from lora_study.model.prompts import Prompt, PromptBuilder

log = logging.getLogger(__name__)


class MergeError(RuntimeError):
    """The merged model does not reproduce the unmerged one within the tolerance."""


# Prompts per forward pass of the logit check. Its own, not evaluation.batch_size: the check
# holds every position's logits (rows x width x vocabulary floats: 8 x 345 x 49,152 = 0.5 GB on
# the default data), and a batch of the whole evaluation set made the merge job 1.8x slower.
CHECK_BATCH = 8

# (input_ids, attention_mask) -> logits: a model, or a PEFT model with its adapter disabled.
LogitFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def model_logits(model: nn.Module) -> LogitFn:
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits


def base_logits(peft_model: PeftModel) -> LogitFn:
    """The logits of the base under a PEFT model: the same weights with the adapter off."""

    def logits(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with peft_model.disable_adapter():
            return peft_model(input_ids=ids, attention_mask=mask).logits

    return logits


@torch.inference_mode()
def max_logit_difference(
    *, first: LogitFn, second: LogitFn, prompts: Sequence[Prompt], pad_id: int, batch_size: int, device: str
) -> dict[str, float]:
    """Largest and mean |logit difference| between two models over every real (not padded)
    position of `prompts`, and the share of positions whose top token agrees."""
    largest, total, positions, agree, vocabulary = 0.0, 0.0, 0, 0, 0
    # By length, so a batch pads little (the figures do not depend on the order).
    ordered = sorted(prompts, key=lambda prompt: len(prompt.input_ids))
    for start in range(0, len(ordered), batch_size):
        ids, mask = left_pad(prompts=ordered[start : start + batch_size], pad_id=pad_id, device=device)
        a, b = first(ids, mask).float(), second(ids, mask).float()
        real = mask.bool()
        difference = (a - b).abs()[real]
        largest = max(largest, float(difference.max()))
        total += float(difference.sum())
        positions += int(real.sum())
        agree += int((a.argmax(-1) == b.argmax(-1))[real].sum())
        vocabulary = a.shape[-1]
    return {
        "max_abs_logit_difference": largest,
        "mean_abs_logit_difference": total / (positions * vocabulary),
        "top_token_agreement": agree / positions,
        "positions": positions,
    }


def merge_variant(
    *,
    spec: VariantSpec,
    model_dir: str | Path,
    adapter: str | Path,
    eval_path: str | Path,
    config: Mapping[str, Any],
    out_dir: str | Path,
    merge_json: str | Path,
) -> dict[str, Any]:
    """Merge `spec`'s adapter, check it against the unmerged model, export it; write merge.json.

    `config` holds the `model`, `prompt` and `merge` blocks (`merge.tolerance`:
    the largest |logit difference| allowed, per dtype name)."""
    if not spec.is_lora:
        raise ValueError(f"{spec.name} is not a LoRA-family variant; only adapters are merged")
    verify_trained(adapter)
    device = resolve_device(config["model"]["device"])
    dtype = resolve_dtype(config["model"]["dtype"], device=device)
    tolerance = float(config["merge"]["tolerance"][dtype_name(dtype)])
    tokenizer = load_tokenizer(model_dir)
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=config["prompt"])
    prompts = [builder.build(example.input, fields=example.fields) for example in read_examples(eval_path)]

    started = time.perf_counter()
    unmerged, dequantised = load_unmerged(spec=spec, model_dir=model_dir, adapter=adapter, device=device, dtype=dtype)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    # A copy, so both models are there to compare: merging in place and unmerging again
    # would compare the model with itself after two roundings.
    merged = copy.deepcopy(unmerged).merge_and_unload(safe_merge=True)
    merge_seconds = time.perf_counter() - started
    compare = {"prompts": prompts, "pad_id": tokenizer.pad_token_id, "batch_size": CHECK_BATCH}
    check = max_logit_difference(first=model_logits(unmerged), second=model_logits(merged), device=device, **compare)
    # What the adapter itself does to the logits: the tolerance must be far below it, or a
    # merge that dropped the adapter would pass. One batch of prompts shows it (a third
    # forward pass over all of them would add a fifth to the job's time).
    effect = max_logit_difference(
        first=model_logits(unmerged),
        second=base_logits(unmerged),
        device=device,
        **{**compare, "prompts": prompts[: compare["batch_size"]]},
    )
    log.info(
        "%s merged in %.1f s: max |logit difference| %.2e (tolerance %.1e; the adapter itself moves logits by up "
        "to %.2e), top token agrees at %.2f%% of %d positions",
        spec.name,
        merge_seconds,
        check["max_abs_logit_difference"],
        tolerance,
        effect["max_abs_logit_difference"],
        100 * check["top_token_agreement"],
        check["positions"],
    )
    # A tolerance at or above what the adapter itself does could not fail: a merge that dropped
    # the adapter, or merged it wrongly, would pass. Recorded and reported, not refused: an
    # adapter that barely moved (a short run) is no reason to stop the study.
    below_effect = tolerance < effect["max_abs_logit_difference"]
    if not below_effect:
        log.warning(
            "%s: the tolerance %.3g (merge.tolerance.%s) is not below the adapter's own effect on the logits "
            "(%.3g): this check could not fail, so it shows nothing; merge.json and the report say so",
            spec.name,
            tolerance,
            dtype_name(dtype),
            effect["max_abs_logit_difference"],
        )
    if not check["max_abs_logit_difference"] <= tolerance:  # also catches NaN
        raise MergeError(
            f"{spec.name}: the merged model's logits differ from the unmerged adapter's by up to "
            f"{check['max_abs_logit_difference']:.3g} on the prompts of {eval_path}, above the tolerance "
            f"{tolerance:g} for {dtype_name(dtype)} (merge.tolerance.{dtype_name(dtype)} in the config); "
            "nothing was exported"
        )
    del unmerged
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as folder:
        merged.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)  # as full fine-tuning saves its model folder
        hashes = folder_hashes(folder)
    result = {
        "run": {
            "variant": spec.name,
            "spec": spec.to_dict(),
            "adapter": str(adapter),
            "model_dir": str(model_dir),
            "eval_file": str(eval_path),
            "prompts": len(prompts),
            "merged_into": (
                "the 4-bit NF4 base de-quantised to the compute dtype" if spec.kind == "qlora" else "the prepared base"
            ),
            "config": {key: config[key] for key in ("model", "prompt", "merge")},
        },
        "metrics": {
            **check,
            "tolerance": tolerance,
            "within_tolerance": True,
            # On the first evaluation batch: the largest change the adapter makes to a logit.
            "adapter_max_abs_logit_effect": effect["max_abs_logit_difference"],
            # False: the check above could not have failed (the tolerance is not below that effect).
            "tolerance_below_adapter_effect": below_effect,
            "adapter_top_token_change": 1 - effect["top_token_agreement"],
            "load_seconds": load_seconds,
            "merge_seconds": merge_seconds,
            "dequantised_layers": dequantised,
            "merged_bytes": sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file()),
            MERGE_KEY: hashes,
        },
        "meta": {**meta_info(device=device), "dtype": dtype_name(dtype)},
    }
    write_result(merge_json, **result)
    return result
