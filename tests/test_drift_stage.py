"""The drift jobs end to end on the tiny random Llama: files, baselines, an untrained adapter, the summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import record_training
from lora_study.core.grid import VariantSpec
from lora_study.core.io import write_jsonl
from lora_study.core.results import read_result
from lora_study.model.adapters import attach_adapter
from lora_study.model.loading import load_model
from lora_study.stages.drift.job import measure_base_features, measure_drift
from lora_study.stages.drift.summary import summarise_drift
from lora_study.stats.drift import read_features

TEXTS = [
    "Neural machine translation systems are trained on parallel corpora of varying quality.",
    "We propose a parser that handles long-distance dependencies with a stack of attention layers.",
    "Results on three benchmarks show consistent gains over strong baselines.",
    "Sentiment classifiers often fail on sarcasm.",
    "A new corpus of annotated dialogues is released with this paper, covering twelve domains and four languages.",
    "Our method halves the error rate.",
]
CONFIG = {
    "model": {"device": "cpu", "dtype": "float32"},
    "prompt": {"instruction": "Summarize.", "chat_template": True, "max_input_tokens": 64},
    "drift": {
        "examples": None,
        "seed": 0,
        "tokens": "input",
        "pooling": "mean",
        "include_embeddings": False,
        "token_level": True,
        "batch_size": 4,
        "shuffle_seed": 0,
        "resamples": 200,
        "criterion": 0.2,
        "forgetting": {"examples": 3, "max_tokens": 32, "seed": 7},
    },
}
SUMMARY_SETTINGS = {
    "criterion": 0.2,
    "resamples": 300,
    "seed": 0,
    "confidence": 0.95,
    "include_embeddings": False,
    "max_quality_gap": 0.03,
}


def write_inputs(tmp_path: Path) -> dict[str, Path]:
    write_jsonl(tmp_path / "drift.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)])
    write_jsonl(tmp_path / "heldout.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(TEXTS[:3])])
    write_jsonl(tmp_path / "general.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(TEXTS[3:])])
    return {"in_domain": tmp_path / "heldout.jsonl", "general": tmp_path / "general.jsonl"}


def drift_of_adapter(*, model_dir: Path, tmp_path: Path, random_b: bool) -> dict:
    """measure_drift's result for a LoRA r=4 adapter saved untrained (B = 0, as PEFT
    initialises it: the base function exactly) or with B drawn at random, after the base job."""
    spec = VariantSpec(kind="lora", train_size=4, seed=1, learning_rate=1e-3, rank=4, alpha=8.0, targets="qv")
    model = attach_adapter(model=load_model(model_dir=model_dir, device="cpu", dtype=torch.float32), spec=spec)
    if random_b:
        torch.manual_seed(0)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(std=0.5)
    model.save_pretrained(tmp_path / "adapter")
    record_training(tmp_path / "adapter")
    texts = write_inputs(tmp_path)
    measure_base_features(
        model_dir=model_dir,
        prompts_path=tmp_path / "drift.jsonl",
        text_paths=texts,
        config=CONFIG,
        features_path=tmp_path / "base" / "features.npz",
        forgetting_path=tmp_path / "base" / "forgetting.json",
    )
    return measure_drift(
        spec=spec,
        model_dir=model_dir,
        weights=tmp_path / "adapter",
        prompts_path=tmp_path / "drift.jsonl",
        text_paths=texts,
        base_features_path=tmp_path / "base" / "features.npz",
        base_forgetting_path=tmp_path / "base" / "forgetting.json",
        config=CONFIG,
        drift_path=tmp_path / "out" / "drift.json",
        matrix_path=tmp_path / "out" / "cka_matrix.npz",
        features_path=tmp_path / "out" / "features.npz",
    )


def summary_of(tmp_path: Path) -> dict:
    """The drift summary's metrics from the files the jobs wrote, read as scripts/summarise_drift.py does."""
    drift = read_result(tmp_path / "out" / "drift.json")
    return summarise_drift(
        base_features=read_features(tmp_path / "base" / "features.npz"),
        base_forgetting=read_result(tmp_path / "base" / "forgetting.json")["metrics"],
        variants={
            drift["run"]["variant"]: (
                drift["run"]["spec"],
                drift["metrics"],
                read_features(tmp_path / "out" / "features.npz"),
            )
        },
        comparisons=None,
        settings=SUMMARY_SETTINGS,
    )["metrics"]


def test_untrained_adapter_has_no_drift_and_no_forgetting(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = drift_of_adapter(model_dir=tiny_model_dir, tmp_path=tmp_path, random_b=False)
    metrics = result["metrics"]
    assert metrics["layers"] == 3 and metrics["examples"] == len(TEXTS) and len(metrics["per_layer"]) == 3
    assert metrics["tokens"] == "input" and metrics["mean_over"] == "layers 1-2"
    for row in metrics["per_layer"]:
        assert row["cka_debiased"] == pytest.approx(1, abs=1e-9) and row["cosine_centred"] == pytest.approx(1, abs=1e-9)
        assert row["token_cka_debiased"] == pytest.approx(1, abs=1e-9)
    assert metrics["mean_drift"] == pytest.approx(0, abs=1e-9)
    for name in ("in_domain", "general"):
        assert metrics["forgetting"][name]["change"] == 0.0
        assert metrics["forgetting"][name]["tuned"]["perplexity"] == metrics["forgetting"][name]["base"]["perplexity"]
    matrices = np.load(tmp_path / "out" / "cka_matrix.npz")
    assert matrices["debiased"].shape == (3, 3)
    assert np.allclose(np.diag(matrices["debiased"]), 1) and np.allclose(
        matrices["debiased"], matrices["debiased"].T, atol=1e-9
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "cka_matrix.npz",
        "drift.json",
        "features.npz",
    ]  # no temporaries
    # The summary: drift 0 with an interval that contains 0, forgetting exactly 0.
    group = summary_of(tmp_path)["groups"]["lora-r4-qv-n4"]
    assert group["mean_drift"]["estimate"] == pytest.approx(0, abs=1e-12)
    assert group["mean_drift"]["low"] <= 0 <= group["mean_drift"]["high"] + 1e-12
    for name in ("in_domain", "general"):
        assert (
            group["forgetting"][name]["estimate"]
            == group["forgetting"][name]["low"]
            == group["forgetting"][name]["high"]
            == 0
        )


def test_a_changed_adapter_shows_drift_and_changes_cross_entropy(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Guards against comparing the base with itself: an adapter with nonzero B must drift."""
    result = drift_of_adapter(model_dir=tiny_model_dir, tmp_path=tmp_path, random_b=True)
    metrics = result["metrics"]
    assert metrics["per_layer"][0]["cka_debiased"] == pytest.approx(1, abs=1e-9)  # embeddings carry no adapter
    assert metrics["mean_drift"] > 1e-3 and all(value > 1e-3 for value in metrics["drift_per_layer"][1:])
    assert metrics["forgetting"]["general"]["change"] != pytest.approx(0, abs=1e-4)
    group = summary_of(tmp_path)["groups"]["lora-r4-qv-n4"]
    assert group["mean_drift"]["estimate"] == pytest.approx(metrics["mean_drift"], rel=1e-6)
    assert group["mean_drift"]["low"] < group["mean_drift"]["estimate"] < group["mean_drift"]["high"]


def test_too_few_drift_prompts_is_an_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    texts = write_inputs(tmp_path)
    write_jsonl(tmp_path / "drift.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(TEXTS[:3])])
    with pytest.raises(ValueError, match=r"drift.jsonl: 3 drift prompts; debiased CKA needs at least 4"):
        measure_base_features(
            model_dir=tiny_model_dir,
            prompts_path=tmp_path / "drift.jsonl",
            text_paths=texts,
            config=CONFIG,
            features_path=tmp_path / "f.npz",
            forgetting_path=tmp_path / "f.json",
        )
