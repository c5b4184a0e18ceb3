"""Loading at each precision really quantises (bitsandbytes / torch layers on a tiny random
Llama), the latency file holds every field, and quality goes through the evaluation code."""

from __future__ import annotations

from pathlib import Path

import bitsandbytes as bnb
import pytest
import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from lora_study.core.config import precision_options
from lora_study.core.io import read_jsonl, write_jsonl
from lora_study.core.provenance import cpu_features
from lora_study.core.results import read_result
from lora_study.model.evaluate import score
from lora_study.model.memory import weight_bytes
from lora_study.stages.quantise.quantise import (
    BITSANDBYTES_OPS,
    benchmark_latency,
    load_at_precision,
    predict_at_precision,
)

CPU = {"device": "cpu", "dtype": "auto"}
INT4 = {"int4": {"quant_type": "nf4", "compute_dtype": "auto", "double_quant": False}}
LATENCY = {"examples": 3, "batch_size": 2, "new_tokens": 4, "warmup": 1, "repeats": 2}
PROMPT = {"instruction": "Summarize the text.", "chat_template": True, "max_input_tokens": 96}
GENERATION = {"max_new_tokens": 5, "greedy": True, "temperature": 1.0, "top_p": 1.0, "seed": 0}
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def linear_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: module for name, module in model.named_modules() if name.split(".")[-1] in (*PROJECTIONS, "lm_head")}


@pytest.fixture()
def eval_file(tmp_path: Path) -> Path:
    rows = [
        {"id": f"ex{i}", "input": text, "reference": "A short summary of the text."}
        for i, text in enumerate(
            ["The cat sat on the mat.", "Language models " * 12, "A third abstract, briefly.", "Four."]
        )
    ]
    path = tmp_path / "eval.jsonl"
    write_jsonl(path, rows)
    return path


def test_full_precision_is_the_configured_dtype(tiny_model_dir: Path) -> None:
    loaded = load_at_precision(model_dir=tiny_model_dir, precision="full", model=CPU, options={})
    assert loaded.dtype == "float32" and loaded.device == "cpu"
    assert loaded.details["backend"].startswith("torch ")
    assert all(type(m) is nn.Linear for m in linear_layers(loaded.model).values())
    bf16 = load_at_precision(model_dir=tiny_model_dir, precision="bf16", model=CPU, options={})
    assert bf16.dtype == "bfloat16" and bf16.model.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16


def test_int8_loads_bitsandbytes_int8_layers(tiny_model_dir: Path) -> None:
    loaded = load_at_precision(model_dir=tiny_model_dir, precision="int8", model=CPU, options={})
    layers = linear_layers(loaded.model)
    for name, module in layers.items():
        if name == "lm_head":
            assert type(module) is nn.Linear  # the (tied) output head stays full precision
        else:
            assert isinstance(module, bnb.nn.Linear8bitLt), name
            assert isinstance(module.weight, bnb.nn.Int8Params) and module.weight.dtype == torch.int8
    assert loaded.details["quantised_layers"] == 2 * len(PROJECTIONS)
    assert loaded.details["backend"] == f"bitsandbytes {bnb.__version__}"
    assert loaded.details["quantization_config"]["load_in_8bit"] is True
    full = load_at_precision(model_dir=tiny_model_dir, precision="full", model=CPU, options={})
    assert weight_bytes(loaded.model) < weight_bytes(full.model)


def test_int4_loads_bitsandbytes_nf4_layers_and_records_the_compute_dtype(tiny_model_dir: Path) -> None:
    loaded = load_at_precision(model_dir=tiny_model_dir, precision="int4", model=CPU, options=INT4)
    for name, module in linear_layers(loaded.model).items():
        if name != "lm_head":
            assert isinstance(module, bnb.nn.Linear4bit), name
            assert isinstance(module.weight, bnb.nn.Params4bit) and module.weight.dtype == torch.uint8
            assert module.weight.quant_state.quant_type == "nf4"
            assert module.compute_dtype == torch.float32
    assert loaded.dtype == "nf4"
    assert loaded.details["compute_dtype"] == "float32"  # auto = the full-precision dtype on a CPU
    assert loaded.details["quantization_config"]["bnb_4bit_compute_dtype"] == "float32"
    assert loaded.details["quantization_config"]["bnb_4bit_quant_type"] == "nf4"


def test_int8_dynamic_quantises_the_linear_layers_with_torch(tiny_model_dir: Path) -> None:
    loaded = load_at_precision(model_dir=tiny_model_dir, precision="int8-dynamic", model=CPU, options={})
    for name, module in linear_layers(loaded.model).items():
        assert isinstance(module, DynamicLinear) == (name != "lm_head"), name
    assert loaded.details["quantised_layers"] == 2 * len(PROJECTIONS)
    full = load_at_precision(model_dir=tiny_model_dir, precision="full", model=CPU, options={})
    assert weight_bytes(loaded.model) < weight_bytes(full.model)


def test_weight_bytes_counts_tied_tensors_once() -> None:
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
    assert weight_bytes(model) == 2 * 10 * 4 * 4
    model[1].weight = model[0].weight
    assert weight_bytes(model) == 10 * 4 * 4


def test_only_int4_has_its_own_options() -> None:
    quantisation = {"int4": INT4["int4"], "precisions": ["full", "int4"], "latency": LATENCY}
    assert precision_options("int4", quantisation) == INT4
    assert precision_options("int8", quantisation) == {} == precision_options("full", quantisation)


LATENCY_FIELDS = {
    "load_seconds",
    "weight_bytes",
    "rss_before_load_bytes",
    "rss_after_load_bytes",
    "peak_rss_bytes",
    "peak_rss_load_bytes",
    "peak_rss_generate_bytes",
    "cuda_weight_bytes",
    "peak_cuda_bytes",
    "batch_size",
    "new_tokens",
    "warmup_runs",
    "timed_runs",
    "latency_seconds",
    "ttft_seconds",
    "decode_tokens_per_second",
    "tokens_per_second",
    "timed_tokens",
    "timed_seconds",
    "runs",
    "warmup",
    # Whether the timed runs were taken under load (lora_study.core.conditions).
    "under_load",
    "runs_under_load",
    "max_other_cores",
    "max_load_average_1m",
    "other_cores_limit",
    "under_load_definition",
}


@pytest.mark.parametrize("precision", ["full", "int8", "int4"])
def test_latency_file_has_every_field_and_the_raw_runs(
    tiny_model_dir: Path, eval_file: Path, tmp_path: Path, precision: str
) -> None:
    path = tmp_path / precision / "latency.json"
    config = {"model": CPU, "prompt": PROMPT, "latency": LATENCY}
    benchmark_latency(
        model_dir=tiny_model_dir,
        eval_path=eval_file,
        config=config,
        precision=precision,
        options=precision_options(precision, INT4),
        latency_path=path,
    )
    result = read_result(path)
    metrics = result["metrics"]
    assert set(metrics) == LATENCY_FIELDS
    assert result["run"]["example_ids"] == ["ex0", "ex1", "ex2"]  # the first `examples` of the file
    # One warm-up pass covers both timed batches (every shape runs before it is timed).
    assert metrics["warmup_runs"] == len(metrics["warmup"]) == 2
    assert all(run["cpu_seconds"] > 0 and run["other_cpu_seconds"] is not None for run in metrics["runs"])
    assert metrics["timed_runs"] == len(metrics["runs"]) == 2 * 2  # 3 examples in batches of 2, 2 repeats
    assert all(run["new_tokens"] == 4 for run in metrics["runs"])
    assert metrics["latency_seconds"]["n"] == 2 * 3
    assert metrics["latency_seconds"]["p50"] <= metrics["latency_seconds"]["p95"] <= metrics["latency_seconds"]["max"]
    assert metrics["timed_tokens"] == 2 * 3 * 4
    assert metrics["weight_bytes"] > 0 and metrics["peak_rss_bytes"] >= metrics["rss_after_load_bytes"] > 0
    assert metrics["cuda_weight_bytes"] is None  # CPU run
    assert result["meta"]["model"]["precision"] == precision
    assert {"torch", "transformers", "bitsandbytes"} <= set(result["meta"]["versions"])
    assert result["meta"]["device"] == "cpu" and result["meta"]["torch_threads"] >= 1
    # The timing depends on the kernels that ran, so the file says which.
    assert result["meta"]["model"]["kernel"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def predict_quality(*, model_dir: Path, eval_file: Path, out: Path, precision: str, evaluation: dict) -> None:
    """The quality run of `precision` (predictions.jsonl, generation.json in `out`)."""
    predict_at_precision(
        model_dir=model_dir,
        eval_path=eval_file,
        config={"model": CPU, "prompt": PROMPT, "generation": GENERATION, "evaluation": evaluation},
        precision=precision,
        options={},
        predictions_path=out / "predictions.jsonl",
        info_path=out / "generation.json",
    )


def test_quality_goes_through_the_evaluation_code(tiny_model_dir: Path, eval_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    predict_quality(
        model_dir=tiny_model_dir, eval_file=eval_file, out=out, precision="int8", evaluation={"batch_size": 2}
    )
    rows = read_jsonl(out / "predictions.jsonl")
    assert [row["id"] for row in rows] == ["ex0", "ex1", "ex2", "ex3"]  # every eval example, not only the timed ones
    assert all(0 <= row["generated_tokens"] <= GENERATION["max_new_tokens"] for row in rows)
    info = read_result(out / "generation.json")
    assert info["run"]["variant"] == "int8" and info["run"]["spec"] is None and info["meta"]["dtype"] == "int8"
    assert info["meta"]["model"]["layer_type"].endswith("Linear8bitLt")
    rouge = score(predictions_path=out / "predictions.jsonl", scores_path=out / "scores.json", variant="int8")
    assert rouge["run"]["examples"] == 4 and "rougeL" in rouge["metrics"]["mean"]
    assert read_result(out / "scores.json") == rouge


def test_the_quality_run_records_the_machine_and_kernels_its_figure_depends_on(
    tiny_model_dir: Path, eval_file: Path, tmp_path: Path
) -> None:
    """The same int8 models scored differently on CPUs with other instruction sets: each quality
    run's generation.json names the CPU (model, family, ISA extensions), torch's CPU capability
    and threads, torch's quantized engine (int8-dynamic) and bitsandbytes' kernels (int8)."""
    for precision in ("int8-dynamic", "int8"):
        out = tmp_path / precision
        predict_quality(
            model_dir=tiny_model_dir, eval_file=eval_file, out=out, precision=precision, evaluation={"batch_size": 2}
        )
        kernel = read_result(out / "generation.json")["meta"]["model"]["kernel"]
        assert kernel["cpu"] == cpu_features()
        assert kernel["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
        assert kernel["torch_threads"] >= 1
        if precision == "int8-dynamic":
            assert kernel["torch_quantized_engine"] == torch.backends.quantized.engine
            assert "bitsandbytes" not in kernel
        else:
            own = kernel["bitsandbytes"]["device_kernels"]
            assert set(own) <= set(BITSANDBYTES_OPS)
            assert ("int8_linear_matmul" in own) == torch._C._dispatch_has_kernel_for_dispatch_key(  # noqa: SLF001
                "bitsandbytes::int8_linear_matmul", "CPU"
            )
            assert "torch_quantized_engine" not in kernel


def test_cpu_features_tell_apart_cpus_with_one_model_name(tmp_path: Path) -> None:
    """Two VMs both named "Intel(R) Xeon(R) Processor": family, model number and the AVX-512 /
    AMX extensions (what picks an int8 kernel) tell them apart."""
    block = "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: {model}\nmodel name\t: Intel(R) Xeon(R) Processor\n"
    older, newer = tmp_path / "older", tmp_path / "newer"
    older.write_text(block.format(model=85) + "stepping\t: 7\nflags\t\t: fpu avx avx2 fma avx512f avx512_vnni\n\n")
    newer.write_text(
        block.format(model=143) + "stepping\t: 8\nflags\t\t: avx avx2 avx512f avx512_bf16 amx_tile amx_int8\n\n"
        "processor\t: 1\nflags\t\t: sse\n"
    )
    a, b = cpu_features(cpuinfo=older), cpu_features(cpuinfo=newer)
    assert (a["vendor"], a["family"], a["model_number"], a["stepping"]) == ("GenuineIntel", "6", "85", "7")
    assert a["isa"] == ["avx", "avx2", "fma", "avx512f", "avx512_vnni"]
    assert b["model_number"] == "143" and b["isa"] == ["avx", "avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_int8"]
    assert cpu_features(cpuinfo=tmp_path / "absent")["isa"] is None


def test_batch_dependent_precisions_generate_one_example_per_call(
    tiny_model_dir: Path, eval_file: Path, tmp_path: Path
) -> None:
    """torch's dynamic int8 quantises activations with one scale per call, so a row's logits
    depend on the other rows of its batch; its quality run therefore generates one example
    per call, exactly as the reference studies' loop (the whole prompt in one forward pass),
    and its predictions do not depend on evaluation.batch_size or evaluation.cache."""
    from lora_study.model.generation import generate, left_pad
    from lora_study.model.loading import load_tokenizer
    from lora_study.model.prompts import PromptBuilder

    loaded = load_at_precision(model_dir=tiny_model_dir, precision="int8-dynamic", model=CPU, options={})
    assert loaded.batch_dependence
    tokenizer = load_tokenizer(tiny_model_dir)
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=PROMPT)
    short, long = (builder.build(text) for text in ("Four.", "Language models " * 12))
    ids, mask = left_pad(prompts=[long, short], pad_id=tokenizer.pad_token_id, device="cpu")
    with torch.inference_mode():
        batched = loaded.model(input_ids=ids, attention_mask=mask).logits[1, -1]
        alone = loaded.model(input_ids=torch.tensor([short.input_ids])).logits[0, -1]
    assert (batched - alone).abs().max() > 1e-3  # the batch-mate changed the short prompt's logits

    prompts = [builder.build(row["input"]) for row in read_jsonl(eval_file)]
    one_by_one = [
        generate(
            model=loaded.model, tokenizer=tokenizer, prompts=[p], settings=GENERATION, batch_size=1, cache="dynamic"
        )[0].text
        for p in prompts
    ]
    for batch_size in (2, "all"):
        out = tmp_path / str(batch_size)
        evaluation = {"batch_size": batch_size, "cache": "prefilled"}
        predict_quality(
            model_dir=tiny_model_dir, eval_file=eval_file, out=out, precision="int8-dynamic", evaluation=evaluation
        )
        assert [row["prediction"] for row in read_jsonl(out / "predictions.jsonl")] == one_by_one
        run = read_result(out / "generation.json")["run"]
        assert run["batch_size"] == 1 and run["cache"] == "dynamic"
        assert run["batch_dependence"] == loaded.batch_dependence
    int4 = load_at_precision(model_dir=tiny_model_dir, precision="int4", model=CPU, options=INT4)
    assert int4.batch_dependence is None  # weight-only: every row's arithmetic is its own
