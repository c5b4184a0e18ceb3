"""A learning-rate sweep end to end on the tiny config (configs/tiny-sweep.yaml): every
candidate trained and validated, the rate the validation split prefers chosen, only the
chosen variants evaluated on the test set, and never before the choice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from conftest import REPO, planned_jobs, run_snakemake, tiny_config
from lora_study.core.config import overlay
from lora_study.core.grid import expand_grid, swept_methods
from lora_study.core.results import read_result

pytestmark = pytest.mark.slow
PREFIX = "smollm2-135m-instruct/aclsum"
# Jobs that read test-set rows' model outputs: none may run before a method's rate is chosen.
TEST_SET_RULES = ("generate_variant_predictions", "score_predictions", "compare_variants", "measure_drift")


def sweep_config() -> dict[str, Any]:
    return overlay(tiny_config(), yaml.safe_load((REPO / "configs" / "tiny-sweep.yaml").read_text()))


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("sweep")
    run_snakemake(workdir, "--cores", "2", "report.html", configfile=write(workdir / "sweep.yaml", sweep_config()))
    return workdir


def test_the_choice_is_planned_without_any_test_set_job(tmp_path: Path) -> None:
    """The selection's whole input closure: training, validation, subsets; nothing that
    generates or scores on the evaluation (test) rows."""
    config = write(tmp_path / "sweep.yaml", sweep_config())
    targets = [
        f"results/selection/{PREFIX.split('/')[0]}/aclsum/{m}/selection.json" for m in ("lora-r2-qv-n4", "fft-n4")
    ]
    jobs = planned_jobs(run_snakemake(tmp_path, "-n", *targets, configfile=config))
    assert jobs["train_adapter"] == 3 and jobs["train_full"] == 3 and jobs["validate_variant"] == 6
    assert not set(jobs) & set(TEST_SET_RULES), jobs


def test_every_candidate_is_validated_and_the_lowest_loss_chosen(sweep_dir: Path) -> None:
    specs = expand_grid(training=sweep_config()["training"], train_sizes=[4])
    swept = swept_methods(specs.values())
    assert set(swept) == {"lora-r2-qv-n4", "fft-n4"}
    for method, rates in swept.items():
        selection = read_result(sweep_dir / f"results/selection/{PREFIX}/{method}/selection.json")["metrics"]
        losses = {}
        for rate, variants in rates.items():
            (variant,) = variants
            validation = read_result(sweep_dir / f"results/adapters/{PREFIX}/{variant.name}/validation.json")
            losses[rate] = validation["metrics"]["mean_loss"]
            assert len(validation["metrics"]["per_example"]) == 4
        assert selection["chosen"]["learning_rate"] == min(losses, key=losses.get)
    lora = read_result(sweep_dir / f"results/selection/{PREFIX}/lora-r2-qv-n4/selection.json")["metrics"]
    # 3.0 wrecks the adapter in its one step: clearly the worst, its interval above the others'.
    rows = {row["learning_rate"]: row for row in lora["candidates"]}
    assert lora["chosen"]["learning_rate"] != 3.0
    assert rows[3.0]["interval"]["low"] > max(rows[r]["interval"]["high"] for r in (1e-6, 1e-3))


def test_only_the_chosen_variants_reach_the_test_set_and_only_after_the_choice(sweep_dir: Path) -> None:
    specs = expand_grid(training=sweep_config()["training"], train_sizes=[4])
    for method in ("lora-r2-qv-n4", "fft-n4"):
        path = sweep_dir / f"results/selection/{PREFIX}/{method}/selection.json"
        chosen = set(read_result(path)["metrics"]["chosen"]["variants"])
        for name, spec in specs.items():
            if spec.method != method:
                continue
            predictions = sweep_dir / f"results/eval/{PREFIX}/{name}/predictions.jsonl"
            assert predictions.exists() == (name in chosen), name
            if name in chosen:  # generated after the choice was written
                assert predictions.stat().st_mtime > path.stat().st_mtime
    page = (sweep_dir / "report.html").read_text()
    section = page.split('<section id="learning-rates">', 1)[1].split("</section>", 1)[0]
    assert "lora-r2-qv-n4" in section and "fft-n4" in section and "<svg" in section and "chosen" in section
    assert "lora-r2-qv-n4 / fft-n4" in section  # LoRA's chosen rate over full fine-tuning's


def test_adding_a_candidate_trains_only_that_candidate(sweep_dir: Path, tmp_path: Path) -> None:
    config = sweep_config()
    config["training"]["lora"]["learning_rate"].append(1.0e-2)
    jobs = planned_jobs(run_snakemake(sweep_dir, "-n", "report.html", configfile=write(tmp_path / "more.yaml", config)))
    assert jobs.get("train_adapter") == 1 and "train_full" not in jobs and jobs.get("validate_variant") == 1
    assert jobs.get("select_learning_rate") == 1  # the LoRA method chooses again; fft keeps its choice


def test_the_tables_hold_every_candidate_and_keep_a_dropped_one(sweep_dir: Path, tmp_path: Path) -> None:
    validation = pd.read_csv(sweep_dir / "results/tables/validation.csv")
    assert len(validation) == 6 and validation["chosen"].sum() == 2  # one chosen rate per method, one seed
    assert set(validation["spec.learning_rate"]) == {1e-6, 1e-3, 3.0, 1e-5, 1e-4}
    # The rate dropped from the config stays on disk and in the tables, marked as not in the config.
    config = sweep_config()
    config["training"]["lora"]["learning_rate"] = [1.0e-6, 1.0e-3]
    run_snakemake(sweep_dir, "--cores", "2", "report.html", configfile=write(tmp_path / "fewer.yaml", config))
    training = pd.read_csv(sweep_dir / "results/tables/training.csv")
    dropped = training[training["spec.learning_rate"] == 3.0]
    assert len(dropped) == 1 and not dropped["in_config"].iloc[0]
    assert (sweep_dir / f"results/adapters/{PREFIX}/{dropped['variant'].iloc[0]}/train.json").is_file()
    assert training[training["spec.learning_rate"] == 1e-3]["in_config"].all()
