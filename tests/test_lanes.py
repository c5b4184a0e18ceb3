"""Lanes (rules/common.smk, docs/PERFORMANCE.md#lanes): a model job that times nothing runs on
one thread at any --cores, so what it computes does not depend on --cores. The tiny run at
--cores 2 (the `workflow_dir` fixture, where two such jobs ran at once) and the same jobs at
--cores 1 give identical predictions, training losses and drift."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import run_snakemake, tiny_config
from lora_study.core.grid import expand_grid
from lora_study.core.io import read_jsonl
from lora_study.core.results import read_result

pytestmark = pytest.mark.slow
MODEL, DATASET = "smollm2-135m-instruct", "aclsum"
TRAINED = list(expand_grid(training=tiny_config()["training"], train_sizes=tiny_config()["data"]["train"]["sizes"]))


def test_non_timing_outputs_are_the_same_at_one_and_two_cores(workflow_dir: Path, tmp_path: Path) -> None:
    predictions = [f"results/eval/{MODEL}/{DATASET}/{variant}/predictions.jsonl" for variant in ["base", *TRAINED]]
    losses = [f"results/adapters/{MODEL}/{DATASET}/{variant}/loss.csv" for variant in TRAINED]
    drift = f"results/drift/{MODEL}/{DATASET}/{TRAINED[0]}/drift.json"
    run_snakemake(tmp_path, "--cores", "1", *predictions, *losses, drift, timeout=1800)

    for path in predictions:
        one, two = read_jsonl(tmp_path / path), read_jsonl(workflow_dir / path)
        assert [row["prediction"] for row in one] == [row["prediction"] for row in two], path
    for path in losses:  # every column but the step's seconds, which are a time
        assert steps(tmp_path / path) == steps(workflow_dir / path), path
    one, two = read_result(tmp_path / drift), read_result(workflow_dir / drift)
    assert one["metrics"] == two["metrics"]


def steps(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return [{key: value for key, value in row.items() if key != "seconds"} for row in csv.DictReader(handle)]
