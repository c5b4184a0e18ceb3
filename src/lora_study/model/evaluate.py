"""The evaluation stage shared by every variant: prompts -> predictions -> the task's scores.

`predict` writes predictions.jsonl (one row per eval example) and generation.json (how
they were made); `score` turns predictions into scores.json (`predictions_result`, torch-free,
is what the scoring job runs). Base model, quantised models and adapters all go through
these functions, so their numbers are comparable.
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from lora_study.core.conditions import free_memory_bytes
from lora_study.core.data import read_examples
from lora_study.core.io import read_jsonl, write_jsonl
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.model.generation import evaluation_options, generate
from lora_study.model.loading import LoadedModel, ModelLoader, base_loader, load_tokenizer
from lora_study.model.memory import current_rss_bytes
from lora_study.model.prompts import PromptBuilder
from lora_study.model.workers import generate_in_workers, worker_count
from lora_study.tasks import task_of
from lora_study.tasks.scores import predictions_result

log = logging.getLogger(__name__)


def predict(
    *,
    model_dir: str | Path,
    eval_path: str | Path,
    config: Mapping[str, Any],
    predictions_path: str | Path,
    info_path: str | Path,
    variant: str = "base",
    spec: Mapping[str, Any] | None = None,
    load: ModelLoader | None = None,
) -> None:
    """Generate a prediction for every eval example.

    `load` gives the model (quantised, with an adapter, ...); None loads the prepared base
    model as `config["model"]` asks. Tokenizer and prompts always come from `model_dir`.
    `spec`: the trained variant's (VariantSpec.to_dict()), None for the base model or a precision.
    """
    load = load or base_loader(model_dir=model_dir, model=config["model"])
    started = time.perf_counter()
    tokenizer = load_tokenizer(model_dir)
    loaded = load()
    model = loaded.model
    load_seconds = time.perf_counter() - started
    log.info("loaded %s on %s as %s in %.1f s", model_dir, loaded.device, loaded.dtype, load_seconds)

    task, task_settings = task_of(config)
    examples = read_examples(eval_path)
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=config["prompt"])
    prompts = [builder.build(example.input, fields=example.fields) for example in examples]
    options = evaluation_options(config["evaluation"])
    if loaded.batch_dependence:
        # Batched, a prediction would depend on its batch-mates, their padding and
        # evaluation.batch_size (a speed setting): one example per generate() call instead,
        # the whole prompt in one forward pass (the prefilled cache would split off its last
        # token, and such a scheme quantises each pass's activations together).
        log.info("one example per call: %s", loaded.batch_dependence)
        options["batch_size"] = 1
        if options["cache"] == "prefilled":
            options["cache"] = "dynamic"
    workers = worker_processes(load=load, loaded=loaded, examples=len(prompts))
    started = time.perf_counter()
    if workers > 1:
        log.info("one example per call in %d processes of one CPU thread", workers)
        generations = generate_in_workers(
            load=load,
            model=model,
            tokenizer=tokenizer,
            model_dir=model_dir,
            prompts=prompts,
            settings=config["generation"],
            options=options,
            workers=workers,
        )
    else:
        generations = generate(
            model=model, tokenizer=tokenizer, prompts=prompts, settings=config["generation"], **options
        )
    generate_seconds = time.perf_counter() - started
    started = time.perf_counter()
    extras = (
        task.extra_predictions(
            model=model,
            builder=builder,
            prompts=prompts,
            settings=task_settings,
            batch_size=options["batch_size"],
        )
        if task.extra_predictions
        else [{} for _ in examples]
    )
    extra_seconds = time.perf_counter() - started

    write_jsonl(
        predictions_path,
        (
            {
                "id": example.id,
                "prediction": generation.text,
                "reference": example.reference,
                "prompt_tokens": generation.prompt_tokens,
                "generated_tokens": generation.generated_tokens,
                "stopped": generation.stopped,
                "input_truncated": prompt.truncated,
                **task.prediction_fields(example),
                **extra,
            }
            for example, prompt, generation, extra in zip(examples, prompts, generations, extras, strict=True)
        ),
    )
    new_tokens = sum(g.generated_tokens for g in generations)
    write_result(
        info_path,
        run={
            "variant": variant,
            "spec": None if spec is None else dict(spec),
            "model_dir": str(model_dir),
            "eval_file": str(eval_path),
            "examples": len(examples),
            "config": {key: config[key] for key in ("model", "prompt", "generation", "evaluation")},
            "task": task_settings,
            # The prompts per call and the cache actually used, and why when they are not
            # evaluation.batch_size and evaluation.cache.
            "batch_size": options["batch_size"],
            "cache": options["cache"],
            "batch_dependence": loaded.batch_dependence,
            # Processes that generated the examples, one CPU thread each when more than one
            # (lora_study.model.workers); each example is still generated alone.
            "workers": workers,
        },
        metrics={
            "load_seconds": load_seconds,
            "generate_seconds": generate_seconds,
            # The task's own model work after generation (classification: scoring each label).
            "task_seconds": extra_seconds,
            "generated_tokens": new_tokens,
            "tokens_per_second": new_tokens / generate_seconds if generate_seconds else None,
            "truncated_inputs": sum(p.truncated for p in prompts),
            "stopped_naturally": sum(g.stopped for g in generations),
        },
        meta={**meta_info(device=loaded.device), "dtype": loaded.dtype, "model": dict(loaded.details)},
    )


def worker_processes(*, load: ModelLoader, loaded: LoadedModel, examples: int) -> int:
    """Processes for a one-example-per-call evaluation (example_workers.worker_count); 1 for
    a batched one, and for a loader that cannot be sent to another process."""
    if not loaded.batch_dependence:
        return 1
    workers = worker_count(
        device=loaded.device,
        examples=examples,
        threads=torch.get_num_threads(),
        process_bytes=current_rss_bytes() or 0,
        free_bytes=free_memory_bytes(),
    )
    if workers > 1:
        try:
            pickle.dumps(load)
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            log.info("one process: the model loader cannot be sent to another (%s)", error)
            return 1
    return workers


def score(
    *,
    predictions_path: str | Path,
    scores_path: str | Path,
    task: Mapping[str, Any] | None = None,
    variant: str = "base",
    spec: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The task's scores of a predictions file, per example and the mean over examples.
    `task`: the config's task block (None: summarisation); `spec` as in `predict`."""
    result = predictions_result(
        rows=read_jsonl(predictions_path),
        task=task,
        variant=variant,
        spec=spec,
        predictions_file=str(predictions_path),
    )
    result = {**result, "meta": meta_info(device="cpu")}
    write_result(scores_path, **result)
    return result
