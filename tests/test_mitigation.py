"""The intruder-mitigation job on the tiny random Llama with a tiny adapter: strength 0 is
the adapter as evaluated by the main evaluation, stronger mitigation removes more of the
update, an untrained adapter has nothing to remove, DoRA is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import record_training
from lora_study.core.grid import VariantSpec
from lora_study.core.io import read_jsonl, write_jsonl
from lora_study.core.results import read_result
from lora_study.model.adapters import attach_adapter
from lora_study.model.evaluate import predict
from lora_study.model.loading import load_model, variant_loader
from lora_study.stages.weights.mitigation import curve_strengths, mitigate_intruders

TEXTS = [
    "Neural machine translation systems are trained on parallel corpora of varying quality.",
    "We propose a parser that handles long-distance dependencies with a stack of attention layers.",
    "Results on three benchmarks show consistent gains over strong baselines.",
]
GENERAL = ["The match was postponed after heavy rain flooded the stadium.", "Prices of coffee rose again this week."]
CONFIG = {
    "model": {"device": "cpu", "dtype": "float32"},
    "prompt": {"instruction": "Summarize.", "chat_template": True, "max_input_tokens": 64},
    "generation": {"max_new_tokens": 4, "greedy": True},
    "evaluation": {"batch_size": 2},
    "forgetting": {"max_tokens": 32, "batch_size": 8},
    "mitigation": {"enabled": True, "strengths": [1.0, 0.5], "top_k": 4, "threshold_epsilon": 0.5},
}
SPEC = VariantSpec(kind="lora", train_size=4, seed=1, learning_rate=1e-3, rank=4, alpha=8.0, targets="qv")


def write_inputs(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "eval.jsonl", [{"id": str(i), "input": t, "reference": t} for i, t in enumerate(TEXTS)])
    write_jsonl(tmp_path / "general.jsonl", [{"id": str(i), "text": t} for i, t in enumerate(GENERAL)])


def save_adapter(*, model_dir: Path, folder: Path, b_std: float, spec: VariantSpec = SPEC) -> Path:
    """An adapter saved untrained (b_std 0: B = 0) or with B drawn at random, large enough
    that its update dominates the tiny model's small random weights: intruders."""
    model = attach_adapter(model=load_model(model_dir=model_dir, device="cpu", dtype=torch.float32), spec=spec)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name and b_std:
                parameter.normal_(std=b_std)
    model.save_pretrained(folder)
    record_training(folder)
    return folder


def run(tmp_path: Path, model_dir: Path, adapter: Path, spec: VariantSpec = SPEC) -> dict:
    write_inputs(tmp_path)
    return mitigate_intruders(
        spec=spec,
        model_dir=model_dir,
        weights=adapter,
        eval_path=tmp_path / "eval.jsonl",
        general_path=tmp_path / "general.jsonl",
        config=CONFIG,
        out_path=tmp_path / "out" / "mitigation.json",
    )


def test_curve_strengths_start_at_the_unmitigated_adapter() -> None:
    assert curve_strengths([1.0, 0.25, 0.5, 0.25]) == [0.0, 0.25, 0.5, 1.0]


def test_mitigation_curve_on_an_adapter_with_intruders(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapter = save_adapter(model_dir=tiny_model_dir, folder=tmp_path / "adapter", b_std=0.5)
    result = run(tmp_path, tiny_model_dir, adapter)
    metrics = result["metrics"]
    assert metrics["intruders"]["modules"] == 4 and metrics["intruders"]["total"] > 0
    curve = metrics["curve"]
    assert [p["strength"] for p in curve] == [0.0, 0.5, 1.0]
    assert [p["mitigation_lambda"] for p in curve] == [1.0, 0.5, 0.0]  # PEFT keeps lambda of each intruder
    # Stronger mitigation removes more of the update (a reversed lambda would leave strength 1 untouched).
    remaining = [p["update_remaining"] for p in curve]
    assert remaining[0] == 1.0 and remaining[0] > remaining[1] > remaining[2]
    assert curve[2]["forgetting"]["mean_nll"] != pytest.approx(curve[0]["forgetting"]["mean_nll"], rel=1e-6)
    assert curve[0]["forgetting"]["texts"] == len(GENERAL) and len(curve[0]["predictions"]) == len(TEXTS)
    # Strength 0 is the adapter exactly as the main evaluation generates with it.
    predict(
        model_dir=tiny_model_dir,
        eval_path=tmp_path / "eval.jsonl",
        config=CONFIG,
        predictions_path=tmp_path / "p.jsonl",
        info_path=tmp_path / "g.json",
        load=variant_loader(spec=SPEC, model_dir=tiny_model_dir, weights=adapter, model=CONFIG["model"]),
    )
    assert [p["prediction"] for p in curve[0]["predictions"]] == [
        r["prediction"] for r in read_jsonl(tmp_path / "p.jsonl")
    ]
    quality = curve[0]["quality"]
    assert quality["metric"] == "rougeL" and set(quality["values"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert quality["value"] == quality["values"]["rougeL"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["mitigation.json"]
    assert read_result(tmp_path / "out" / "mitigation.json")["run"]["spec"] == SPEC.to_dict()


def test_an_untrained_adapter_has_nothing_to_mitigate(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapter = save_adapter(model_dir=tiny_model_dir, folder=tmp_path / "adapter", b_std=0.0)
    metrics = run(tmp_path, tiny_model_dir, adapter)["metrics"]
    assert metrics["intruders"]["total"] == 0
    for point in metrics["curve"]:
        assert point["update_norm"] == 0 and point["update_remaining"] is None
        # B = 0 is the base function: every strength forgets exactly as much as the base does.
        assert point["forgetting"]["mean_nll"] == pytest.approx(metrics["base"]["forgetting"]["mean_nll"], rel=1e-6)
        assert point["predictions"] == metrics["curve"][0]["predictions"]


def test_dora_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    spec = VariantSpec(kind="dora", train_size=4, seed=1, learning_rate=1e-3, rank=4, alpha=8.0, targets="qv")
    with pytest.raises(ValueError, match="magnitude"):
        run(tmp_path, tiny_model_dir, tmp_path / "adapter", spec=spec)


def test_qlora_is_mitigated_on_a_full_precision_base_and_evaluated_on_its_4bit_one(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """PEFT's SVDs cannot run on packed 4-bit weights: the mitigated adapter is computed on the
    float32 base, then generated with on the 4-bit base, as the main evaluation does."""
    spec = VariantSpec(kind="qlora", train_size=4, seed=1, learning_rate=1e-3, rank=4, alpha=8.0, targets="qv")
    adapter = save_adapter(model_dir=tiny_model_dir, folder=tmp_path / "adapter", b_std=0.5)
    curve = run(tmp_path, tiny_model_dir, adapter, spec=spec)["metrics"]["curve"]
    assert [p["strength"] for p in curve] == [0.0, 0.5, 1.0] and curve[2]["update_remaining"] < 1.0
    predict(
        model_dir=tiny_model_dir,
        eval_path=tmp_path / "eval.jsonl",
        config=CONFIG,
        predictions_path=tmp_path / "p.jsonl",
        info_path=tmp_path / "g.json",
        load=variant_loader(spec=spec, model_dir=tiny_model_dir, weights=adapter, model=CONFIG["model"]),
    )
    assert [p["prediction"] for p in curve[0]["predictions"]] == [
        r["prediction"] for r in read_jsonl(tmp_path / "p.jsonl")
    ]
