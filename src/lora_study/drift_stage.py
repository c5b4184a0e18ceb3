"""One drift job: the base and one trained variant on the same prompts, layer by layer.

Writes drift.json (per-layer CKA, debiased headline and biased beside it, cosine of matched
examples, the self and shuffled-pairing baselines, perplexity of both models on held-out
text, the settings) and cka_matrix.npz (base layers x tuned layers, both estimators).
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lora_study.adapters import VariantSpec
from lora_study.data import read_examples
from lora_study.drift import compare_models, perplexity
from lora_study.finetune import variant_loader
from lora_study.io import atomic_write_bytes, read_jsonl, write_json
from lora_study.modeling import dtype_name, load_model, load_tokenizer, resolve_device, resolve_dtype
from lora_study.prompts import PromptBuilder
from lora_study.provenance import meta_info

log = logging.getLogger(__name__)


def measure_drift(
    *,
    spec: VariantSpec,
    model_dir: str | Path,
    weights: str | Path,
    eval_path: str | Path,
    heldout_path: str | Path,
    config: Mapping[str, Any],
    drift_path: str | Path,
    matrix_path: str | Path,
) -> dict[str, Any]:
    """Compare a fresh base with the variant saved at `weights`; `config` holds the
    `model`, `prompt` and `drift` blocks."""
    settings = config["drift"]
    device = resolve_device(config["model"]["device"])
    dtype = resolve_dtype(config["model"]["dtype"], device=device)
    tokenizer = load_tokenizer(model_dir)
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=config["prompt"])
    examples = read_examples(eval_path)
    wanted = settings["examples"] or len(examples)
    if wanted > len(examples):
        raise ValueError(f"drift.examples = {wanted} but {eval_path} holds only {len(examples)} examples")
    # The evaluation prompts: drift is measured where the model is used.
    prompts = [builder.build(example.input) for example in examples[:wanted]]

    started = time.perf_counter()
    base = load_model(model_dir=model_dir, device=device, dtype=dtype)
    tuned = variant_loader(spec=spec, model_dir=model_dir, weights=weights, model=config["model"])().model
    comparison = compare_models(
        base=base,
        tuned=tuned,
        prompts=prompts,
        pad_id=tokenizer.pad_token_id,
        batch_size=settings["batch_size"],
        device=device,
        pooling=settings["pooling"],
        token_level=settings["token_level"],
        shuffle_seed=settings["shuffle_seed"],
    )
    drift_seconds = time.perf_counter() - started
    texts = [row["text"] for row in read_jsonl(heldout_path)]
    forgetting = {
        name: perplexity(
            model=model,
            tokenizer=tokenizer,
            texts=texts,
            max_tokens=settings["forgetting"]["max_tokens"],
            batch_size=settings["batch_size"],
            device=device,
        )
        for name, model in (("base", base), ("tuned", tuned))
    }
    result = {
        "run": {"variant": spec.name, "spec": spec.to_dict(), "model_dir": str(model_dir), "weights": str(weights),
                "settings": dict(settings), "seconds": drift_seconds},
        "metrics": drift_metrics(comparison=comparison, forgetting=forgetting),
        "meta": {**meta_info(device=device), "dtype": dtype_name(dtype)},
    }
    log.info("%s: mean drift (1 - debiased CKA) %s over %d layers; perplexity base %.2f, tuned %.2f",
             spec.name, result["metrics"]["mean_drift"], result["metrics"]["layers"],
             forgetting["base"]["perplexity"], forgetting["tuned"]["perplexity"])
    matrices = result["metrics"]["matrix"]
    # None (a layer whose features do not vary: CKA undefined) becomes nan in the matrix file.
    _write_npz(matrix_path, {name: np.array(matrix, dtype=np.float64) for name, matrix in matrices.items()})
    write_json(drift_path, result)
    return result


def drift_metrics(*, comparison: Mapping[str, Any], forgetting: Mapping[str, Any]) -> dict[str, Any]:
    """drift.json's metrics from `drift.compare_models`' lists: one record per layer, the
    baselines, the matrices, and drift = 1 - debiased CKA (None where CKA is undefined)."""
    layers = comparison["layers"]
    per_layer = []
    for layer in range(layers):
        row = {
            "layer": layer,
            "cka_debiased": comparison["cka_debiased"][layer],
            "cka_biased": comparison["cka_biased"][layer],
            "cosine": comparison["cosine_mean"][layer],
        }
        for name in ("token_cka_debiased", "token_cka_biased"):
            if name in comparison:
                row[name] = comparison[name][layer]
        per_layer.append(row)
    drift = [None if row["cka_debiased"] is None else 1.0 - row["cka_debiased"] for row in per_layer]
    defined = [value for value in drift if value is not None]
    return {
        "examples": comparison["examples"],
        "layers": layers,
        "pooling": comparison["pooling"],
        **({"tokens": comparison["tokens"]} if "tokens" in comparison else {}),
        "per_layer": per_layer,
        # Study 4's drift of a variant: how far its representations moved, averaged over layers.
        "drift_per_layer": drift,
        "mean_drift": float(np.mean(defined)) if defined else None,
        "baselines": {"self": comparison["self"], "shuffled": comparison["shuffled"]},
        "matrix": {"debiased": comparison["matrix_debiased"], "biased": comparison["matrix_biased"]},
        "forgetting": dict(forgetting),
    }


def _write_npz(path: str | Path, arrays: Mapping[str, np.ndarray]) -> None:
    """The matrices as one .npz file, written atomically like every result file."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
