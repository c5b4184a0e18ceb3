"""The default config on a GPU machine, and float16 on a CPU (issue 11, item 7).

No GPU is needed: `torch.cuda.is_available` is patched to say one is visible. int8-dynamic
(CPU only) then runs on the CPU under `model.device: auto` and its files say so, instead of
failing the job; float16 on a CPU is refused by the config check (`device: cpu`) or by the
job before it loads anything (`device: auto` without a GPU).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from lora_study.core.config import ConfigError, validate_config
from lora_study.core.io import write_jsonl
from lora_study.core.results import read_result
from lora_study.model.evaluate import predict
from lora_study.model.loading import base_loader, resolve_dtype
from lora_study.report.summary import latency_against
from lora_study.stages.quantise.quantise import (
    PRECISIONS,
    QuantisationError,
    benchmark_latency,
    load_at_precision,
    precision_device,
    predict_at_precision,
)

REPO = Path(__file__).resolve().parents[1]
NOTE = "int8-dynamic is CPU-only: measured on the CPU while other precisions ran on cuda"
# A GPU config's model block: on the CPU, float16 would be refused, so int8-dynamic must not use it.
GPU_AUTO = {"device": "auto", "dtype": "float16"}
PROMPT = {"instruction": "Summarize the text.", "chat_template": True, "max_input_tokens": 96}
LATENCY = {"examples": 2, "batch_size": 1, "new_tokens": 3, "warmup": 1, "repeats": 1}
GENERATION = {"max_new_tokens": 4, "greedy": True, "temperature": 1.0, "top_p": 1.0, "seed": 0}


@pytest.fixture()
def gpu_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where CUDA looks available; anything that really touches a GPU fails."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.fixture()
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture()
def eval_file(tmp_path: Path) -> Path:
    rows = [{"id": f"ex{i}", "input": f"Text number {i} about models.", "reference": "A summary."} for i in range(3)]
    path = tmp_path / "eval.jsonl"
    write_jsonl(path, rows)
    return path


def default_config() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config.yaml").read_text())


# --- int8-dynamic under `auto` on a GPU machine ---------------------------------------------


@pytest.mark.usefixtures("gpu_visible")
def test_auto_on_a_gpu_puts_cpu_only_precisions_on_the_cpu_and_the_rest_on_cuda() -> None:
    devices = {precision: precision_device(precision=precision, requested="auto") for precision in PRECISIONS}
    assert devices == {precision: "cpu" if precision == "int8-dynamic" else "cuda" for precision in PRECISIONS}
    assert set(default_config()["quantisation"]["precisions"]) <= set(PRECISIONS)  # the default's are among them


@pytest.mark.usefixtures("no_gpu")
def test_auto_without_a_gpu_runs_everything_on_the_cpu_with_no_note(tiny_model_dir: Path) -> None:
    assert {precision_device(precision=p, requested="auto") for p in PRECISIONS} == {"cpu"}
    loaded = load_at_precision(
        model_dir=tiny_model_dir, precision="int8-dynamic", model={"device": "auto", "dtype": "auto"}, options={}
    )
    assert loaded.device == "cpu" and "device_note" not in loaded.details


@pytest.mark.usefixtures("gpu_visible")
def test_int8_dynamic_latency_runs_on_the_cpu_beside_a_gpu_and_says_so(
    tiny_model_dir: Path, eval_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / "latency.json"
    benchmark_latency(
        model_dir=tiny_model_dir,
        eval_path=eval_file,
        config={"model": GPU_AUTO, "prompt": PROMPT, "latency": LATENCY},
        precision="int8-dynamic",
        options={},
        latency_path=path,
    )
    result = read_result(path)
    assert result["meta"]["device"] == "cpu" and result["meta"]["model"]["device_note"] == NOTE
    assert result["meta"]["dtype"] == "qint8" and result["meta"]["model"]["dtype"] == "float32"
    assert result["metrics"]["cuda_weight_bytes"] is None and result["metrics"]["timed_runs"] == 2
    assert result["run"]["config"]["model"]["device"] == "auto"  # what was asked, beside what ran


@pytest.mark.usefixtures("gpu_visible")
def test_int8_dynamic_predictions_run_on_the_cpu_beside_a_gpu_and_say_so(
    tiny_model_dir: Path, eval_file: Path, tmp_path: Path
) -> None:
    predict_at_precision(
        model_dir=tiny_model_dir,
        eval_path=eval_file,
        config={"model": GPU_AUTO, "prompt": PROMPT, "generation": GENERATION, "evaluation": {"batch_size": 2}},
        precision="int8-dynamic",
        options={},
        predictions_path=tmp_path / "predictions.jsonl",
        info_path=tmp_path / "generation.json",
    )
    info = read_result(tmp_path / "generation.json")
    assert info["meta"]["device"] == "cpu" and info["meta"]["model"]["device_note"] == NOTE
    assert info["run"]["examples"] == 3


def test_explicit_cuda_with_int8_dynamic_is_refused_before_any_job_with_the_remedy() -> None:
    config = default_config()
    config["model"]["device"] = "cuda"
    with pytest.raises(ConfigError, match="int8-dynamic runs on the CPU only.*set model.device: auto"):
        validate_config(config, source="c.yaml")
    # Defence in depth: a job handed such a config fails naming the key, never touching a GPU.
    with pytest.raises(QuantisationError, match="quantisation.precisions: int8-dynamic runs on the CPU only"):
        precision_device(precision="int8-dynamic", requested="cuda")


def test_the_default_config_is_valid_and_lists_int8_dynamic_under_auto() -> None:
    config = validate_config(default_config(), source="config.yaml")
    assert config["model"]["device"] == "auto" and "int8-dynamic" in config["quantisation"]["precisions"]


# --- float16 on a CPU -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "edits"),
    [
        ("model.dtype", {"dtype": "float16"}),
        ("quantisation.int4.compute_dtype", {"compute_dtype": "float16"}),
    ],
)
def test_float16_on_an_explicit_cpu_is_refused_naming_the_key(key: str, edits: dict[str, str]) -> None:
    config = default_config()
    config["model"]["device"] = "cpu"
    block = config["model"] if key == "model.dtype" else config["quantisation"]["int4"]
    block.update(edits)
    with pytest.raises(ConfigError) as error:
        validate_config(config, source="c.yaml")
    assert f"{key}: float16 with model.device cpu: CPUs without float16 units" in str(error.value)
    assert "use float32 or auto" in str(error.value)


@pytest.mark.parametrize(
    ("device", "dtype", "compute"),
    [("cpu", "bfloat16", "auto"), ("cpu", "float32", "bfloat16"), ("auto", "float16", "float16")],
)
def test_what_a_cpu_can_run_and_auto_float16_pass_the_config_check(device: str, dtype: str, compute: str) -> None:
    config = default_config()
    config["model"].update(device=device, dtype=dtype)
    config["quantisation"]["int4"]["compute_dtype"] = compute
    validate_config(config, source="c.yaml")  # auto + float16: only the job knows whether a GPU is visible


def test_int4_compute_float16_is_allowed_on_a_cpu_when_int4_is_not_run() -> None:
    config = default_config()
    config["model"]["device"] = "cpu"
    config["quantisation"].update(
        precisions=["full"], int4={**config["quantisation"]["int4"], "compute_dtype": "float16"}
    )
    validate_config(config, source="c.yaml")


@pytest.mark.usefixtures("no_gpu")
def test_auto_float16_without_a_gpu_fails_the_job_before_it_loads_anything(
    tiny_model_dir: Path, eval_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RuntimeError, match="model.dtype is float16 but this job runs on the CPU"):
        resolve_dtype("float16", device="cpu")
    # The evaluation job: the failure comes from resolving the dtype, before the weights load.
    monkeypatch.setattr("lora_study.model.loading.load_model", lambda **_: pytest.fail("loaded weights"))
    with pytest.raises(RuntimeError, match="model.dtype is float16 .*use float32 or auto"):
        predict(
            model_dir=tiny_model_dir,
            eval_path=eval_file,
            config={"model": GPU_AUTO, "prompt": PROMPT, "generation": GENERATION, "evaluation": {"batch_size": 2}},
            predictions_path=tmp_path / "p.jsonl",
            info_path=tmp_path / "g.json",
        )
    assert not (tmp_path / "g.json").exists()
    with pytest.raises(RuntimeError, match="model.dtype is float16"):
        base_loader(model_dir=tiny_model_dir, model=GPU_AUTO)()


@pytest.mark.usefixtures("no_gpu")
def test_auto_int4_compute_float16_without_a_gpu_fails_naming_its_key(tiny_model_dir: Path) -> None:
    options = {"int4": {"quant_type": "nf4", "compute_dtype": "float16", "double_quant": False}}
    with pytest.raises(RuntimeError, match="quantisation.int4.compute_dtype is float16 but this job runs on the CPU"):
        load_at_precision(
            model_dir=tiny_model_dir, precision="int4", model={"device": "auto", "dtype": "auto"}, options=options
        )


@pytest.mark.usefixtures("no_gpu")
def test_float16_training_on_auto_without_a_gpu_fails_before_the_flop_probe(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lora_study.core.grid import expand_grid
    from lora_study.stages.adapters import finetune

    monkeypatch.setattr(finetune, "matmul_peak_gflops", lambda **_: pytest.fail("ran the FLOP probe"))
    monkeypatch.setattr(finetune, "load_base_for", lambda **_: pytest.fail("loaded the base model"))
    config = validate_config(default_config(), source="config.yaml")
    config["model"]["dtype"] = "float16"
    spec = next(iter(expand_grid(training=config["training"], train_sizes=[4]).values()))
    with pytest.raises(RuntimeError, match="model.dtype is float16 but this job runs on the CPU"):
        finetune.train_variant(
            spec=spec,
            model_dir=tiny_model_dir,
            train_path=tmp_path / "train.jsonl",
            config=config,
            weights_out=tmp_path / "weights",
            train_json=tmp_path / "train.json",
            loss_csv=tmp_path / "loss.csv",
        )


# --- the report never ranks a CPU timing against GPU timings ---------------------------------


def test_summary_gives_no_latency_ratio_across_devices() -> None:
    def timing(p50: float, device: str) -> dict[str, Any]:
        return {"metrics": {"latency_seconds": {"p50": p50}, "under_load": False}, "meta": {"device": device}}

    latency = {"full": timing(0.5, "cuda"), "int8": timing(1.0, "cuda"), "int8-dynamic": timing(4.0, "cpu")}
    assert latency_against(latency, name="int8", reference="full") == "1.000 s (2.00x full's 0.500 s)"
    assert latency_against(latency, name="int8-dynamic", reference="full") == (
        "4.000 s on cpu (not comparable: full ran on cuda)"
    )


# --- the default config's plan on a CUDA-visible machine -------------------------------------

# Loaded at the start of every Python process of the dry run (PYTHONPATH): torch, as any
# code in that process would import it, sees a visible GPU. Had the rules layer decided
# devices at parse time (it must import no torch), this is what it would have seen.
SITECUSTOMIZE = """
import sys
import torch

torch.cuda.is_available = lambda: True
print(f"mock: torch.cuda.is_available() = {torch.cuda.is_available()}", file=sys.stderr)
"""


def test_default_config_dry_run_on_a_cuda_visible_mock_plans_every_job(tmp_path: Path) -> None:
    """The plan is decided without torch, so a GPU cannot change it: every precision (int8-dynamic
    included) gets its jobs and the report is reached; the device is chosen in each job."""
    mock = tmp_path / "mock"
    mock.mkdir()
    (mock / "sitecustomize.py").write_text(SITECUSTOMIZE)
    workdir = tmp_path / "run"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(mock), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "report.html",
            "-n",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(REPO / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "mock: torch.cuda.is_available() = True" in output  # the mock was active
    precisions = default_config()["quantisation"]["precisions"]
    for precision in precisions:
        assert f"quant/smollm2-135m-instruct/aclsum/{precision}/latency.json" in output
        assert f"quant/smollm2-135m-instruct/aclsum/{precision}/generation.json" in output
    assert "build_report" in output and "Error" not in output
