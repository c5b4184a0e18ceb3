"""LoRA parameter counts from a prepared model's tensor shapes, without loading it (Study 2).

A LoRA adapter of rank r on a Linear layer with `in` inputs and `out` outputs adds
A (r x in) and B (out x r): r * (in + out) trainable parameters. Every count therefore
follows from the weights' shapes, and a safetensors file states them in the JSON header at
its start (8 bytes of header length, then the header): reading it takes milliseconds and
no torch, where building the model on PyTorch's meta device and asking PEFT took the job
seconds of imports (tests/test_param_counts.py checks both agree on a tiny Llama).

Which tensors are Linear layers, as PEFT sees them: 2-D `.weight` tensors, except the input
embeddings and the output head (PEFT's `all-linear` leaves the output layer out; named
presets list module names, matched on the last name component). Tied embeddings are
stored once (save_pretrained drops the tied copy) and counted once, as torch's
`parameters()` and so PEFT do. A folder without safetensors weights (an old local folder
with `.bin` files) is counted the old way, through PEFT on the meta device.

Standard library only (and lora_study's own readers).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lora_study.core.checksums import weights_dir
from lora_study.core.grid import target_modules
from lora_study.core.io import read_json

SAFETENSORS_INDEX = "model.safetensors.index.json"
# The output head as transformers names it; PEFT's all-linear never targets it.
OUTPUT_HEADS = ("lm_head",)
# Module names of input embeddings (token and position), which are 2-D but not Linear.
EMBEDDING_MARKERS = ("embed", "wte", "wpe")


def safetensors_shapes(path: str | Path) -> dict[str, list[int]]:
    """{tensor name: shape} from a safetensors file's header, without reading its data."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return {name: list(entry["shape"]) for name, entry in header.items() if name != "__metadata__"}


def weight_shapes(folder: str | Path) -> dict[str, list[int]]:
    """Every weight tensor's shape in a model folder (one safetensors file or a sharded set)."""
    folder = Path(folder)
    index = folder / SAFETENSORS_INDEX
    files = (
        sorted({folder / name for name in read_json(index)["weight_map"].values()})
        if index.is_file()
        else sorted(folder.glob("*.safetensors"))
    )
    shapes: dict[str, list[int]] = {}
    for path in files:
        shapes.update(safetensors_shapes(path))
    return shapes


def _module_name(tensor: str) -> str:
    return tensor.removeprefix("base_model.model.").rsplit(".", 1)[0]


def _is_linear(tensor: str, shape: Sequence[int]) -> bool:
    if not tensor.endswith(".weight") or len(shape) != 2:
        return False
    leaf = _module_name(tensor).rsplit(".", 1)[-1]
    return leaf not in OUTPUT_HEADS and not any(marker in leaf for marker in EMBEDDING_MARKERS)


def lora_parameters(*, shapes: Mapping[str, Sequence[int]], rank: int, preset: str) -> int:
    """Trainable parameters of LoRA at `rank` on the Linear layers `preset` names (a preset of
    lora_study.core.grid.TARGET_PRESETS or "+"-joined module names): r * (in + out) per layer."""
    targets = target_modules(preset)
    total = 0
    for tensor, shape in shapes.items():
        if not _is_linear(tensor, shape):
            continue
        if targets == "all-linear" or _module_name(tensor).rsplit(".", 1)[-1] in targets:
            out_features, in_features = shape
            total += rank * (in_features + out_features)
    return total


def base_parameters(*, shapes: Mapping[str, Sequence[int]], tied: bool) -> int:
    """Parameters of the model as torch counts them: every stored tensor once, and the
    output head not again where it is tied to the embeddings (a file may store both)."""
    return sum(
        math.prod(shape)
        for tensor, shape in shapes.items()
        if not (tied and _module_name(tensor).rsplit(".", 1)[-1] in OUTPUT_HEADS)
    )


def parameter_table(*, model_dir: str | Path, ranks: Sequence[int], presets: Sequence[str]) -> dict[str, Any]:
    """parameter_counts.json's `run` and `metrics`: trainable parameters of LoRA at each rank and
    target preset, from the prepared model's tensor shapes (no training, no model built)."""
    folder = weights_dir(model_dir)
    config = read_json(folder / "config.json")
    shapes = weight_shapes(folder)
    if not shapes:  # no safetensors weights: build the model's shapes with transformers instead
        return parameter_table_peft(model_dir=model_dir, ranks=ranks, presets=presets)
    # Absent from config.json: not tied (a tied head is not stored then anyway, so nothing is lost).
    base = base_parameters(shapes=shapes, tied=bool(config.get("tie_word_embeddings", False)))
    rows = []
    for preset in presets:
        for rank in ranks:
            trainable = lora_parameters(shapes=shapes, rank=rank, preset=preset)
            rows.append(parameter_row(preset=preset, rank=rank, trainable=trainable, total=base + trainable))
    architecture = (config.get("architectures") or ["?"])[0]
    return parameter_result(
        model_dir=model_dir,
        architecture=architecture,
        ranks=ranks,
        presets=presets,
        rows=rows,
        counted_from="tensor shapes in the safetensors headers: r * (in + out) per targeted Linear layer",
    )


def parameter_row(*, preset: str, rank: int, trainable: int, total: int) -> dict[str, Any]:
    """One row of parameter_counts.json, however the counts were obtained."""
    return {
        "targets": preset,
        "rank": rank,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "trainable_percent": 100 * trainable / total,
        "adapter_megabytes_fp32": trainable * 4 / 1e6,
    }


def parameter_result(
    *,
    model_dir: str | Path,
    architecture: str,
    ranks: Sequence[int],
    presets: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    counted_from: str | None = None,
) -> dict[str, Any]:
    """parameter_counts.json's `run` and `metrics`; `counted_from` says how, where it is not PEFT."""
    run = {"model_dir": str(model_dir), "architecture": architecture, "ranks": list(ranks), "presets": list(presets)}
    if counted_from is not None:
        run["counted_from"] = counted_from
    return {"run": run, "metrics": {"rows": list(rows)}}


def parameter_table_peft(*, model_dir: str | Path, ranks: Sequence[int], presets: Sequence[str]) -> dict[str, Any]:
    """`param_counts.parameter_table` the slow way, for a folder without safetensors weights
    (and the reference its tests compare with): the model built on PyTorch's meta device
    (shapes only, no memory, no weights) and PEFT's own count."""
    # Imported here: counting from safetensors shapes, the usual path, needs no torch.
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from lora_study.model.adapters import count_parameters

    config = AutoConfig.from_pretrained(weights_dir(model_dir))
    rows = []
    for preset in presets:
        for rank in ranks:
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config)
                peft_model = get_peft_model(
                    model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=target_modules(preset))
                )
            trainable, total = count_parameters(peft_model)
            rows.append(parameter_row(preset=preset, rank=rank, trainable=trainable, total=total))
    architecture = (config.architectures or ["?"])[0]
    return parameter_result(model_dir=model_dir, architecture=architecture, ranks=ranks, presets=presets, rows=rows)
