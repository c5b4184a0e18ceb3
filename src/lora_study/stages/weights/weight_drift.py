"""Weight-space drift of a trained variant (Study 4): how each fine-tuned weight matrix
differs from the pre-trained one.

Per Linear module: the relative update norm ||dW||_F / ||W||_F, the singular values of dW
and its effective rank (singular values holding `energy` of its squared Frobenius norm),
and intruder dimensions (Shuttleworth et al. 2024, "LoRA vs Full Fine-tuning: An Illusion
of Equivalence", arXiv 2410.21228): among the top-k left singular vectors of the tuned
weight W' = W + dW, those whose largest absolute cosine with every pre-trained left
singular vector of W is below epsilon. A LoRA variant's W' is PEFT's own merge on a
float32 copy of the base (a QLoRA adapter too: never merged into 4-bit weights), so DoRA's
magnitude and rsLoRA's scaling are exactly PEFT's; a full fine-tuning run's W' is its
saved weight. Decompositions run in float64.

    weights.json = measure_weight_drift(spec=..., model_dir=..., weights=..., settings=..., out_path=...)
"""

from __future__ import annotations

import copy
import logging
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM

from lora_study.core.checksums import verify_trained
from lora_study.core.grid import VariantSpec
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.model.loading import load_model

log = logging.getLogger(__name__)

_LAYER = re.compile(r"\.layers\.(\d+)\.")
_PEFT_PREFIX = "base_model.model."


def effective_rank(*, singular_values: torch.Tensor, energy: float) -> int:
    """How many of the largest singular values hold `energy` (a share) of the sum of their
    squares; 0 for a zero matrix (an untrained adapter changes nothing)."""
    squares = singular_values.double().sort(descending=True).values ** 2
    total = float(squares.sum())
    if total == 0.0:
        return 0
    cumulative = torch.cumsum(squares, dim=0) / total
    # The first index whose cumulative share reaches `energy`, counted from 1.
    return int((cumulative < energy).sum()) + 1


def left_singular_vectors(*, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Left singular vectors (columns, largest singular value first) and singular values of
    `weight`, in float64, keeping only directions with a nonzero singular value.

    Computed as the eigendecomposition of the Gram matrix of the shorter side, which is the
    SVD (U, S^2) and 2-3x faster than `torch.linalg.svd` here (full fine-tuning has 210
    matrices); squaring costs precision only for singular values below ~1e-7 of the largest,
    far below anything the energy and cosine thresholds look at. A zero singular value's
    vector is an arbitrary basis of the null space, not a pre-trained direction, so it is
    dropped (tolerance as numpy's matrix_rank, on the squares); trained weights are full
    rank, where this changes nothing."""
    weight = weight.double()
    rows, columns = weight.shape
    wide = rows <= columns
    eigenvalues, vectors = torch.linalg.eigh(weight @ weight.T if wide else weight.T @ weight)
    eigenvalues, vectors = eigenvalues.flip(0), vectors.flip(1)  # eigh sorts ascending
    tolerance = eigenvalues[0].clamp(min=0) * max(rows, columns) * torch.finfo(torch.float64).eps
    keep = eigenvalues > tolerance
    singular_values = eigenvalues[keep].sqrt()
    if wide:
        return vectors[:, keep], singular_values
    # Tall: the Gram gave right singular vectors V; U = W V / S.
    return (weight @ vectors[:, keep]) / singular_values, singular_values


def singular_values(*, matrix: torch.Tensor) -> torch.Tensor:
    """All singular values of `matrix` in float64, largest first (zeros included), from the
    Gram matrix of the shorter side like `left_singular_vectors`."""
    matrix = matrix.double()
    gram = matrix @ matrix.T if matrix.shape[0] <= matrix.shape[1] else matrix.T @ matrix
    return torch.linalg.eigvalsh(gram).flip(0).clamp(min=0).sqrt()


def intruder_cosines(*, base_vectors: torch.Tensor, tuned_weight: torch.Tensor, top_k: int) -> list[float]:
    """For each of the tuned weight's top-k left singular vectors, its largest absolute
    cosine with any pre-trained left singular vector (columns of `base_vectors`)."""
    tuned_vectors, _ = left_singular_vectors(weight=tuned_weight)
    top = tuned_vectors[:, :top_k]
    if base_vectors.shape[1] == 0:  # a zero base weight has no pre-trained direction
        return [0.0] * top.shape[1]
    return (top.T @ base_vectors).abs().max(dim=1).values.tolist()


def count_intruders(*, cosines: Sequence[float], epsilon: float) -> int:
    return sum(cosine < epsilon for cosine in cosines)


def module_drift(
    *, name: str, base_weight: torch.Tensor, tuned_weight: torch.Tensor, settings: Mapping[str, Any]
) -> dict[str, Any]:
    """One module's record: update norm, spectrum and effective rank of dW, intruders of W'."""
    base = base_weight.detach().to("cpu", torch.float64)
    tuned = tuned_weight.detach().to("cpu", torch.float64)
    update = tuned - base
    update_norm = float(torch.linalg.matrix_norm(update))
    base_norm = float(torch.linalg.matrix_norm(base))
    spectrum = singular_values(matrix=update)
    base_vectors, _ = left_singular_vectors(weight=base)
    cosines = intruder_cosines(base_vectors=base_vectors, tuned_weight=tuned, top_k=settings["top_k"])
    layer = _LAYER.search(f".{name}.")
    return {
        "module": name,
        "layer": int(layer[1]) if layer else None,
        "kind": name.rsplit(".", 1)[-1],
        "shape": list(base.shape),
        "update_norm": update_norm,
        "base_norm": base_norm,
        "relative_update_norm": update_norm / base_norm if base_norm else None,
        "singular_values": spectrum[: settings["spectrum_values"]].tolist(),
        "effective_rank": effective_rank(singular_values=spectrum, energy=settings["energy"]),
        "base_rank": int(base_vectors.shape[1]),
        "max_cosine": cosines,
        "intruders": count_intruders(cosines=cosines, epsilon=settings["epsilon"]),
        "intruders_sweep": [count_intruders(cosines=cosines, epsilon=e) for e in settings["epsilon_sweep"]],
    }


def compare_weights(
    *, base: torch.nn.Module, tuned: torch.nn.Module, modules: Sequence[str], settings: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Records for the named Linear modules, present in both models under the same names."""
    base_modules, tuned_modules = dict(base.named_modules()), dict(tuned.named_modules())
    records = []
    for index, name in enumerate(modules, start=1):
        records.append(
            module_drift(
                name=name,
                base_weight=base_modules[name].weight,
                tuned_weight=tuned_modules[name].weight,
                settings=settings,
            )
        )
        if index % 20 == 0 or index == len(modules):
            log.info("weights: %d of %d modules", index, len(modules))
    return records


def changed_linear_modules(*, base: torch.nn.Module, tuned: torch.nn.Module) -> tuple[list[str], list[str]]:
    """Full fine-tuning: every Linear whose weight changed, and every other changed parameter.
    A Linear sharing its weight with the input embedding (a tied output head) counts as the
    embedding, which is a lookup table, not a projection with singular directions."""
    embedding = tuned.get_input_embeddings().weight
    base_parameters = dict(base.named_parameters(remove_duplicate=False))
    linear, seen = [], set()
    for name, module in tuned.named_modules():
        if isinstance(module, torch.nn.Linear) and module.weight is not embedding:
            seen.add(f"{name}.weight")
            if not torch.equal(module.weight, base_parameters[f"{name}.weight"]):
                linear.append(name)
    other = [
        name
        for name, parameter in tuned.named_parameters()
        if name not in seen and not torch.equal(parameter, base_parameters[name])
    ]
    return linear, other


def load_tuned(*, spec: VariantSpec, base: torch.nn.Module, weights: str | Path) -> tuple[torch.nn.Module, list[str]]:
    """The tuned model in float32 on the CPU and the modules to analyse: for LoRA-family
    variants PEFT's merge into a copy of `base` (the float32 base, left untouched; the job
    reads the prepared model once) and exactly the modules the adapter targets (untouched
    ones included: an untrained adapter's records are zeros)."""
    verify_trained(weights)
    if not spec.is_lora:
        return AutoModelForCausalLM.from_pretrained(weights, dtype=torch.float32).eval(), []
    peft_model = PeftModel.from_pretrained(copy.deepcopy(base), weights)
    targeted = [
        name.removeprefix(_PEFT_PREFIX) for name, module in peft_model.named_modules() if isinstance(module, LoraLayer)
    ]
    return peft_model.merge_and_unload().eval(), targeted


def summarise(*, records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The variant's numbers: means and medians over modules, intruder totals."""
    relative = [r["relative_update_norm"] for r in records if r["relative_update_norm"] is not None]
    ranks = [r["effective_rank"] for r in records]
    return {
        "modules": len(records),
        "mean_relative_update_norm": statistics.fmean(relative) if relative else None,
        "median_effective_rank": statistics.median(ranks) if ranks else None,
        "mean_effective_rank": statistics.fmean(ranks) if ranks else None,
        "max_effective_rank": max(ranks) if ranks else None,
        "intruders": sum(r["intruders"] for r in records),
        "modules_with_intruders": sum(r["intruders"] > 0 for r in records),
        "intruders_sweep": [
            sum(r["intruders_sweep"][i] for r in records) for i in range(len(settings["epsilon_sweep"]))
        ],
    }


def parameter_update(*, name: str, base: torch.nn.Module, tuned: torch.nn.Module) -> dict[str, Any]:
    """A changed parameter that is not analysed as a matrix (norms, embeddings): its relative update."""
    before = dict(base.named_parameters())[name].detach().double()
    after = dict(tuned.named_parameters())[name].detach().double()
    norm = float(torch.linalg.vector_norm(after - before))
    base_norm = float(torch.linalg.vector_norm(before))
    return {"parameter": name, "update_norm": norm, "relative_update_norm": norm / base_norm if base_norm else None}


def measure_weight_drift(
    *, spec: VariantSpec, model_dir: str | Path, weights: str | Path, settings: Mapping[str, Any], out_path: str | Path
) -> dict[str, Any]:
    """weights.json for one trained variant; `settings` is the config's `drift.weights` block."""
    started = time.perf_counter()
    base = load_model(model_dir=model_dir, device="cpu", dtype=torch.float32)
    tuned, modules = load_tuned(spec=spec, base=base, weights=weights)
    other: list[str] = []
    if not spec.is_lora:
        modules, other = changed_linear_modules(base=base, tuned=tuned)
    other_changed = [parameter_update(name=name, base=base, tuned=tuned) for name in other]
    load_seconds = time.perf_counter() - started
    records = compare_weights(base=base, tuned=tuned, modules=modules, settings=settings)
    result = {
        "run": {
            "variant": spec.name,
            "spec": spec.to_dict(),
            "model_dir": str(model_dir),
            "weights": str(weights),
            "settings": dict(settings),
            "load_seconds": load_seconds,
            "seconds": time.perf_counter() - started,
            "torch_threads": torch.get_num_threads(),
        },
        "metrics": {
            "summary": summarise(records=records, settings=settings),
            "modules": records,
            "other_changed": other_changed,
        },
        "meta": {**meta_info(device="cpu"), "dtype": "float64"},
    }
    summary = result["metrics"]["summary"]
    log.info(
        "%s: %d modules in %.1f s; mean relative update %s, median effective rank %s, %d intruders (k=%d, eps=%g)",
        spec.name,
        summary["modules"],
        result["run"]["seconds"],
        summary["mean_relative_update_norm"],
        summary["median_effective_rank"],
        summary["intruders"],
        settings["top_k"],
        settings["epsilon"],
    )
    write_result(out_path, **result)
    return result
