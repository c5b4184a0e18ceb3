"""The experiment grid: which variants the config asks for, and their names.

The grid in the config expands here into named variant specs; the name says what the
variant is (`lora-r8-qv-n100-s1`, `fft-n100-s1`) and is the directory its results live
in. This module is the one home of that grammar: names, groups (a name without its seed),
the full fine-tuning partner of a LoRA group, and the wildcard patterns of the rules.
Consumers read the spec a result file records (`run.spec`) and ask this module for its
group; nothing else parses names.

Standard library only: the workflow reads this module every time it starts
(rules/common.smk), and Snakemake alone must be enough to parse the workflow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Target-module presets by name; module names of Llama-style models (SmolLM2, TinyLlama).
TARGET_PRESETS: dict[str, list[str] | str] = {
    "qv": ["q_proj", "v_proj"],
    "attn": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "all-linear": "all-linear",  # PEFT's own preset: every linear layer but the output head
}
LORA_KINDS = ("lora", "dora", "rslora", "qlora")
# LoRA kinds left out of multi-adapter serving (one base, adapters mixed per batch row), why.
MIXED_BATCH_EXCLUDED = {
    "dora": "PEFT cannot serve DoRA adapters in a mixed batch (it refuses adapter_names with DoRA layers)",
    "qlora": "trained on the 4-bit NF4 base; the shared base here is the full-precision model, so it would be "
    "another model than the one trained and evaluated",
}
BASE_VARIANT = "base"  # the untuned model: evaluated like a variant, never trained
# Names that appear in paths (model, dataset, variant): no slashes, no spaces.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+-]*"


def lora_variant_pattern(kinds: Iterable[str] = LORA_KINDS) -> str:
    """The wildcard pattern of LoRA-family names of these kinds, as `VariantSpec.name` writes them."""
    return "(?:" + "|".join(kinds) + r")-r\d+-[A-Za-z0-9_.+-]+-n\d+-s\d+"


LORA_VARIANT_PATTERN = lora_variant_pattern()
FFT_VARIANT_PATTERN = r"fft-n\d+-s\d+"
TRAINED_VARIANT_PATTERN = f"{LORA_VARIANT_PATTERN}|{FFT_VARIANT_PATTERN}"
RSLORA_ALPHA = 8.0  # the schema's default for training.lora.rslora_alpha (see config.yaml)


@dataclass(frozen=True)
class VariantSpec:
    """One trained variant of the grid."""

    kind: str  # lora | dora | rslora | qlora | fft
    train_size: int
    seed: int
    learning_rate: float
    rank: int | None = None
    alpha: float | None = None  # PEFT's lora_alpha; the scaling is alpha/r, or alpha/sqrt(r) for rslora
    dropout: float = 0.0
    targets: str | None = None  # a preset name from TARGET_PRESETS, or "+"-joined module names

    @property
    def name(self) -> str:
        if self.kind == "fft":
            return f"fft-n{self.train_size}-s{self.seed}"
        return f"{self.kind}-r{self.rank}-{self.targets}-n{self.train_size}-s{self.seed}"

    @property
    def group(self) -> str:
        """The name without its seed: variants of one group differ only by seed."""
        return self.name.removesuffix(f"-s{self.seed}")

    @property
    def fft_group(self) -> str | None:
        """The full fine-tuning group trained on the same data, for a LoRA-family variant."""
        return f"fft-n{self.train_size}" if self.is_lora else None

    @property
    def is_lora(self) -> bool:
        return self.kind in LORA_KINDS

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> VariantSpec:
        """Inverse of `to_dict` (the name is derived, so it is dropped)."""
        return cls(**{key: value for key, value in fields.items() if key != "name"})


SpecLike = VariantSpec | Mapping[str, Any] | None


def as_spec(spec: SpecLike) -> VariantSpec | None:
    """A spec from a result file's `run.spec` (a dict, or null for the base model)."""
    return VariantSpec.from_dict(spec) if isinstance(spec, Mapping) else spec


def group_of(spec: SpecLike) -> str:
    """The group of a variant by its spec; the base model (no spec) is its own group."""
    resolved = as_spec(spec)
    return BASE_VARIANT if resolved is None else resolved.group


def fft_group_of(spec: SpecLike) -> str | None:
    """The full fine-tuning group a LoRA-family variant is compared with; None otherwise."""
    resolved = as_spec(spec)
    return None if resolved is None else resolved.fft_group


def group_specs(specs: Iterable[SpecLike]) -> dict[str, VariantSpec | None]:
    """Each group's name and the spec of its first seed, in order (the base model: None)."""
    groups: dict[str, VariantSpec | None] = {}
    for spec in specs:
        groups.setdefault(group_of(spec), as_spec(spec))
    return groups


def target_modules(targets: str) -> list[str] | str:
    """Module names for a preset name or a "+"-joined list of module names."""
    if targets in TARGET_PRESETS:
        return TARGET_PRESETS[targets]
    return targets.split("+")


def targets_label(targets: str | list[str]) -> str:
    """The config's `targets` (a preset name or a list) as the label used in names."""
    return targets if isinstance(targets, str) else "+".join(targets)


def lora_alpha(*, lora: Mapping[str, Any], kind: str, rank: int) -> float:
    """PEFT's lora_alpha for a variant: the config's absolute `alpha` for every kind if set;
    else a fixed `rslora_alpha` for rslora, whose scaling alpha/sqrt(r) is meant to use one
    alpha at every rank (alpha_ratio x r would multiply its step size by sqrt(r)), and
    alpha_ratio x r for the others (scaling alpha/r = alpha_ratio at every rank)."""
    if lora["alpha"] is not None:
        return float(lora["alpha"])
    if kind == "rslora":
        return float(lora.get("rslora_alpha", RSLORA_ALPHA))
    return float(lora["alpha_ratio"] * rank)


def lora_scaling(*, kind: str, rank: int, alpha: float) -> float:
    """The factor PEFT multiplies the adapter's B A x by: alpha/sqrt(r) for rslora, else alpha/r."""
    return alpha / math.sqrt(rank) if kind == "rslora" else alpha / rank


def expand_grid(*, training: Mapping[str, Any], train_sizes: list[int]) -> dict[str, VariantSpec]:
    """Every trained variant the config asks for, by name, in a stable order."""
    lora, fft = training["lora"], training["fft"]
    specs: list[VariantSpec] = []
    for size in train_sizes:
        for seed in training["seeds"]:
            for kind in lora["variants"]:
                for targets in lora["targets"]:
                    for rank in lora["ranks"]:
                        alpha = lora_alpha(lora=lora, kind=kind, rank=rank)
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
