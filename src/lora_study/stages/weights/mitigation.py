"""Intruder-dimension mitigation of a trained LoRA adapter, as a curve over its strength.

PEFT's `reduce_intruder_dimension` (arXiv 2410.21228, Section 6) finds, per LoRA layer,
the top-k singular vectors of W + dW that are nearly orthogonal to every pre-trained one
and scales them down in the merged weight, then refits a rank-r adapter to the result. At
each strength the mitigated adapter goes through the project's own evaluation code
(`evaluate.predict`: the same prompts, decoding and loading as the main evaluation, a
4-bit base for QLoRA) for quality (the task's headline metric) and is scored for forgetting (mean token
cross-entropy on general text from outside the task's domain). Strength 0 is the adapter
as trained.

Strength s is the share of each intruder direction removed: PEFT's code keeps
`mitigation_lambda` of it (W_mitigated = W + dW + (lambda - 1) * intruders, so lambda = 1
changes nothing although its docstring reads the other way), hence lambda = 1 - s.

    mitigation.json = mitigate_intruders(spec=..., model_dir=..., weights=..., eval_path=...,
                                         general_path=..., config=..., out_path=...)
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from peft.tuners.lora.intruders import reduce_intruder_dimension  # not re-exported by peft

from lora_study.core.checksums import verify_trained
from lora_study.core.grid import VariantSpec
from lora_study.core.io import read_jsonl
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.model.evaluate import predict
from lora_study.model.loading import (
    LoadedModel,
    base_loader,
    load_model,
    load_tokenizer,
    resolve_device,
    variant_loader,
)
from lora_study.model.perplexity import perplexity
from lora_study.stages.weights.weight_drift import count_intruders, intruder_cosines, left_singular_vectors
from lora_study.tasks import task_named
from lora_study.tasks.scores import predictions_result

log = logging.getLogger(__name__)

# DoRA is refused: PEFT's mitigation adds the new adapter with a freshly initialised
# magnitude vector (the base weight's norms), so the trained magnitude would be lost, and
# its detection ignores the magnitude; PEFT itself says only plain LoRA is supported.
MITIGATION_KINDS = ("lora", "rslora", "qlora")


def curve_strengths(strengths: Sequence[float]) -> list[float]:
    """Strength 0 (the adapter as trained) and the configured strengths, ascending, once each."""
    return sorted({0.0, *(float(s) for s in strengths)})


def mitigated_adapters(
    *,
    spec: VariantSpec,
    model_dir: str | Path,
    weights: str | Path,
    settings: Mapping[str, Any],
    device: str,
    out_dir: Path,
) -> tuple[dict[float, dict[str, Any]], dict[str, int]]:
    """Save one mitigated adapter per nonzero strength under `out_dir`; return, per strength,
    its folder and the Frobenius norm of its update (summed over layers) beside the original's,
    and the intruder counts (the same at every strength: found on the original adapter).

    The float32 base is never 4-bit, even for QLoRA: PEFT's SVDs need real weights."""
    model = PeftModel.from_pretrained(load_model(model_dir=model_dir, device=device, dtype=torch.float32), weights)
    layers = [layer for layer in model.modules() if isinstance(layer, LoraLayer)]
    cosines = [
        intruder_cosines(
            base_vectors=left_singular_vectors(weight=layer.get_base_layer().weight)[0],
            tuned_weight=layer.get_base_layer().weight + layer.get_delta_weight("default"),
            top_k=settings["top_k"],
        )
        for layer in layers
    ]
    found = [count_intruders(cosines=c, epsilon=settings["threshold_epsilon"]) for c in cosines]
    intruders = {"modules": len(layers), "modules_with_intruders": sum(n > 0 for n in found), "total": sum(found)}

    def update_norm(adapter: str) -> float:
        return math.sqrt(sum(float(layer.get_delta_weight(adapter).double().pow(2).sum()) for layer in layers))

    adapters = {0.0: {"weights": Path(weights), "update_norm": update_norm("default")}}
    for index, strength in enumerate(s for s in curve_strengths(settings["strengths"]) if s > 0):
        name = f"mitigated-{index}"
        reduce_intruder_dimension(
            model,
            old_adapter_name="default",
            new_adapter_name=name,
            top_k=settings["top_k"],
            threshold_epsilon=settings["threshold_epsilon"],
            mitigation_lambda=1.0 - strength,
            logging_sink=log.debug,
        )
        model.save_pretrained(out_dir, selected_adapters=[name])  # PEFT saves a named adapter in out_dir/name
        adapters[strength] = {"weights": out_dir / name, "update_norm": update_norm(name)}
    return adapters, intruders


def evaluate_adapter(
    *,
    spec: VariantSpec,
    model_dir: str | Path,
    weights: str | Path | None,
    eval_path: str | Path,
    texts: Sequence[str],
    config: Mapping[str, Any],
    work_dir: Path,
) -> dict[str, Any]:
    """The task's quality on the evaluation set through `evaluate.predict` and forgetting on `texts`, for
    the adapter at `weights` (None: the base model, the reference for forgetting)."""
    loader = (
        base_loader(model_dir=model_dir, model=config["model"])
        if weights is None
        # Unchecked: the trained adapter was checked when the job started, the mitigated ones
        # are this job's own scratch files (no train.json records them).
        else variant_loader(spec=spec, model_dir=model_dir, weights=weights, model=config["model"], verify=False)
    )
    kept: list[LoadedModel] = []

    def load_and_keep() -> LoadedModel:
        kept.append(loader())  # the model predict used is scored for forgetting below
        return kept[-1]

    predictions_path, info_path = work_dir / "predictions.jsonl", work_dir / "generation.json"
    predict(
        model_dir=model_dir,
        eval_path=eval_path,
        config=config,
        predictions_path=predictions_path,
        info_path=info_path,
        variant=spec.name,
        spec=spec.to_dict(),
        load=load_and_keep,
    )
    rows = read_jsonl(predictions_path)
    scored = predictions_result(
        rows=rows, task=config.get("task"), variant=spec.name, spec=None, predictions_file=str(predictions_path)
    )
    task = task_named(scored["run"]["task"])
    loaded = kept[-1]
    forgetting = perplexity(
        model=loaded.model,
        tokenizer=load_tokenizer(model_dir),
        texts=texts,
        max_tokens=config["forgetting"]["max_tokens"],
        batch_size=config["forgetting"]["batch_size"],
        device=loaded.device,
    )
    return {
        # The task's headline metric (summarisation: ROUGE-L F), and every metric's mean beside it.
        "quality": {
            "metric": task.default_metric,
            "label": task.metric_labels[task.default_metric],
            "value": scored["metrics"]["mean_values"][task.default_metric],
            "values": scored["metrics"]["mean_values"],
        },
        "forgetting": forgetting,
        "predictions": [{"id": r["id"], "prediction": r["prediction"]} for r in rows],
    }


def mitigate_intruders(
    *,
    spec: VariantSpec,
    model_dir: str | Path,
    weights: str | Path,
    eval_path: str | Path,
    general_path: str | Path,
    config: Mapping[str, Any],
    out_path: str | Path,
) -> dict[str, Any]:
    """mitigation.json for one LoRA-family variant. `config` holds the `model`, `prompt`,
    `generation` and `evaluation` blocks, `mitigation` (drift.mitigation) and `forgetting`
    ({max_tokens, batch_size}: as the drift stage's forgetting measure)."""
    if spec.kind not in MITIGATION_KINDS:
        raise ValueError(
            f"{spec.name}: intruder mitigation supports {', '.join(MITIGATION_KINDS)}, not {spec.kind} "
            "(PEFT re-initialises a DoRA adapter's magnitude when it adds the mitigated adapter)"
        )
    verify_trained(weights)
    settings = config["mitigation"]
    device = resolve_device(config["model"]["device"])
    texts = [row["text"] for row in read_jsonl(general_path)]
    started = time.perf_counter()
    curve = []
    with tempfile.TemporaryDirectory(prefix="mitigation-") as scratch:
        adapters, intruders = mitigated_adapters(
            spec=spec,
            model_dir=model_dir,
            weights=weights,
            settings=settings,
            device=device,
            out_dir=Path(scratch) / "adapters",
        )
        log.info(
            "%s: %d intruders in %d of %d modules (k=%d, eps=%g)",
            spec.name,
            intruders["total"],
            intruders["modules_with_intruders"],
            intruders["modules"],
            settings["top_k"],
            settings["threshold_epsilon"],
        )
        base = evaluate_adapter(
            spec=spec,
            model_dir=model_dir,
            weights=None,
            eval_path=eval_path,
            texts=texts,
            config=config,
            work_dir=Path(scratch),
        )
        original_norm = adapters[0.0]["update_norm"]
        for strength, adapter in adapters.items():
            point = evaluate_adapter(
                spec=spec,
                model_dir=model_dir,
                weights=adapter["weights"],
                eval_path=eval_path,
                texts=texts,
                config=config,
                work_dir=Path(scratch),
            )
            curve.append(
                {
                    "strength": strength,
                    "mitigation_lambda": 1.0 - strength,
                    "update_norm": adapter["update_norm"],
                    "update_remaining": adapter["update_norm"] / original_norm if original_norm else None,
                    **point,
                }
            )
            log.info(
                "strength %.2f: %s %.4f, general-text NLL %.4f, update %.3g",
                strength,
                point["quality"]["label"],
                point["quality"]["value"],
                point["forgetting"]["mean_nll"],
                adapter["update_norm"],
            )
    result = {
        "run": {
            "variant": spec.name,
            "spec": spec.to_dict(),
            "model_dir": str(model_dir),
            "weights": str(weights),
            "eval_file": str(eval_path),
            "general_file": str(general_path),
            "settings": dict(settings),
            "config": {key: config[key] for key in ("model", "prompt", "generation", "evaluation", "forgetting")},
            "task": config.get("task"),
            "seconds": time.perf_counter() - started,
        },
        "metrics": {
            "intruders": intruders,
            "base": {"quality": base["quality"], "forgetting": base["forgetting"]},
            "curve": curve,
        },
        "meta": meta_info(device=device),
    }
    write_result(out_path, **result)
    return result
