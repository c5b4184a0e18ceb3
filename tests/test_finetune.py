"""One training job end to end on the tiny model: artefacts, train.json, evaluation of the result."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from peft import PeftModel

from conftest import REPO
from lora_study.core.checksums import folder_hashes
from lora_study.core.config import load_config
from lora_study.core.data import Example
from lora_study.core.grid import VariantSpec
from lora_study.core.io import read_jsonl, write_jsonl
from lora_study.core.results import read_result
from lora_study.model.evaluate import predict
from lora_study.model.loading import variant_loader
from lora_study.stages.adapters.finetune import train_variant

TRAIN_JSON_METRICS = {
    "trainable_parameters",
    "total_parameters",
    "trainable_percent",
    "artefact_bytes",
    "train_seconds",
    "steps",
    "tokens",
    "target_tokens",
    "tokens_per_second",
    "achieved_gflops",
    "matmul_peak_gflops",
    "final_loss",
    "truncated_prompts",
    "peak_rss_bytes",
    "lora_scaling",
    "padding_share",
    "artefact_sha256",
    "steady_state",
}


@pytest.fixture()
def job(tmp_path: Path):
    config = load_config(REPO / "config.yaml", REPO / "configs" / "tiny.yaml")
    examples = [
        Example(
            id=str(i),
            input=f"Abstract number {i} about low-rank adapters." + " Ranks matter." * i,
            reference=f"Adapters {i}.",
        )
        for i in range(4)
    ]
    write_jsonl(tmp_path / "train.jsonl", [vars(e) for e in examples])
    write_jsonl(tmp_path / "eval.jsonl", [vars(e) for e in examples[:2]])
    return config, tmp_path


@pytest.mark.parametrize("kind", ["lora", "qlora", "fft"])
def test_train_save_reload_and_evaluate(kind: str, job, tiny_model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    config, folder = job
    caplog.set_level(logging.INFO, logger="lora_study.stages.adapters.finetune")
    spec = (
        VariantSpec(kind="fft", train_size=4, seed=1, learning_rate=1e-3)
        if kind == "fft"
        else VariantSpec(
            kind=kind, train_size=4, seed=1, learning_rate=1e-2, rank=4, alpha=8.0, dropout=0.0, targets="qv"
        )
    )
    weights = folder / ("model" if kind == "fft" else "adapter")
    result = train_variant(
        spec=spec,
        model_dir=tiny_model_dir,
        train_path=folder / "train.jsonl",
        config=config,
        weights_out=weights,
        train_json=folder / "train.json",
        loss_csv=folder / "loss.csv",
    )
    assert set(result["metrics"]) == TRAIN_JSON_METRICS
    run = read_result(folder / "train.json")["run"]
    assert run["variant"] == spec.name and VariantSpec.from_dict(run["spec"]) == spec
    rows = list(csv.DictReader((folder / "loss.csv").open()))
    assert len(rows) == result["metrics"]["steps"] == 1 and float(rows[0]["loss"]) > 0
    # The one step ran at the peak rate (no warm-up in the tiny config): loss.csv and the
    # progress log show that rate, not the 0 the scheduler moved on to after the step.
    assert config["training"]["warmup_ratio"] == 0
    assert float(rows[0]["learning_rate"]) == spec.learning_rate
    assert f"lr {spec.learning_rate:.2e}," in caplog.text
    # train.json records every saved model file's sha256; the files are as readable as train.json.
    assert result["metrics"]["artefact_sha256"] == folder_hashes(weights)
    assert {"adapter_model.safetensors" if kind != "fft" else "model.safetensors"} <= set(
        result["metrics"]["artefact_sha256"]
    )
    mode = (folder / "train.json").stat().st_mode & 0o777
    assert {path.name: path.stat().st_mode & 0o777 for path in weights.iterdir()} == dict.fromkeys(
        (path.name for path in weights.iterdir()), mode
    )
    # alpha 8 over rank 4, as PEFT applied it; full fine-tuning has no adapter to scale.
    assert result["metrics"]["lora_scaling"] == (None if kind == "fft" else 2.0)
    padded, tokens = float(rows[0]["padded_tokens"]), result["metrics"]["tokens"]
    assert padded > 0 and result["metrics"]["padding_share"] == pytest.approx(padded / (tokens + padded))
    # One step, its batch shape new: no steady-state step to measure, and the file says why.
    steady = result["metrics"]["steady_state"]
    assert (steady["steps"], steady["excluded_steps"], steady["tokens_per_second"]) == (0, 1, None)
    assert "shape" in steady["definition"] and int(rows[0]["first_shapes"]) == 1
    if kind == "fft":
        assert (weights / "model.safetensors").is_file() and (weights / "tokenizer.json").is_file()
    else:
        assert {p.name for p in weights.iterdir()} == {"adapter_config.json", "adapter_model.safetensors", "README.md"}
        assert result["metrics"]["trainable_parameters"] < result["metrics"]["total_parameters"] / 10

    loader = variant_loader(spec=spec, model_dir=tiny_model_dir, weights=weights, model=config["model"])
    loaded = loader()
    assert isinstance(loaded.model, PeftModel) == (kind != "fft")
    if kind == "qlora":
        import bitsandbytes as bnb

        assert any(isinstance(m, bnb.nn.Linear4bit) for m in loaded.model.modules())
        assert loaded.dtype == "nf4"
    predict(
        model_dir=tiny_model_dir,
        eval_path=folder / "eval.jsonl",
        config=config,
        predictions_path=folder / "predictions.jsonl",
        info_path=folder / "generation.json",
        variant=spec.name,
        spec=spec.to_dict(),
        load=loader,
    )
    predictions = read_jsonl(folder / "predictions.jsonl")
    assert [row["id"] for row in predictions] == ["0", "1"]
    run = read_result(folder / "generation.json")["run"]
    assert run["variant"] == spec.name and run["spec"] == spec.to_dict()


def test_rslora_train_json_records_alpha_over_sqrt_rank(job, tiny_model_dir: Path) -> None:
    config, folder = job
    spec = VariantSpec(
        kind="rslora", train_size=4, seed=1, learning_rate=1e-2, rank=16, alpha=8.0, dropout=0.0, targets="qv"
    )
    result = train_variant(
        spec=spec,
        model_dir=tiny_model_dir,
        train_path=folder / "train.jsonl",
        config=config,
        weights_out=folder / "adapter",
        train_json=folder / "train.json",
        loss_csv=folder / "loss.csv",
    )
    assert result["metrics"]["lora_scaling"] == pytest.approx(8.0 / 4.0)
    assert read_result(folder / "train.json")["metrics"]["lora_scaling"] == pytest.approx(2.0)


def test_a_failed_training_leaves_no_artefacts(job, tiny_model_dir: Path) -> None:
    config, folder = job
    spec = VariantSpec(
        kind="lora", train_size=4, seed=1, learning_rate=1e-2, rank=4, alpha=8.0, targets="no_such_module"
    )
    with pytest.raises(ValueError):
        train_variant(
            spec=spec,
            model_dir=tiny_model_dir,
            train_path=folder / "train.jsonl",
            config=config,
            weights_out=folder / "adapter",
            train_json=folder / "train.json",
            loss_csv=folder / "loss.csv",
        )
    assert not (folder / "adapter").exists() and not (folder / "train.json").exists()
