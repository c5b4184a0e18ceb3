"""A change reruns exactly what depends on it: dry runs after a config or data change, on a
workflow marked as built (conftest.mark_plan_done: no job runs, so these take seconds)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import mark_plan_done, planned_jobs, run_snakemake, tiny_config

# The tiny config's trained variants: LoRA at ranks 2 and 4, and full fine-tuning, at size 4.
TRAINED_PER_SIZE = {"train_adapter": 2, "train_full": 1}
# What a new training size adds for its three variants, whatever else it reruns.
NEW_SIZE_VARIANTS = {
    "make_train_subset": 1,
    **TRAINED_PER_SIZE,
    "generate_variant_predictions": 3,
    "score_predictions": 3,
    "measure_drift": 3,
    "measure_weight_drift": 3,
    **{"merge_adapter": 2, "serve_variant": 2},  # each LoRA variant: merged, then served merged and unmerged
}
# Jobs that read every variant's results: rerun by any new or changed variant.
ACROSS_VARIANTS = {
    "record_subsets": 1,
    "compare_variants": 1,
    "summarise_drift": 1,
    "serve_multi_adapter": 1,
    "summarise_serving": 1,
    "build_tables": 1,
    "build_report": 1,
}
# What a change to how predictions are generated reruns: every generating job and what reads
# their predictions.
GENERATION_RERUNS = {
    "generate_predictions": 1,
    "generate_quant_predictions": 2,  # full takes the base evaluation's predictions
    "reuse_base_predictions": 1,
    "generate_variant_predictions": 3,
    "score_predictions": 7,
    "compare_variants": 1,
    "summarise_drift": 1,
    "summarise_serving": 1,  # it reads the comparisons (Study 4's quality leg)
    "build_tables": 1,
    "build_report": 1,
}
# Every serving job of the tiny config (two LoRA variants).
SERVING_JOBS = {"serve_base": 1, "serve_variant": 2, "serve_multi_adapter": 1}


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def built_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny config's workflow, marked as built (once per module; each test edits a copy)."""
    workdir = tmp_path_factory.mktemp("built-tiny") / "work"
    workdir.mkdir()
    mark_plan_done(workdir, write_config(workdir.parent / "config.yaml", tiny_config()))
    return workdir


def copy_of(workdir: Path, tmp_path: Path) -> Path:
    """A copy with every time stamp kept (shutil.copytree copies with copy2 and copystat)."""
    copied = tmp_path / "work"
    shutil.copytree(workdir, copied, symlinks=True)
    return copied


def planned_after(workdir: Path, config: dict[str, Any]) -> dict[str, int]:
    return planned_jobs(
        run_snakemake(workdir, "-n", "report.html", configfile=write_config(workdir.parent / "changed.yaml", config))
    )


def test_the_copy_of_a_built_workflow_is_built(built_tiny: Path, tmp_path: Path) -> None:
    assert planned_after(copy_of(built_tiny, tmp_path), tiny_config()) == {}


def test_adding_a_smaller_training_size_runs_only_its_own_jobs(built_tiny: Path, tmp_path: Path) -> None:
    """Before the subsets were split per file: 48 jobs (eval.jsonl rewritten, so the base
    evaluation, every quantisation job and the unchanged variants again)."""
    config = tiny_config()
    config["data"]["train"]["sizes"] = [2, 4]
    assert planned_after(copy_of(built_tiny, tmp_path), config) == NEW_SIZE_VARIANTS | ACROSS_VARIANTS


def test_adding_a_larger_training_size_also_redraws_the_texts_that_avoid_training_texts(
    built_tiny: Path, tmp_path: Path
) -> None:
    """The drift prompts and held-out texts leave out every training text, so a larger set
    changes them (and so the drift measures of every variant); nothing that reads only the
    evaluation set reruns, and no unchanged variant is trained or evaluated again."""
    config = tiny_config()
    config["data"]["train"]["sizes"] = [4, 8]
    jobs = planned_after(copy_of(built_tiny, tmp_path), config)
    assert jobs == NEW_SIZE_VARIANTS | ACROSS_VARIANTS | {
        "make_drift_prompts": 1,
        "make_heldout_text": 1,
        "measure_base_features": 1,
        "measure_drift": 6,  # the three new variants and the three with new prompts
    }


def test_model_revision_of_the_embedded_model_reruns_nothing(built_tiny: Path, tmp_path: Path) -> None:
    """config.yaml documents `model.revision` as ignored unless the model is a hub id (before: 32 jobs)."""
    config = tiny_config()
    config["model"]["revision"] = "some-branch"
    assert planned_after(copy_of(built_tiny, tmp_path), config) == {}


def test_sampling_settings_under_greedy_decoding_rerun_nothing(built_tiny: Path, tmp_path: Path) -> None:
    """Greedy decoding ignores temperature, top_p and the sampling seed (before: 17 jobs)."""
    config = tiny_config()
    assert config["generation"]["greedy"] is True
    config["generation"].update(temperature=0.5, top_p=0.9, seed=3)
    assert planned_after(copy_of(built_tiny, tmp_path), config) == {}


def test_temperature_reruns_generation_when_sampling(tmp_path: Path) -> None:
    config = tiny_config()
    config["generation"]["greedy"] = False
    workdir = tmp_path / "work"
    workdir.mkdir()
    mark_plan_done(workdir, write_config(tmp_path / "config.yaml", config))
    config["generation"]["temperature"] = 0.5
    assert planned_after(workdir, config) == GENERATION_RERUNS


def test_a_serving_setting_reruns_only_the_serving_jobs_and_the_report(built_tiny: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["serving"]["new_tokens"] = 5
    assert planned_after(copy_of(built_tiny, tmp_path), config) == SERVING_JOBS | {
        "summarise_serving": 1,
        "build_tables": 1,
        "build_report": 1,
    }


def test_the_overhead_limit_reruns_only_the_serving_summary_and_the_report(built_tiny: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["serving"]["max_overhead"] = 0.1
    assert planned_after(copy_of(built_tiny, tmp_path), config) == {
        "summarise_serving": 1,
        "build_tables": 1,
        "build_report": 1,
    }


def test_the_merge_tolerance_reruns_the_merges_and_what_serves_them(built_tiny: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["serving"]["merge"]["tolerance"]["float32"] = 2e-3
    assert planned_after(copy_of(built_tiny, tmp_path), config) == {
        "merge_adapter": 2,
        "serve_variant": 2,  # the merged export changed
        "serve_multi_adapter": 1,
        "summarise_serving": 1,
        "build_tables": 1,
        "build_report": 1,
    }


def test_serving_disabled_builds_no_serving_file(built_tiny: Path, tmp_path: Path) -> None:
    config = tiny_config()
    config["serving"]["enabled"] = False
    # Only the report changes: its serving inputs are gone.
    assert planned_after(copy_of(built_tiny, tmp_path), config) == {"build_tables": 1, "build_report": 1}


def edit_later(path: Path, text: str) -> None:
    """Rewrite `path` with a time stamp clearly after everything built so far."""
    path.write_text(text)
    later = time.time() + 10
    os.utime(path, (later, later))


def local_rows(prefix: str, n: int) -> str:
    return "".join(
        json.dumps({"id": f"{prefix}{i}", "input": f"{prefix} text {i}.", "reference": f"{prefix} summary {i}."}) + "\n"
        for i in range(n)
    )


@pytest.fixture(scope="module")
def built_local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The tiny config on local train and eval files, marked as built."""
    root = tmp_path_factory.mktemp("built-local")
    data = root / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(local_rows("t", 30))
    (data / "eval.jsonl").write_text(local_rows("e", 30))
    config = tiny_config()
    config["data"].update(
        dataset="local",
        local={"train_file": str(data / "train.jsonl"), "eval_file": str(data / "eval.jsonl"), "id_field": "id"},
    )
    workdir = root / "work"
    workdir.mkdir()
    mark_plan_done(workdir, write_config(root / "config.yaml", config))
    return workdir, config


def test_an_edited_local_train_file_reruns_what_reads_the_training_sets(
    built_local: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """Before the data files were inputs: nothing, and the old subsets were used."""
    workdir, config = built_local
    train = Path(config["data"]["local"]["train_file"])
    original = train.read_text()
    try:
        edit_later(train, original + local_rows("new", 1))
        jobs = planned_after(copy_of(workdir, tmp_path), config)
    finally:
        train.write_text(original)
    # Every variant retrains; the evaluation set, and so the base model's and the quantised
    # model's runs, stay.
    assert jobs == {
        "make_train_subset": 1,
        **TRAINED_PER_SIZE,
        "generate_variant_predictions": 3,
        "score_predictions": 3,
        "measure_weight_drift": 3,
        "make_drift_prompts": 1,
        "make_heldout_text": 1,
        "measure_base_features": 1,
        "measure_drift": 3,
        "merge_adapter": 2,
        "serve_variant": 2,
        **ACROSS_VARIANTS,
    }


def test_an_edited_local_eval_file_reruns_everything_that_reads_data(
    built_local: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    workdir, config = built_local
    evals = Path(config["data"]["local"]["eval_file"])
    original = evals.read_text()
    try:
        edit_later(evals, original + local_rows("new", 1))
        jobs = planned_after(copy_of(workdir, tmp_path), config)
    finally:
        evals.write_text(original)
    assert jobs["make_eval_subset"] == 1 and jobs["generate_predictions"] == 1 and jobs["measure_latency"] == 3
    # Only the jobs that read no data stay: the model, its parameter counts, the general text.
    assert not {"prepare_model", "count_adapter_parameters", "make_general_text"} & set(jobs)


def test_an_edited_file_of_a_local_hub_copy_reruns_the_subsets(tmp_path: Path) -> None:
    """cnn_dailymail from a local copy in the hub's layout: its files are inputs (hidden ones,
    such as a clone's .git, are not)."""
    hub = tmp_path / "cnn"
    (hub / "3.0.0").mkdir(parents=True)
    (hub / "3.0.0" / "validation-00000-of-00001.parquet").write_bytes(b"v1")
    (hub / ".git").mkdir()
    (hub / ".git" / "index").write_bytes(b"x")
    config = copy.deepcopy(tiny_config())
    config["data"].update(dataset="cnn_dailymail", hub_path=str(hub))
    workdir = tmp_path / "work"
    workdir.mkdir()
    mark_plan_done(workdir, write_config(tmp_path / "config.yaml", config))
    edit_later(hub / ".git" / "index", "y")
    assert planned_after(workdir, config) == {}
    edit_later(hub / "3.0.0" / "validation-00000-of-00001.parquet", "v2")
    jobs = planned_after(workdir, config)
    assert {"make_eval_subset", "make_train_subset", "make_heldout_text", "make_drift_prompts"} <= set(jobs)


def test_a_changed_file_of_a_local_model_folder_prepares_the_model_again(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    config = tiny_config()
    config["model"]["source"] = str(folder)
    workdir = tmp_path / "work"
    workdir.mkdir()
    mark_plan_done(workdir, write_config(tmp_path / "config.yaml", config))
    edit_later(folder / "model.safetensors", "other weights")
    jobs = planned_after(workdir, config)
    assert jobs["prepare_model"] == 1 and jobs["train_full"] == 1
    assert not {"make_eval_subset", "make_train_subset"} & set(jobs), "the data does not depend on the model"


def test_an_evaluation_speed_setting_reruns_generation_but_no_merge(built_tiny: Path, tmp_path: Path) -> None:
    """The merge's logit check has its own batch, so evaluation.batch_size reruns the jobs that
    generate (their files record it), never the merges or what serves them."""
    config = tiny_config()
    config["evaluation"]["batch_size"] = 3
    assert planned_after(copy_of(built_tiny, tmp_path), config) == GENERATION_RERUNS


def set_key(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node = config
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return config


# A setting written another way that means the same, and what each reran before (the tiny
# config's built workflow): each must plan nothing.
SAME_MEANING = {
    # A default written out: the embedded model by the name it already has (31 jobs), the
    # dataset by its own name, `auto`'s general text by name, the task's own metric by null.
    "model-name-derived": {"model.name": "smollm2-135m-instruct"},
    "data-name-the-dataset": {"data.name": "aclsum"},
    "general-text-auto-by-name": {"drift.forgetting.general.source": "news"},
    "metric-null-is-the-tasks-own": {"statistics.metric": None},
    # Whole-number floats anywhere, and integers where numbers are wanted.
    "batch-size-under-oneOf": {"evaluation.batch_size": 2.0},
    "integer-weight-decay": {"training.weight_decay": 0},
    "float-alpha-ratio": {"training.lora.alpha_ratio": 2.0},
    # Settings documented as ignored here: the cue under a chat template, another task's settings.
    "cue-under-a-chat-template": {"prompt.cue": "Answer:"},
    "another-tasks-settings": {
        "task.labels": {"a": "yes", "b": "no"},
        "task.positive_label": "a",
        "task.abstain": "n/a",
    },
}


@pytest.mark.parametrize("changes", SAME_MEANING.values(), ids=SAME_MEANING)
def test_a_setting_written_another_way_that_means_the_same_reruns_nothing(
    built_tiny: Path, tmp_path: Path, changes: dict[str, Any]
) -> None:
    config = tiny_config()
    for path, value in changes.items():
        set_key(config, path, value)
    assert planned_after(copy_of(built_tiny, tmp_path), config) == {}


def test_a_number_in_exponent_form_reruns_nothing(built_tiny: Path, tmp_path: Path) -> None:
    """`1e-2` is 0.01 (YAML 1.2): before, PyYAML read it as text and the dry run stopped."""
    text = yaml.safe_dump(tiny_config())
    spelt = text.replace("float32: 0.01\n", "float32: 1e-2\n")
    assert spelt != text, "the tiny config's float32 merge tolerance is 0.01"
    workdir = copy_of(built_tiny, tmp_path)
    configfile = workdir.parent / "changed.yaml"
    configfile.write_text(spelt)
    assert planned_jobs(run_snakemake(workdir, "-n", "report.html", configfile=configfile)) == {}
