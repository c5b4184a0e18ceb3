"""Adapters for the variants of the grid (lora_study.grid): LoRA, DoRA, rsLoRA, QLoRA at a
rank, built by PEFT so the artefacts load anywhere with `PeftModel.from_pretrained`; and
the parameter counts of Study 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from lora_study.checksums import weights_dir

# The grid's names, re-exported: callers that build adapters need both.
from lora_study.grid import VariantSpec, target_modules
from lora_study.param_counts import parameter_result, parameter_row


def lora_config(spec: VariantSpec) -> LoraConfig:
    """PEFT's config for a LoRA-family variant (DoRA and rsLoRA are PEFT flags)."""
    if not spec.is_lora or spec.rank is None or spec.targets is None:
        raise ValueError(f"{spec.name} is not a LoRA variant")
    return LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=target_modules(spec.targets),
        bias="none",
        task_type="CAUSAL_LM",
        use_dora=spec.kind == "dora",
        use_rslora=spec.kind == "rslora",
    )


def attach_adapter(*, model: PreTrainedModel, spec: VariantSpec) -> PeftModel:
    """A fresh adapter on a model that must not carry one already: an adapter trained
    on top of another is the "adapter interference" mistake this makes impossible."""
    if isinstance(model, PeftModel) or getattr(model, "peft_config", None):
        raise ValueError("the base model already carries an adapter; load a fresh base for each variant")
    return get_peft_model(model, lora_config(spec))


def adapter_scaling(model: Any) -> float | None:
    """The factor PEFT multiplies every adapter's output by (its LoRA layers' `scaling`),
    read off the model so that train.json cannot disagree with what ran; None without one."""
    values = {
        layer.scaling[name] for layer in model.modules() if isinstance(layer, LoraLayer) for name in layer.scaling
    }
    if len(values) > 1:
        raise ValueError(f"the model's adapters scale differently: {sorted(values)}")
    return values.pop() if values else None


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters, adapters included in the total. PEFT's own count
    knows that a 4-bit bitsandbytes tensor packs two parameters per element."""
    if isinstance(model, PeftModel):
        return model.get_nb_trainable_parameters()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def parameter_table_peft(*, model_dir: str | Path, ranks: Sequence[int], presets: Sequence[str]) -> dict[str, Any]:
    """`param_counts.parameter_table` the slow way, for a folder without safetensors weights
    (and the reference its tests compare with): the model built on PyTorch's meta device
    (shapes only, no memory, no weights) and PEFT's own count."""
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
