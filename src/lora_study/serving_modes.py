"""One serving job: one model served in one mode across the batch sizes.

base      the prepared base model, no adapter: the reference
merged    the exported merged model (results/merged/...), loaded by plain transformers
unmerged  the base with the PEFT adapter kept separate and active (a QLoRA base stays 4-bit,
          as trained)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from lora_study.checksums import verify_merged
from lora_study.finetune import variant_loader
from lora_study.grid import VariantSpec
from lora_study.modeling import LoadedModel, base_loader, dtype_name, load_tokenizer, resolve_device, resolve_dtype
from lora_study.provenance import meta_info
from lora_study.results import write_result
from lora_study.serving import DECODING, SINGLE_MODES, Call, memory_held, request_stream, sweep

log = logging.getLogger(__name__)


def load_merged(*, folder: str | Path, model: Mapping[str, Any]) -> LoadedModel:
    """An exported merged model, once its files match merge.json's hashes."""
    verify_merged(folder)
    device = resolve_device(model["device"])
    dtype = resolve_dtype(model["dtype"], device=device)
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    return LoadedModel(model=loaded, device=device, dtype=dtype_name(dtype), details={"weights": str(folder)})


def load_mode(
    *,
    mode: str,
    model_dir: str | Path,
    weights: str | Path | None,
    spec: VariantSpec | None,
    model: Mapping[str, Any],
) -> LoadedModel:
    if mode == "base":
        return base_loader(model_dir=model_dir, model=model)()
    if weights is None or spec is None:
        raise ValueError(f"mode {mode} needs a variant's weights")
    if mode == "merged":
        return load_merged(folder=weights, model=model)
    if mode == "unmerged":
        return variant_loader(spec=spec, model_dir=model_dir, weights=weights, model=model)()
    raise ValueError(f"unknown serving mode {mode!r}; expected one of {', '.join(SINGLE_MODES)}")


def serve_mode(
    *,
    mode: str,
    model_dir: str | Path,
    eval_path: str | Path,
    config: Mapping[str, Any],
    out_path: str | Path,
    spec: VariantSpec | None = None,
    weights: str | Path | None = None,
) -> dict[str, Any]:
    """Serve the request stream in `mode` at every batch size; write the serving file.

    `config` holds the `model`, `prompt` and `serving` blocks."""
    settings = config["serving"]
    tokenizer = load_tokenizer(model_dir)
    batch_sizes = list(settings["batch_sizes"])
    requests = request_stream(
        eval_path=eval_path,
        tokenizer=tokenizer,
        prompt=config["prompt"],
        max_prompt_tokens=settings["max_prompt_tokens"],
        count=max(batch_sizes),
    )
    started = time.perf_counter()
    loaded = load_mode(mode=mode, model_dir=model_dir, weights=weights, spec=spec, model=config["model"])
    load_seconds = time.perf_counter() - started
    held = memory_held(models=[loaded.model], device=loaded.device)
    log.info(
        "%s %s loaded in %.1f s: %.1f MB of weights",
        spec.name if spec else "base",
        mode,
        load_seconds,
        held["weight_bytes"] / 1e6,
    )

    def plan(batch: Sequence[Any]) -> list[Call]:
        return [Call(model=loaded.model, rows=range(len(batch)), label=mode)]

    batches = sweep(
        plan=plan,
        requests=requests,
        tokenizer=tokenizer,
        batch_sizes=batch_sizes,
        new_tokens=settings["new_tokens"],
        warmup=settings["warmup"],
        repeats=settings["repeats"],
        device=loaded.device,
    )
    result = {
        "run": {
            "variant": spec.name if spec else "base",
            "mode": mode,
            "spec": spec.to_dict() if spec else None,
            "model_dir": str(model_dir),
            "weights": str(weights) if weights else None,
            "eval_file": str(eval_path),
            "decoding": DECODING,
            "config": {key: config[key] for key in ("model", "prompt", "serving")},
        },
        "metrics": {
            "load_seconds": load_seconds,
            **held,
            "under_load": any(b["metrics"]["under_load"] for b in batches),
            "batches": batches,
        },
        "meta": {
            **meta_info(device=loaded.device),
            "dtype": loaded.dtype,
            "model": dict(loaded.details),
            "torch_threads": torch.get_num_threads(),
        },
    }
    write_result(out_path, **result)
    return result
