"""Study 1, Part 1: the base model at several precisions, timed and scored.

A precision names how the prepared model is loaded:

- `full`: the config's `model.dtype` (auto = float32 on CPU, bfloat16 or float16 on
  GPU), the same model the base evaluation uses; the result files record which dtype ran.
  `fp32`, `fp16`, `bf16` ask for one dtype explicitly (fp16/bf16 are GPU settings:
  on a CPU without bf16/fp16 units they are emulated and slow).
- `int8`: bitsandbytes LLM.int8 (`load_in_8bit`): int8 weights with per-row scales,
  activation columns above the outlier threshold multiplied in 16 bit.
- `int4`: bitsandbytes 4-bit (NF4 by default): weights in 4-bit blocks of 64 with a
  scale each, de-quantised to `compute_dtype` for every matrix product.
- `int8-dynamic`: torch's dynamic int8 quantisation of the Linear layers (int8 weights
  with a scale per output channel, activations quantised on the fly per call, fbgemm int8
  kernels). CPU only: on a CPU it is the int8 that is actually faster than float32. It has
  no outlier handling (LLM.int8's reason to exist): on SmolLM2 it costs quality, which the
  ROUGE columns show beside the speed. Under `model.device: auto` on a GPU machine it runs
  on the CPU while the others run on the GPU; its files record the device and say so.

The quantised precisions quantise the Linear layers of the transformer blocks and keep
the embeddings, norms and output head (tied to the embedding here) at the full dtype,
as bitsandbytes does through transformers; `int8-dynamic` follows the same rule.

`benchmark_latency` writes latency.json; `predict_at_precision` runs the one evaluation
code (`evaluate.predict`) on the model loaded at a precision.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

from lora_study.core.data import read_examples
from lora_study.core.provenance import cpu_features, meta_info
from lora_study.core.results import write_result
from lora_study.model.evaluate import predict
from lora_study.model.loading import (
    LoadedModel,
    ModelLoader,
    dtype_name,
    load_model,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
    weights_dir,
)
from lora_study.model.memory import cuda_memory, current_rss_bytes, peak_rss_bytes, reset_peak_rss, weight_bytes
from lora_study.model.prompts import PromptBuilder
from lora_study.model.timing import latency_metrics, measure

log = logging.getLogger(__name__)

FULL_PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
PRECISIONS = ("full", *FULL_PRECISIONS, "int8", "int4", "int8-dynamic")
CPU_ONLY = ("int8-dynamic",)
# Modules kept at the full dtype by every quantised precision (the tied output head).
KEEP_FULL = ("lm_head",)
# bitsandbytes operations whose kernel decides its quantised arithmetic (each has a plain-torch fallback).
BITSANDBYTES_OPS = ("int8_linear_matmul", "int8_vectorwise_quant", "int8_mm_dequant", "gemv_4bit", "dequantize_4bit")


class QuantisationError(RuntimeError):
    """A precision cannot be loaded as asked (for example int8-dynamic on a GPU)."""


def precision_device(*, precision: str, requested: str) -> str:
    """The device `precision` runs on, given the config's `model.device`.

    A CPU-only precision runs on the CPU under `auto` even where a GPU is visible: `auto`
    asks for a device each precision can use, and failing the job would stop the report.
    An explicit `cuda` asks for every timing on the GPU, so it stays an error (the config
    check refuses it before any job runs)."""
    if precision not in CPU_ONLY:
        return resolve_device(requested)
    if requested == "cuda":
        raise QuantisationError(f"quantisation.precisions: {precision} runs on the CPU only, but model.device is cuda")
    return "cpu"


def device_note(*, precision: str, requested: str) -> str | None:
    """The sentence a result file carries when `precision` runs on another device than the
    model's, so no one compares its timing to the others' unknowingly; None when it does not."""
    device, model_device = precision_device(precision=precision, requested=requested), resolve_device(requested)
    if device == model_device:
        return None
    return f"{precision} is CPU-only: measured on the CPU while other precisions ran on {model_device}"


def load_at_precision(
    *, model_dir: str | Path, precision: str, model: Mapping[str, Any], options: Mapping[str, Any]
) -> LoadedModel:
    """The prepared model at `precision`, in eval mode, with what ran recorded in `details`.

    `model` is the config's model block (device, dtype); `options` is
    `config.precision_options(precision, ...)`."""
    loaded = _load(model_dir=model_dir, precision=precision, model=model, options=options)
    # What its numbers depend on beyond code and config: the same int8 model scored differently
    # on CPUs with other instruction sets, where torch and bitsandbytes pick other kernels.
    kernel = kernel_record(precision=precision, device=loaded.device)
    return dataclasses.replace(loaded, details={**loaded.details, "kernel": kernel})


def kernel_record(*, precision: str, device: str) -> dict[str, Any]:
    """The machine and kernels a precision's arithmetic ran on: the CPU (model, family, ISA
    extensions), torch's CPU capability (the instruction set its kernels dispatch to), its
    quantized engine (torch's dynamic int8), its threads, the GPU where there is one, and for
    bitsandbytes which of its operations have a kernel of their own on this device (the others
    fall back to plain torch) and which native library it loaded."""
    record: dict[str, Any] = {
        "cpu": cpu_features(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
    }
    if precision == "int8-dynamic":
        record["torch_quantized_engine"] = torch.backends.quantized.engine
    if device.startswith("cuda"):
        record["gpu"] = {
            "name": torch.cuda.get_device_name(torch.device(device)),
            "capability": ".".join(map(str, torch.cuda.get_device_capability(torch.device(device)))),
            "cuda": torch.version.cuda,
        }
    if precision in ("int8", "int4"):
        record["bitsandbytes"] = _bitsandbytes_kernels(device=device)
    return record


def _bitsandbytes_kernels(*, device: str) -> dict[str, Any]:
    from bitsandbytes import cextension

    key = "CUDA" if device.startswith("cuda") else "CPU"
    own = [
        op
        for op in BITSANDBYTES_OPS
        if torch._C._dispatch_has_kernel_for_dispatch_key(f"bitsandbytes::{op}", key)  # noqa: SLF001
    ]
    library = getattr(getattr(cextension, "lib", None), "_lib", None)
    record: dict[str, Any] = {
        "device_kernels": own,
        "native_library": Path(library._name).name if library is not None else None,  # noqa: SLF001
    }
    if key == "CPU":
        from bitsandbytes.backends.cpu import ops

        # Only on AVX512-BF16 CPUs: its 4-bit matmul from the `kernels` package, when that loaded.
        record["cpu_gemm_4bit_kernel"] = getattr(ops, "gemm_4bit_forward_kernel", None) is not None
    return record


def _load(
    *, model_dir: str | Path, precision: str, model: Mapping[str, Any], options: Mapping[str, Any]
) -> LoadedModel:
    device = precision_device(precision=precision, requested=model["device"])
    if precision == "int8-dynamic":  # float32 on the CPU, whatever model.dtype asks of the GPU
        note = device_note(precision=precision, requested=model["device"])
        if note:
            log.warning("%s", note)
        return _load_dynamic_int8(model_dir=model_dir, note=note)
    full_dtype = resolve_dtype(model["dtype"], device=device)
    if precision in ("full", *FULL_PRECISIONS):
        dtype = full_dtype if precision == "full" else getattr(torch, FULL_PRECISIONS[precision])
        if device == "cpu" and dtype != torch.float32:
            log.warning("%s on a CPU: most CPUs emulate %s, expect it to be slow", precision, dtype_name(dtype))
        loaded = load_model(model_dir=model_dir, device=device, dtype=dtype)
        details = {
            "precision": precision,
            "weights": dtype_name(dtype),
            "compute_dtype": dtype_name(dtype),
            "backend": f"torch {torch.__version__}",
        }
        return LoadedModel(model=loaded, device=device, dtype=dtype_name(dtype), details=details)
    if precision in ("int8", "int4"):
        return _load_bitsandbytes(
            model_dir=model_dir, precision=precision, device=device, dtype=full_dtype, options=options
        )
    raise QuantisationError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")


def precision_loader(
    *, model_dir: str | Path, precision: str, model: Mapping[str, Any], options: Mapping[str, Any]
) -> ModelLoader:
    """`load_at_precision` as a loader for `evaluate.predict`; it pickles, so example workers
    (lora_study.model.workers) can load the same model."""
    return functools.partial(
        load_at_precision, model_dir=str(model_dir), precision=precision, model=dict(model), options=dict(options)
    )


def _load_bitsandbytes(
    *, model_dir: str | Path, precision: str, device: str, dtype: torch.dtype, options: Mapping[str, Any]
) -> LoadedModel:
    import bitsandbytes as bnb

    if precision == "int8":
        config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(KEEP_FULL))
        weights = "int8"
        compute = "int8 (outlier columns in float16)"
        layer_type: type[nn.Module] = bnb.nn.Linear8bitLt
    else:
        int4 = options["int4"]
        compute_dtype = (
            dtype
            if int4["compute_dtype"] == "auto"
            else resolve_dtype(int4["compute_dtype"], device=device, key="quantisation.int4.compute_dtype")
        )
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=int4["quant_type"],
            bnb_4bit_compute_dtype=compute_dtype,
            bnb_4bit_use_double_quant=int4["double_quant"],
            llm_int8_skip_modules=list(KEEP_FULL),
        )
        weights = int4["quant_type"] + (" (double-quantised scales)" if int4["double_quant"] else "")
        compute = dtype_name(compute_dtype)
        layer_type = bnb.nn.Linear4bit
    _quiet_bitsandbytes()
    loaded = AutoModelForCausalLM.from_pretrained(
        weights_dir(model_dir), quantization_config=config, dtype=dtype, device_map={"": device}
    ).eval()
    layers = _count_layers(loaded, layer_type)
    if layers == 0:
        raise QuantisationError(f"{precision}: bitsandbytes replaced no Linear layer of {model_dir}")
    details = {
        "precision": precision,
        "weights": weights,
        "compute_dtype": compute,
        "dtype": dtype_name(dtype),  # embeddings, norms and the output head
        "backend": f"bitsandbytes {bnb.__version__}",
        "quantised_layers": layers,
        "layer_type": f"{layer_type.__module__}.{layer_type.__qualname__}",
        "kept_full": list(KEEP_FULL),
        "quantization_config": _json_safe(config.to_dict()),
    }
    if precision == "int8" and dtype != torch.float16:
        details["note"] = f"bitsandbytes casts {dtype_name(dtype)} activations to float16 for the int8 matmul"
    if precision == "int4" and device == "cpu" and bnb.functional.has_avx512bf16():
        # On CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights on the first
        # inference call and runs its own bfloat16 kernel, whatever the compute dtype says.
        details["cpu_kernel"] = "avx512-bf16 4-bit kernel"
    return LoadedModel(
        model=loaded,
        device=device,
        dtype=weights.split(" ")[0],
        details=details,
        batch_dependence=(
            "LLM.int8 treats an input column as an outlier (float16) when any row of the batch exceeds the "
            "threshold there"
            if precision == "int8"
            else None
        ),
    )


def _load_dynamic_int8(*, model_dir: str | Path, note: str | None) -> LoadedModel:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    loaded = load_model(model_dir=model_dir, device="cpu", dtype=torch.float32)
    targets = {
        name: per_channel_dynamic_qconfig  # a scale per output row, as bitsandbytes int8
        for name, module in loaded.named_modules()
        if isinstance(module, nn.Linear) and name.split(".")[-1] not in KEEP_FULL
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # eager-mode quantisation moves to torchao
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        quantize_dynamic(loaded, qconfig_spec=targets, dtype=torch.qint8, inplace=True)
    layers = _count_layers(loaded, DynamicLinear)
    if layers == 0:
        raise QuantisationError(f"int8-dynamic: no Linear layer of {model_dir} was quantised")
    details = {
        "precision": "int8-dynamic",
        "weights": "qint8 (per output channel)",
        "compute_dtype": "int8 (activations quantised per call, no outlier handling)",
        "dtype": "float32",
        "backend": f"torch {torch.__version__} dynamic quantisation ({torch.backends.quantized.engine})",
        "quantised_layers": layers,
        "layer_type": f"{DynamicLinear.__module__}.{DynamicLinear.__qualname__}",
        "kept_full": list(KEEP_FULL),
        **({"device_note": note} if note else {}),
    }
    return LoadedModel(
        model=loaded.eval(),
        device="cpu",
        dtype="qint8",
        details=details,
        batch_dependence="one activation scale per call, over every row of the batch and its padding",
    )


def _count_layers(model: nn.Module, layer_type: type[nn.Module]) -> int:
    return sum(isinstance(module, layer_type) for module in model.modules())


def _quiet_bitsandbytes() -> None:
    """bitsandbytes logs a warning on every int8 matmul whose inputs are not float16 (all of
    them on a CPU): thousands of lines per example, and time spent logging inside the timed
    runs. The fact goes once into the result file (`note`) instead."""
    logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def benchmark_latency(
    *,
    model_dir: str | Path,
    eval_path: str | Path,
    config: Mapping[str, Any],
    precision: str,
    options: Mapping[str, Any],
    latency_path: str | Path,
) -> dict[str, Any]:
    """Load the model at `precision` (timed), then time forced-length generation on the
    first `latency.examples` eval prompts; write latency.json and return it.

    `config` holds the `model`, `prompt` and `latency` blocks."""
    settings = config["latency"]
    device = precision_device(precision=precision, requested=config["model"]["device"])
    tokenizer = load_tokenizer(model_dir)
    examples = read_examples(eval_path)[: settings["examples"]]
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=config["prompt"])
    prompts = [(example.id, builder.build(example.input, fields=example.fields)) for example in examples]

    gc.collect()
    rss_before = current_rss_bytes()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    loaded = load_at_precision(model_dir=model_dir, precision=precision, model=config["model"], options=options)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    load_seconds = time.perf_counter() - started
    gc.collect()
    rss_after_load = current_rss_bytes()
    peak_rss_load = peak_rss_bytes()
    cuda_after_load = cuda_memory(device)
    held = weight_bytes(loaded.model)
    log.info("loaded %s at %s in %.1f s: %.1f MB of weights", model_dir, precision, load_seconds, held / 1e6)

    peak_reset = reset_peak_rss()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    warm, timed = measure(
        model=loaded.model,
        tokenizer=tokenizer,
        prompts=prompts,
        batch_size=settings["batch_size"],
        new_tokens=settings["new_tokens"],
        warmup=settings["warmup"],
        repeats=settings["repeats"],
        device=device,
    )
    peak_rss_run = peak_rss_bytes()
    cuda_run = cuda_memory(device)
    metrics = {
        "load_seconds": load_seconds,
        "weight_bytes": held,
        "rss_before_load_bytes": rss_before,
        "rss_after_load_bytes": rss_after_load,
        # The process's peak resident memory: while loading (quantising on load included),
        # and while generating (after a reset of the mark, where the OS allows one).
        "peak_rss_bytes": max(peak_rss_load, peak_rss_run),
        "peak_rss_load_bytes": peak_rss_load,
        "peak_rss_generate_bytes": peak_rss_run if peak_reset else None,
        "cuda_weight_bytes": cuda_after_load["allocated_bytes"] if cuda_after_load else None,
        "peak_cuda_bytes": (
            max(cuda_after_load["peak_allocated_bytes"], cuda_run["peak_allocated_bytes"])
            if cuda_after_load and cuda_run
            else None
        ),
        "batch_size": settings["batch_size"],
        "new_tokens": settings["new_tokens"],
        "warmup_runs": len(warm),
        "timed_runs": len(timed),
        **latency_metrics(timed),
    }
    result = {
        "run": {
            "precision": precision,
            "model_dir": str(model_dir),
            "eval_file": str(eval_path),
            "example_ids": [example_id for example_id, _ in prompts],
            "decoding": "greedy, exactly new_tokens tokens per prompt (EOS suppressed)",
            "config": {key: config[key] for key in ("model", "prompt", "latency")},
            "options": dict(options),
        },
        "metrics": {
            **metrics,
            "runs": [run.to_dict() for run in timed],
            "warmup": [run.to_dict() for run in warm],
        },
        "meta": {
            **meta_info(device=loaded.device),
            "dtype": loaded.dtype,
            "model": dict(loaded.details),
            "torch_threads": torch.get_num_threads(),
        },
    }
    write_result(latency_path, **result)
    summary = metrics["latency_seconds"]
    log.info(
        "%s: p50 %.3f s, p95 %.3f s per example, TTFT p50 %.3f s, %.1f tokens/s",
        precision,
        summary["p50"],
        summary["p95"],
        metrics["ttft_seconds"]["p50"],
        metrics["tokens_per_second"],
    )
    return result


def predict_at_precision(
    *,
    model_dir: str | Path,
    eval_path: str | Path,
    config: Mapping[str, Any],
    precision: str,
    options: Mapping[str, Any],
    predictions_path: str | Path,
    info_path: str | Path,
) -> None:
    """The quality run: `evaluate.predict` (the base model's own code: prompts, batching,
    natural stopping) on the model loaded at `precision`."""
    predict(
        model_dir=model_dir,
        eval_path=eval_path,
        config=config,
        predictions_path=predictions_path,
        info_path=info_path,
        variant=precision,
        load=precision_loader(model_dir=model_dir, precision=precision, model=config["model"], options=options),
    )
