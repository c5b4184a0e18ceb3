"""One serving job: one model served in one mode across the batch sizes.

base      the prepared base model, no adapter: the reference
merged    the exported merged model (results/merged/...), loaded by plain transformers
unmerged  the base with the PEFT adapter kept separate and active (a QLoRA base stays 4-bit,
          as trained)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from lora_study.core.checksums import verify_merged, verify_trained
from lora_study.core.conditions import any_under_load
from lora_study.core.grid import VariantSpec
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.model.loading import (
    LoadedModel,
    base_loader,
    dtype_name,
    load_unmerged,
    resolve_device,
    resolve_dtype,
    variant_loader,
)
from lora_study.stages.serving.engine import DECODING, SINGLE_MODES, Call, memory_held, served_requests, sweep

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
        if spec.kind != "qlora":
            return variant_loader(spec=spec, model_dir=model_dir, weights=weights, model=model)()
        # QLoRA unmerged on the base it is merged into (the de-quantised 4-bit weights), so
        # that unmerged against merged measures the adapter kept separate, not 4-bit kernels.
        verify_trained(weights)
        device = resolve_device(model["device"])
        dtype = resolve_dtype(model["dtype"], device=device)
        peft_model, _ = load_unmerged(spec=spec, model_dir=model_dir, adapter=weights, device=device, dtype=dtype)
        details = {"variant": spec.to_dict(), "weights": str(weights), "base": "the 4-bit NF4 base, de-quantised"}
        return LoadedModel(model=peft_model, device=device, dtype=dtype_name(dtype), details=details)
    raise ValueError(f"unknown serving mode {mode!r}; expected one of {', '.join(SINGLE_MODES)}")


def serve_modes(
    *,
    modes: Mapping[str, str | Path | None],
    out_paths: Mapping[str, str | Path],
    model_dir: str | Path,
    eval_path: str | Path,
    config: Mapping[str, Any],
    spec: VariantSpec | None = None,
) -> dict[str, dict[str, Any]]:
    """Serve the request stream in each of `modes` (mode -> the weights it serves, None for
    the base) at every batch size, the modes' passes interleaved; one serving file per mode.

    `config` holds the `model`, `prompt` and `serving` blocks."""
    settings = config["serving"]
    tokenizer, requests = served_requests(model_dir=model_dir, eval_path=eval_path, config=config)
    batch_sizes = list(settings["batch_sizes"])
    loaded, load_seconds, held = {}, {}, {}
    for mode, weights in modes.items():
        started = time.perf_counter()
        loaded[mode] = load_mode(mode=mode, model_dir=model_dir, weights=weights, spec=spec, model=config["model"])
        load_seconds[mode] = time.perf_counter() - started
        held[mode] = memory_held(models=[loaded[mode].model], device=loaded[mode].device)
        log.info("%s loaded in %.1f s: %.1f MB of weights", mode, load_seconds[mode], held[mode]["weight_bytes"] / 1e6)
    devices = {item.device for item in loaded.values()}
    if len(devices) > 1:
        raise ValueError(
            f"the modes loaded on different devices ({', '.join(sorted(devices))}); timings would not compare"
        )

    def planner(mode: str) -> Callable[[Sequence[Any]], list[Call]]:
        return lambda batch: [Call(model=loaded[mode].model, rows=range(len(batch)), label=mode)]

    batches = sweep(
        plans={mode: planner(mode) for mode in modes},
        requests=requests,
        tokenizer=tokenizer,
        batch_sizes=batch_sizes,
        new_tokens=settings["new_tokens"],
        warmup=settings["warmup"],
        repeats=settings["repeats"],
        device=devices.pop(),
    )
    results = {}
    for mode, weights in modes.items():
        results[mode] = {
            "run": {
                "variant": spec.name if spec else "base",
                "mode": mode,
                "spec": spec.to_dict() if spec else None,
                "model_dir": str(model_dir),
                "weights": str(weights) if weights else None,
                "eval_file": str(eval_path),
                "decoding": DECODING,
                # The modes timed in the same job, pass by pass: their passes pair up.
                "interleaved_with": [other for other in modes if other != mode],
                "config": {key: config[key] for key in ("model", "prompt", "serving")},
            },
            "metrics": {
                "load_seconds": load_seconds[mode],
                **held[mode],
                "under_load": any_under_load(b["metrics"]["under_load"] for b in batches[mode]),
                "batches": batches[mode],
            },
            "meta": {
                **meta_info(device=loaded[mode].device),
                "dtype": loaded[mode].dtype,
                "model": dict(loaded[mode].details),
                "torch_threads": torch.get_num_threads(),
            },
        }
        write_result(out_paths[mode], **results[mode])
    return results
