"""The drift jobs: the base model's features once, then each trained variant against them.

`measure_base_features` runs the base model on the drift prompts (texts outside every
training subset, built by the evaluation's prompt builder) and keeps each layer's pooled
features (features.npz) and its per-text cross-entropy on held-out in-domain text and on
general text from another domain (forgetting.json). Every variant's job then runs only
its tuned model: the base is the same for all of them, so it is computed once.

`measure_drift` writes drift.json (per-layer CKA, debiased headline and biased beside it,
centred and raw cosine of matched examples, the self and shuffled-pairing baselines,
both models' cross-entropy on both texts, the settings), cka_matrix.npz (base layers x
tuned layers, both estimators) and the tuned model's features.npz, from which the summary
job computes intervals over examples and seeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lora_study.core.grid import VariantSpec
from lora_study.core.io import read_jsonl
from lora_study.core.provenance import meta_info
from lora_study.core.results import read_result, write_result
from lora_study.model.loading import (
    dtype_name,
    load_model,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
    variant_loader,
)
from lora_study.model.perplexity import perplexity
from lora_study.model.prompts import Prompt, PromptBuilder
from lora_study.stages.drift.features import compare_features, pooled_features, scope_masks, token_level_cka
from lora_study.stats.drift import TEXT_SETS, read_features, write_features, write_npz

log = logging.getLogger(__name__)


def drift_prompts(
    *, config: Mapping[str, Any], tokenizer: Any, prompts_path: str | Path
) -> tuple[list[Prompt], list[list[bool]]]:
    """The drift prompts (the evaluation's prompt builder on each text) and, per prompt, the
    tokens to pool (`drift.tokens`)."""
    rows = read_jsonl(prompts_path)
    if len(rows) < 4:
        raise ValueError(f"{prompts_path}: {len(rows)} drift prompts; debiased CKA needs at least 4 (drift.examples)")
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=config["prompt"])
    prompts = [builder.build(row["text"], fields=row.get("fields")) for row in rows]
    return prompts, scope_masks(builder=builder, prompts=prompts, scope=config["drift"]["tokens"])


def cross_entropies(
    *, model: Any, tokenizer: Any, text_paths: Mapping[str, str | Path], config: Mapping[str, Any], device: str
) -> dict[str, Any]:
    """Per text set (`text_paths`: JSONL rows with a `text`): the model's per-text summed
    cross-entropy and token counts (model.perplexity)."""
    settings = config["drift"]
    return {
        name: perplexity(
            model=model,
            tokenizer=tokenizer,
            texts=[row["text"] for row in read_jsonl(text_paths[name])],
            max_tokens=settings["forgetting"]["max_tokens"],
            batch_size=settings["batch_size"],
            device=device,
        )
        for name in TEXT_SETS
    }


def measure_base_features(
    *,
    model_dir: str | Path,
    prompts_path: str | Path,
    text_paths: Mapping[str, str | Path],
    config: Mapping[str, Any],
    features_path: str | Path,
    forgetting_path: str | Path,
) -> dict[str, Any]:
    """The base model's pooled features on the drift prompts and its cross-entropy on the
    forgetting texts (`text_paths`: in_domain, general)."""
    device = resolve_device(config["model"]["device"])
    dtype = resolve_dtype(config["model"]["dtype"], device=device)
    tokenizer = load_tokenizer(model_dir)
    prompts, scopes = drift_prompts(config=config, tokenizer=tokenizer, prompts_path=prompts_path)
    started = time.perf_counter()
    model = load_model(model_dir=model_dir, device=device, dtype=dtype)
    features = _features(model=model, tokenizer=tokenizer, prompts=prompts, scopes=scopes, config=config, device=device)
    forgetting = cross_entropies(model=model, tokenizer=tokenizer, text_paths=text_paths, config=config, device=device)
    result = {
        "run": {
            "model_dir": str(model_dir),
            "prompts": len(prompts),
            "settings": dict(config["drift"]),
            "selected_tokens": sum(map(sum, scopes)),
            "prompt_tokens": sum(len(p.input_ids) for p in prompts),
            "seconds": time.perf_counter() - started,
        },
        "metrics": forgetting,
        "meta": {**meta_info(device=device), "dtype": dtype_name(dtype)},
    }
    write_features(features_path, features)
    write_result(forgetting_path, **result)
    log.info(
        "base: %d prompts, %d layers; cross-entropy in-domain %.4f, general %.4f nats/token",
        len(prompts),
        len(features),
        forgetting["in_domain"]["mean_nll"],
        forgetting["general"]["mean_nll"],
    )
    return result


def measure_drift(
    *,
    spec: VariantSpec,
    model_dir: str | Path,
    weights: str | Path,
    prompts_path: str | Path,
    text_paths: Mapping[str, str | Path],
    base_features_path: str | Path,
    base_forgetting_path: str | Path,
    config: Mapping[str, Any],
    drift_path: str | Path,
    matrix_path: str | Path,
    features_path: str | Path,
) -> dict[str, Any]:
    """Compare the variant saved at `weights` with the base features; `config` holds the
    `model`, `prompt` and `drift` blocks."""
    settings = config["drift"]
    device = resolve_device(config["model"]["device"])
    dtype = resolve_dtype(config["model"]["dtype"], device=device)
    tokenizer = load_tokenizer(model_dir)
    prompts, scopes = drift_prompts(config=config, tokenizer=tokenizer, prompts_path=prompts_path)
    base_features = read_features(base_features_path)
    if base_features[0].shape[0] != len(prompts):
        raise ValueError(
            f"{base_features_path} holds {base_features[0].shape[0]} prompts but {prompts_path} {len(prompts)}: rerun the base job"
        )

    started = time.perf_counter()
    tuned = variant_loader(spec=spec, model_dir=model_dir, weights=weights, model=config["model"])().model
    features = _features(model=tuned, tokenizer=tokenizer, prompts=prompts, scopes=scopes, config=config, device=device)
    comparison = compare_features(xs=base_features, ys=features, shuffle_seed=settings["shuffle_seed"])
    if settings["token_level"]:
        # Token rows cannot be stored for every prompt, so the base runs again beside the tuned model.
        base = load_model(model_dir=model_dir, device=device, dtype=dtype)
        comparison.update(
            token_level_cka(
                base=base,
                tuned=tuned,
                prompts=prompts,
                scopes=scopes,
                pad_id=tokenizer.pad_token_id,
                batch_size=settings["batch_size"],
                device=device,
            )
        )
    drift_seconds = time.perf_counter() - started
    forgetting = {
        "base": read_result(base_forgetting_path)["metrics"],
        "tuned": cross_entropies(model=tuned, tokenizer=tokenizer, text_paths=text_paths, config=config, device=device),
    }
    result = {
        "run": {
            "variant": spec.name,
            "spec": spec.to_dict(),
            "model_dir": str(model_dir),
            "weights": str(weights),
            "settings": dict(settings),
            "seconds": drift_seconds,
        },
        "metrics": drift_metrics(
            comparison=comparison,
            forgetting=forgetting,
            include_embeddings=settings["include_embeddings"],
            pooling=settings["pooling"],
            tokens=settings["tokens"],
        ),
        "meta": {**meta_info(device=device), "dtype": dtype_name(dtype)},
    }
    metrics = result["metrics"]
    log.info(
        "%s: mean drift (1 - debiased CKA) %s over %s; forgetting (nats/token) in-domain %+.4f, general %+.4f",
        spec.name,
        metrics["mean_drift"],
        metrics["mean_over"],
        metrics["forgetting"]["in_domain"]["change"],
        metrics["forgetting"]["general"]["change"],
    )
    # None (a layer whose features do not vary: CKA undefined) becomes nan in the matrix file.
    write_npz(matrix_path, {name: np.array(matrix, dtype=np.float64) for name, matrix in metrics["matrix"].items()})
    write_features(features_path, features)
    write_result(drift_path, **result)
    return result


def drift_metrics(
    *, comparison: Mapping[str, Any], forgetting: Mapping[str, Any], include_embeddings: bool, pooling: str, tokens: str
) -> dict[str, Any]:
    """drift.json's metrics from `drift.compare_features`' lists: one record per layer, the
    baselines, the matrices, drift = 1 - debiased CKA (None where CKA is undefined), and the
    change of cross-entropy (tuned minus base, nats per token) on each text set."""
    layers = comparison["layers"]
    per_layer = []
    for layer in range(layers):
        row = {
            "layer": layer,
            **{key: comparison[key][layer] for key in ("cka_debiased", "cka_biased", "cosine_centred", "cosine_raw")},
        }
        for name in ("token_cka_debiased", "token_cka_biased"):
            if name in comparison:
                row[name] = comparison[name][layer]
        per_layer.append(row)
    drift = [None if row["cka_debiased"] is None else 1.0 - row["cka_debiased"] for row in per_layer]
    first = 0 if include_embeddings else 1
    defined = [value for value in drift[first:] if value is not None]
    return {
        "examples": comparison["examples"],
        "layers": layers,
        "pooling": pooling,
        "tokens": tokens,
        **({"token_count": comparison["tokens"]} if "tokens" in comparison else {}),
        "per_layer": per_layer,
        # Study 4's drift of a variant: how far its representations moved, averaged over layers.
        "drift_per_layer": drift,
        "mean_drift": float(np.mean(defined)) if defined else None,
        # Layer 0 is the embedding lookup, which q/v adapters cannot change: counting it would
        # dilute LoRA's mean by a guaranteed zero (drift.include_embeddings).
        "mean_over": f"layers {first}-{layers - 1}",
        "baselines": {"self": comparison["self"], "shuffled": comparison["shuffled"]},
        "matrix": {"debiased": comparison["matrix_debiased"], "biased": comparison["matrix_biased"]},
        "forgetting": {
            name: {
                "base": _summary(forgetting["base"][name]),
                "tuned": _summary(forgetting["tuned"][name]),
                "change": forgetting["tuned"][name]["mean_nll"] - forgetting["base"][name]["mean_nll"],
                "per_text_nll": forgetting["tuned"][name]["per_text_nll"],
                "per_text_tokens": forgetting["tuned"][name]["per_text_tokens"],
            }
            for name in TEXT_SETS
        },
    }


def _features(
    *,
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    scopes: Sequence[Sequence[bool]],
    config: Mapping[str, Any],
    device: str,
) -> list[np.ndarray]:
    features = pooled_features(
        model=model,
        prompts=prompts,
        scopes=scopes,
        pad_id=tokenizer.pad_token_id,
        batch_size=config["drift"]["batch_size"],
        device=device,
        pooling=config["drift"]["pooling"],
    )
    # Rounded as stored, so a variant is compared with exactly what the base job wrote.
    return [f.astype(np.float32).astype(np.float64) for f in features]


def _summary(cross_entropy: Mapping[str, Any]) -> dict[str, Any]:
    return {key: cross_entropy[key] for key in ("texts", "tokens", "mean_nll", "perplexity")}
