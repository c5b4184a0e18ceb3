"""What a variant is: LoRA (and DoRA, rsLoRA, QLoRA) at a rank, or full fine-tuning.

The experiment grid in the config expands here into named variant specs; the name says
what the variant is (`lora-r8-qv-n100-s1`, `fft-n100-s1`) and is the directory its
results live in. PEFT builds the adapters, so the artefacts load anywhere with
`PeftModel.from_pretrained`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from lora_study.modeling import weights_dir

# Target-module presets by name; module names of Llama-style models (SmolLM2, TinyLlama).
TARGET_PRESETS: dict[str, list[str] | str] = {
    "qv": ["q_proj", "v_proj"],
    "attn": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all-linear": "all-linear",  # PEFT's own preset: every linear layer but the output head
}
LORA_KINDS = ("lora", "dora", "rslora", "qlora")


@dataclass(frozen=True)
class VariantSpec:
    """One trained variant of the grid."""

    kind: str  # lora | dora | rslora | qlora | fft
    train_size: int
    seed: int
    learning_rate: float
    rank: int | None = None
    alpha: float | None = None
    dropout: float = 0.0
    targets: str | None = None  # a preset name from TARGET_PRESETS, or "+"-joined module names

    @property
    def name(self) -> str:
        if self.kind == "fft":
            return f"fft-n{self.train_size}-s{self.seed}"
        return f"{self.kind}-r{self.rank}-{self.targets}-n{self.train_size}-s{self.seed}"

    @property
    def is_lora(self) -> bool:
        return self.kind in LORA_KINDS

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> VariantSpec:
        """Inverse of `to_dict` (the name is derived, so it is dropped)."""
        return cls(**{key: value for key, value in fields.items() if key != "name"})


def target_modules(targets: str) -> list[str] | str:
    """Module names for a preset name or a "+"-joined list of module names."""
    if targets in TARGET_PRESETS:
        return TARGET_PRESETS[targets]
    return targets.split("+")


def targets_label(targets: str | list[str]) -> str:
    """The config's `targets` (a preset name or a list) as the label used in names."""
    return targets if isinstance(targets, str) else "+".join(targets)


def expand_grid(*, training: Mapping[str, Any], train_sizes: list[int]) -> dict[str, VariantSpec]:
    """Every trained variant the config asks for, by name, in a stable order."""
    lora, fft = training["lora"], training["fft"]
    specs: list[VariantSpec] = []
    for size in train_sizes:
        for seed in training["seeds"]:
            for kind in lora["variants"]:
                for targets in lora["targets"]:
                    for rank in lora["ranks"]:
                        alpha = lora["alpha"] if lora["alpha"] is not None else lora["alpha_ratio"] * rank
                        specs.append(
                            VariantSpec(
                                kind=kind,
                                train_size=size,
                                seed=seed,
                                learning_rate=lora["learning_rate"],
                                rank=rank,
                                alpha=float(alpha),
                                dropout=lora["dropout"],
                                targets=targets_label(targets),
                            )
                        )
            if fft["enabled"]:
                specs.append(VariantSpec(kind="fft", train_size=size, seed=seed, learning_rate=fft["learning_rate"]))
    return {spec.name: spec for spec in specs}


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


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters, adapters included in the total. PEFT's own count
    knows that a 4-bit bitsandbytes tensor packs two parameters per element."""
    if isinstance(model, PeftModel):
        return model.get_nb_trainable_parameters()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def parameter_table(*, model_dir: str | Path, ranks: Sequence[int], presets: Sequence[str]) -> dict[str, Any]:
    """Trainable parameters of LoRA at each rank and target preset, without training:
    the model is built on PyTorch's meta device (shapes only, no memory, no weights)."""
    config = AutoConfig.from_pretrained(weights_dir(model_dir))
    rows = []
    for preset in presets:
        for rank in ranks:
            with torch.device("meta"):
                model = AutoModelForCausalLM.from_config(config)
                peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=target_modules(preset)))
            trainable, total = count_parameters(peft_model)
            rows.append(
                {
                    "targets": preset,
                    "rank": rank,
                    "trainable_parameters": trainable,
                    "total_parameters": total,
                    "trainable_percent": 100 * trainable / total,
                    "adapter_megabytes_fp32": trainable * 4 / 1e6,
                }
            )
    return {
        "run": {"model_dir": str(model_dir), "architecture": (config.architectures or ["?"])[0], "ranks": list(ranks), "presets": list(presets)},
        "rows": rows,
    }
