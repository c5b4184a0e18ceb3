"""Multi-adapter serving: every trained LoRA adapter of a base served from one process.

A mixed request stream (request i asks for adapter i mod k) is served three ways:

  mixed    one PEFT model holding every adapter; each batch is one generate() call in which
           every row gets its own adapter (PEFT's `adapter_names`)
  grouped  the same PEFT model; each batch is split by adapter, one call per group with that
           adapter made active first (a request waits for the groups served before its own);
           its passes alternate with the mixed ones, so the two compare pass by pass
  merged   one exported merged model per adapter; each batch is split by adapter, one call
           per group on that adapter's model

Adapters PEFT cannot mix in one batch are left out of all three, with the reason: DoRA
(PEFT refuses `adapter_names` with DoRA layers), and QLoRA (trained on the 4-bit base, while
the shared base here is the full-precision one; serving it there is another model).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from lora_study.core.checksums import verify_trained
from lora_study.core.conditions import any_under_load
from lora_study.core.grid import MIXED_BATCH_EXCLUDED, VariantSpec
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.model.loading import base_loader
from lora_study.stages.serving.engine import DECODING, Call, Request, memory_held, served_requests, sweep
from lora_study.stages.serving.modes import load_merged

log = logging.getLogger(__name__)

MIXED_MODES = ("mixed", "grouped", "merged")


def excluded_reason(spec: VariantSpec) -> str | None:
    """Why `spec` cannot join the mixed batches; None if it can (grid.MIXED_BATCH_EXCLUDED)."""
    return MIXED_BATCH_EXCLUDED.get(spec.kind)


def adapter_of(index: int, names: Sequence[str]) -> str:
    """The adapter request `index` of the stream asks for: round robin."""
    return names[index % len(names)]


def groups(batch_size: int, names: Sequence[str]) -> list[tuple[str, list[int]]]:
    """The rows of a batch of the first `batch_size` requests, per adapter, in adapter order."""
    rows = {name: [] for name in names}
    for index in range(batch_size):
        rows[adapter_of(index, names)].append(index)
    return [(name, members) for name, members in rows.items() if members]


def serve_multi_adapter(
    *,
    specs: Sequence[VariantSpec],
    adapters: Mapping[str, str | Path],
    merged: Mapping[str, str | Path],
    model_dir: str | Path,
    eval_path: str | Path,
    config: Mapping[str, Any],
    out_path: str | Path,
) -> dict[str, Any]:
    """Serve the mixed stream the three ways at every batch size; write multi_adapter.json.

    `specs`: every LoRA-family variant of the base; `adapters` and `merged`: the adapter folder
    and the exported merged folder of each that can be mixed, by name (the excluded ones need
    neither). `config` holds `model`, `prompt`, `serving`."""
    settings = config["serving"]
    excluded = {spec.name: reason for spec in specs if (reason := excluded_reason(spec))}
    served = [(spec, Path(adapters[spec.name]), Path(merged[spec.name])) for spec in specs if spec.name not in excluded]
    names = [spec.name for spec, _, _ in served]
    result_run = {
        "adapters": names,
        "excluded": excluded,
        "assignment": "request i asks for adapter i mod k, in the order of `adapters`",
        "model_dir": str(model_dir),
        "eval_file": str(eval_path),
        "decoding": DECODING,
        "config": {key: config[key] for key in ("model", "prompt", "serving")},
    }
    if not served:
        write_result(
            out_path,
            run=result_run,
            metrics={"modes": {}, "note": "no adapter that PEFT can serve in a mixed batch"},
            meta=meta_info(),
        )
        return {}

    tokenizer, requests = served_requests(model_dir=model_dir, eval_path=eval_path, config=config)
    batch_sizes = list(settings["batch_sizes"])
    common = {
        "requests": requests,
        "tokenizer": tokenizer,
        "batch_sizes": batch_sizes,
        "new_tokens": settings["new_tokens"],
        "warmup": settings["warmup"],
        "repeats": settings["repeats"],
    }

    modes: dict[str, Any] = _serve_peft(served=served, model_dir=model_dir, config=config, common=common)
    device = modes["mixed"]["device"]

    # merged: one exported model per adapter.
    started = time.perf_counter()
    models = {spec.name: load_merged(folder=folder, model=config["model"]).model for spec, _, folder in served}
    load_seconds = time.perf_counter() - started
    held = memory_held(models=list(models.values()), device=device)

    def merged_plan(batch: Sequence[Request]) -> list[Call]:
        return [Call(model=models[name], rows=rows, label=name) for name, rows in groups(len(batch), names)]

    log.info("serving %d merged models", len(names))
    modes["merged"] = {
        "device": device,
        "dtype": modes["mixed"]["dtype"],
        "load_seconds": load_seconds,
        **held,
        "batches": sweep(plans={"merged": merged_plan}, device=device, **common)["merged"],
    }

    result = {
        "run": result_run,
        "metrics": {
            "modes": modes,
            "under_load": any_under_load(b["metrics"]["under_load"] for m in modes.values() for b in m["batches"]),
        },
        "meta": {
            **meta_info(device=device),
            "dtype": modes["mixed"]["dtype"],
            "torch_threads": torch.get_num_threads(),
        },
    }
    write_result(out_path, **result)
    return result


def _serve_peft(
    *,
    served: Sequence[tuple[VariantSpec, Path, Path]],
    model_dir: str | Path,
    config: Mapping[str, Any],
    common: Mapping[str, Any],
) -> dict[str, Any]:
    """The mixed and grouped modes: one base with every adapter loaded beside it (freed on return)."""
    names = [spec.name for spec, _, _ in served]
    started = time.perf_counter()
    loaded = base_loader(model_dir=model_dir, model=config["model"])()
    peft_model = None
    for spec, adapter, _ in served:
        verify_trained(adapter)
        if peft_model is None:
            peft_model = PeftModel.from_pretrained(loaded.model, adapter, adapter_name=spec.name)
        else:
            peft_model.load_adapter(adapter, adapter_name=spec.name)
    peft_model.eval()
    load_seconds = time.perf_counter() - started
    held = memory_held(models=[peft_model], device=loaded.device)

    def mixed(batch: Sequence[Request]) -> list[Call]:
        row_adapters = [adapter_of(index, names) for index in range(len(batch))]
        return [
            Call(
                model=peft_model, rows=range(len(batch)), label="mixed", generate_kwargs={"adapter_names": row_adapters}
            )
        ]

    def grouped(batch: Sequence[Request]) -> list[Call]:
        return [
            Call(model=peft_model, rows=rows, label=name, prepare=lambda name=name: peft_model.set_adapter(name))
            for name, rows in groups(len(batch), names)
        ]

    log.info("serving %d adapters, mixed and grouped batches interleaved", len(names))
    batches = sweep(plans={"mixed": mixed, "grouped": grouped}, device=loaded.device, **common)
    return {
        mode: {
            "device": loaded.device,
            "dtype": loaded.dtype,
            "load_seconds": load_seconds,
            **held,
            "batches": batches[mode],
        }
        for mode in ("mixed", "grouped")
    }
