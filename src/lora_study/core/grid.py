"""The experiment grid: which variants the config asks for, and their names.

The grid in the config expands here into named variant specs; the name says what the
variant is (`lora-r8-qv-n100-lr2e-4-0a2037-s1`, `fft-n100-lr2e-5-96f9f6-s1`: the method, its
learning rate, a hash of every other weight-changing setting, the seed) and is the directory
its results live in. This module is the one home of that grammar: names, groups (a name
without its seed), methods (a name without rate, hash and seed: what a sweep chooses a rate
for), the full fine-tuning partner of a LoRA group, and the wildcard patterns of the rules.
Consumers read the spec a result file records (`run.spec`) and ask this module for its
group; nothing else parses names.

Standard library only: the workflow reads this module every time it starts
(rules/common.smk), and Snakemake alone must be enough to parse the workflow.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
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
    return "(?:" + "|".join(kinds) + r")-r\d+-[A-Za-z0-9_.+-]+-n\d+" + _RUN_SUFFIX


# What follows the short name in every trained variant's name: its learning rate, the hash of
# its other weight-changing settings, its seed (`-lr2e-4-3f9a1c-s1`).
_RUN_SUFFIX = r"-lr[0-9.e+-]+-[0-9a-f]{6}-s\d+"
LORA_VARIANT_PATTERN = lora_variant_pattern()
FFT_VARIANT_PATTERN = r"fft-n\d+" + _RUN_SUFFIX
TRAINED_VARIANT_PATTERN = f"{LORA_VARIANT_PATTERN}|{FFT_VARIANT_PATTERN}"
RSLORA_ALPHA = 8.0  # the schema's default for training.lora.rslora_alpha (see config.yaml)
SETTINGS_HASH_LENGTH = 6  # hex digits: 16.7 million values, ample for the settings one study tries


def rate_label(learning_rate: float) -> str:
    """A learning rate as names write it: 2e-4, 1.5e-5 (three significant digits at most)."""
    mantissa, exponent = f"{learning_rate:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _plain(value: Any) -> Any:
    """JSON-ready settings with whole-number floats as ints: 2.0 and 2 are the same setting."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A short, stable hash of settings (key order and 2.0-vs-2 do not matter)."""
    text = json.dumps(_plain(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:SETTINGS_HASH_LENGTH]


@dataclass(frozen=True)
class VariantSpec:
    """One trained variant of the grid: every setting that changes its weights.

    Its name is the short name (`lora-r8-qv-n100`, `fft-n100`: the method), the learning rate,
    a hash of every other weight-changing setting, and the seed: `lora-r8-qv-n100-lr2e-4-3f9a1c-s1`.
    A changed setting therefore makes a new name, and so new result folders beside the old
    ones, never over them. The spec itself is recorded in every result file (`run.spec`).
    """

    kind: str  # lora | dora | rslora | qlora | fft
    train_size: int
    seed: int
    learning_rate: float
    rank: int | None = None
    alpha: float | None = None  # PEFT's lora_alpha; the scaling is alpha/r, or alpha/sqrt(r) for rslora
    dropout: float = 0.0
    targets: str | None = None  # a preset name from TARGET_PRESETS, or "+"-joined module names
    # The training settings every variant shares (epochs, batch, accumulation, schedule, warm-up,
    # weight decay, clipping, megabatch, reference length): config.yaml's `training` block less
    # the grid lists. None in result files written before they were part of the spec.
    training: Mapping[str, Any] | None = None

    @property
    def method(self) -> str:
        """The short name: what the variant is, without its learning rate, settings and seed.
        A learning-rate sweep chooses one rate per method."""
        if self.kind == "fft":
            return f"fft-n{self.train_size}"
        return f"{self.kind}-r{self.rank}-{self.targets}-n{self.train_size}"

    @property
    def settings_hash(self) -> str:
        """The hash of the weight-changing settings the name does not spell out."""
        return settings_hash({"alpha": self.alpha, "dropout": self.dropout, "training": self.training})

    @property
    def name(self) -> str:
        return f"{self.method}-lr{rate_label(self.learning_rate)}-{self.settings_hash}-s{self.seed}"

    @property
    def group(self) -> str:
        """What results are grouped by: variants of one group differ only by seed. Within one
        study this is the method: a sweep leaves one rate per method for the test-set stages,
        and every other setting has one value per method, so the short name is unambiguous
        there (compare.compare_variants checks it); across studies, each variant's recorded
        spec tells them apart."""
        return self.method

    @property
    def shared_training_key(self) -> str:
        """What a fair LoRA-against-full-fine-tuning comparison holds equal: the training data
        and the shared training settings (the learning rate is each method's own)."""
        return f"n{self.train_size}-{settings_hash({'training': self.training})}"

    @property
    def is_lora(self) -> bool:
        return self.kind in LORA_KINDS

    def to_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        fields["training"] = None if self.training is None else _plain(dict(self.training))
        return {"name": self.name, "method": self.method, **fields}

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> VariantSpec:
        """Inverse of `to_dict` (the name and method are derived, so they are dropped)."""
        return cls(**{key: value for key, value in fields.items() if key not in ("name", "method")})


SpecLike = VariantSpec | Mapping[str, Any] | None


def as_spec(spec: SpecLike) -> VariantSpec | None:
    """A spec from a result file's `run.spec` (a dict, or null for the base model)."""
    return VariantSpec.from_dict(spec) if isinstance(spec, Mapping) else spec


def group_of(spec: SpecLike) -> str:
    """The group of a variant by its spec; the base model (no spec) is its own group."""
    resolved = as_spec(spec)
    return BASE_VARIANT if resolved is None else resolved.group


def fft_partner(spec: SpecLike, groups: Mapping[str, SpecLike]) -> str | None:
    """The full fine-tuning group a LoRA-family variant is compared with: the one among
    `groups` (group name -> spec) trained on the same data with the same shared training
    settings; None for other variants or where there is none."""
    resolved = as_spec(spec)
    if resolved is None or not resolved.is_lora:
        return None
    for group, other in groups.items():
        candidate = as_spec(other)
        if (
            candidate is not None
            and candidate.kind == "fft"
            and candidate.shared_training_key == resolved.shared_training_key
        ):
            return group
    return None


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


def candidate_rates(setting: float | Sequence[float] | Mapping[str, Any]) -> list[float]:
    """The learning rates a method is trained at: one rate, a list of rates, or a log-spaced
    range {low, high, count} (ends included), each rounded to three significant digits so the
    names stay readable; sorted, duplicates dropped."""
    if isinstance(setting, Mapping):
        low, high, count = float(setting["low"]), float(setting["high"]), int(setting["count"])
        if count == 1:
            rates = [low]
        else:
            step = (math.log(high) - math.log(low)) / (count - 1)
            rates = [math.exp(math.log(low) + k * step) for k in range(count)]
    elif isinstance(setting, (int, float)):
        rates = [float(setting)]
    else:
        rates = [float(rate) for rate in setting]
    return sorted({float(f"{rate:.3g}") for rate in rates})


def shared_training(training: Mapping[str, Any]) -> dict[str, Any]:
    """The training settings every variant shares: the `training` block less the grid lists
    (adding a rank, a seed or a rate must not retrain the others)."""
    return {key: value for key, value in training.items() if key not in ("lora", "fft", "seeds")}


def expand_grid(*, training: Mapping[str, Any], train_sizes: list[int]) -> dict[str, VariantSpec]:
    """Every trained variant the config asks for, every candidate learning rate included, by
    name, in a stable order."""
    lora, fft = training["lora"], training["fft"]
    shared = shared_training(training)
    specs: list[VariantSpec] = []
    for size in train_sizes:
        for seed in training["seeds"]:
            for kind in lora["variants"]:
                for targets in lora["targets"]:
                    for rank in lora["ranks"]:
                        alpha = lora_alpha(lora=lora, kind=kind, rank=rank)
                        for rate in candidate_rates(lora["learning_rate"]):
                            specs.append(
                                VariantSpec(
                                    kind=kind,
                                    train_size=size,
                                    seed=seed,
                                    learning_rate=rate,
                                    rank=rank,
                                    alpha=float(alpha),
                                    dropout=lora["dropout"],
                                    targets=targets_label(targets),
                                    training=shared,
                                )
                            )
            if fft["enabled"]:
                for rate in candidate_rates(fft["learning_rate"]):
                    specs.append(
                        VariantSpec(kind="fft", train_size=size, seed=seed, learning_rate=rate, training=shared)
                    )
    return {spec.name: spec for spec in specs}


def methods(specs: Iterable[VariantSpec]) -> dict[str, dict[float, list[VariantSpec]]]:
    """Variants by method (short name), then by learning rate, in the given order: a method
    with more than one rate is a sweep, whose rate is chosen on the validation split."""
    by_method: dict[str, dict[float, list[VariantSpec]]] = {}
    for spec in specs:
        by_method.setdefault(spec.method, {}).setdefault(spec.learning_rate, []).append(spec)
    return by_method


def swept_methods(specs: Iterable[VariantSpec]) -> dict[str, dict[float, list[VariantSpec]]]:
    """The methods trained at more than one learning rate."""
    return {method: rates for method, rates in methods(specs).items() if len(rates) > 1}


def studied_variants(trained: Mapping[str, VariantSpec], *, chosen: Iterable[str]) -> dict[str, VariantSpec]:
    """The variants the test-set stages use: every variant of a method trained at one rate, and
    of a swept method only the `chosen` ones (its selection's `chosen.variants`)."""
    swept, kept = swept_methods(trained.values()), set(chosen)
    return {name: spec for name, spec in trained.items() if spec.method not in swept or name in kept}
