"""The `full` precision's quality run is the base evaluation's: same predictions, same ROUGE."""

from __future__ import annotations

from pathlib import Path

import pytest

from lora_study.core.io import write_jsonl
from lora_study.core.results import read_result, write_result
from lora_study.stages.evaluate.reuse import reuse_base_predictions
from lora_study.tasks.rouge import rouge_result

ROWS = [
    {"id": "a", "prediction": "the model adapts ranks", "reference": "adapters adapt the ranks"},
    {"id": "b", "prediction": "low rank updates", "reference": "low-rank updates help"},
]


def base_files(tmp_path: Path, variant: str = "base") -> tuple[Path, Path]:
    predictions, info = tmp_path / "base" / "predictions.jsonl", tmp_path / "base" / "generation.json"
    write_jsonl(predictions, ROWS)
    write_result(
        info,
        run={"variant": variant, "spec": None, "examples": 2, "config": {"evaluation": {"batch_size": 8}}},
        metrics={"generate_seconds": 3.0, "generated_tokens": 10, "tokens_per_second": 3.3},
        meta={
            "created_at": "t",
            "code_version": "v1",
            "device": "cpu",
            "device_name": "CPU (2 threads)",
            "dtype": "float32",
            "model": {},
        },
    )
    return predictions, info


def test_full_takes_the_base_predictions_and_scores_the_same(tmp_path: Path) -> None:
    predictions, info = base_files(tmp_path)
    out = tmp_path / "quant" / "full"
    result = reuse_base_predictions(
        predictions=predictions, info=info, predictions_out=out / "predictions.jsonl", info_out=out / "generation.json"
    )
    assert (out / "predictions.jsonl").read_bytes() == predictions.read_bytes()
    written = read_result(out / "generation.json")
    assert written == result
    assert written["run"]["variant"] == "full" and written["run"]["reused_from"]["predictions"] == str(predictions)
    assert written["metrics"] == read_result(info)["metrics"]
    assert written["meta"]["device"] == "cpu" and written["meta"]["dtype"] == "float32"
    assert written["meta"]["model"]["precision"] == "full" and written["meta"]["reused_by"]["code_version"]
    base = rouge_result(rows=ROWS, variant="base", spec=None, predictions_file=str(predictions))
    full = rouge_result(rows=ROWS, variant="full", spec=None, predictions_file=str(out / "predictions.jsonl"))
    assert full["metrics"] == base["metrics"]


def test_only_the_base_models_record_is_taken(tmp_path: Path) -> None:
    predictions, info = base_files(tmp_path, variant="lora-r8-qv-n100-s1")
    with pytest.raises(ValueError, match="not of the base model"):
        reuse_base_predictions(
            predictions=predictions, info=info, predictions_out=tmp_path / "p.jsonl", info_out=tmp_path / "g.json"
        )
