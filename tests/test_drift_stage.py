"""The drift job end to end on the tiny random Llama: files, baselines, an untrained adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import pytest

from lora_study.adapters import VariantSpec, attach_adapter
from lora_study.drift_stage import measure_drift
from lora_study.io import write_jsonl
from lora_study.modeling import load_model

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
    "drift": {"examples": None, "pooling": "mean", "token_level": True, "batch_size": 4, "shuffle_seed": 0,
              "criterion": 0.2, "forgetting": {"examples": 3, "max_tokens": 32, "seed": 7}},
}


def drift_of_adapter(*, model_dir: Path, tmp_path: Path, random_b: bool) -> dict:
    """measure_drift's result for a LoRA r=4 adapter saved untrained (B = 0, as PEFT
    initialises it: the base function exactly) or with B drawn at random."""
    spec = VariantSpec(kind="lora", train_size=4, seed=1, learning_rate=1e-3, rank=4, alpha=8.0, targets="qv")
    model = attach_adapter(model=load_model(model_dir=model_dir, device="cpu", dtype=torch.float32), spec=spec)
    if random_b:
        torch.manual_seed(0)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(std=0.5)
    model.save_pretrained(tmp_path / "adapter")
    write_jsonl(tmp_path / "eval.jsonl", [{"id": str(i), "input": t, "reference": "x"} for i, t in enumerate(TEXTS)])
    write_jsonl(tmp_path / "heldout.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(TEXTS[:3])])
    return measure_drift(
        spec=spec, model_dir=model_dir, weights=tmp_path / "adapter", eval_path=tmp_path / "eval.jsonl",
        heldout_path=tmp_path / "heldout.jsonl", config=CONFIG,
        drift_path=tmp_path / "out" / "drift.json", matrix_path=tmp_path / "out" / "cka_matrix.npz",
    )


def test_untrained_adapter_has_no_drift_and_no_forgetting(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = drift_of_adapter(model_dir=tiny_model_dir, tmp_path=tmp_path, random_b=False)
    metrics = result["metrics"]
    assert metrics["layers"] == 3 and metrics["examples"] == len(TEXTS) and len(metrics["per_layer"]) == 3
    for row in metrics["per_layer"]:
        assert row["cka_debiased"] == pytest.approx(1, abs=1e-9) and row["cosine"] == pytest.approx(1, abs=1e-9)
        assert row["token_cka_debiased"] == pytest.approx(1, abs=1e-9)
    assert metrics["mean_drift"] == pytest.approx(0, abs=1e-9)
    assert metrics["forgetting"]["base"]["perplexity"] == pytest.approx(metrics["forgetting"]["tuned"]["perplexity"], rel=1e-6)
    matrices = np.load(tmp_path / "out" / "cka_matrix.npz")
    assert matrices["debiased"].shape == (3, 3)
    assert np.allclose(np.diag(matrices["debiased"]), 1) and np.allclose(matrices["debiased"], matrices["debiased"].T, atol=1e-9)
    assert (tmp_path / "out" / "drift.json").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cka_matrix.npz", "drift.json"]  # no temporaries left


def test_a_changed_adapter_shows_drift_and_changes_perplexity(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Guards against comparing the base with itself: an adapter with nonzero B must drift."""
    metrics = drift_of_adapter(model_dir=tiny_model_dir, tmp_path=tmp_path, random_b=True)["metrics"]
    assert metrics["per_layer"][0]["cka_debiased"] == pytest.approx(1, abs=1e-9)  # embeddings carry no adapter
    assert metrics["mean_drift"] > 1e-3 and all(value > 1e-3 for value in metrics["drift_per_layer"][1:])
    assert metrics["forgetting"]["tuned"]["perplexity"] != pytest.approx(metrics["forgetting"]["base"]["perplexity"], rel=1e-4)


def test_more_drift_examples_than_eval_examples_is_an_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    spec = VariantSpec(kind="fft", train_size=4, seed=1, learning_rate=1e-3)
    write_jsonl(tmp_path / "eval.jsonl", [{"id": str(i), "input": t, "reference": "x"} for i, t in enumerate(TEXTS)])
    config = {**CONFIG, "drift": {**CONFIG["drift"], "examples": 10}}
    with pytest.raises(ValueError, match=r"drift.examples = 10 but .*eval.jsonl holds only 6"):
        measure_drift(spec=spec, model_dir=tiny_model_dir, weights=tmp_path, eval_path=tmp_path / "eval.jsonl",
                      heldout_path=tmp_path / "h.jsonl", config=config,
                      drift_path=tmp_path / "d.json", matrix_path=tmp_path / "m.npz")
