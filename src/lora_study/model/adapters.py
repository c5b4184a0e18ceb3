"""Adapters for the variants of the grid (lora_study.core.grid): LoRA, DoRA, rsLoRA, QLoRA at a
rank, built by PEFT so the artefacts load anywhere with `PeftModel.from_pretrained`; and
the parameter counts of Study 2.
"""

from __future__ import annotations

from typing import Any

from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import PreTrainedModel

# The grid's names, re-exported: callers that build adapters need both.
from lora_study.core.grid import VariantSpec, target_modules


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
