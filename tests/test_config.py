"""Config validation: every shipped config passes; each bad value is rejected naming its key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lora_study.config import (
    ConfigError,
    dataset_name,
    load_config,
    model_kind,
    model_name,
    overlay,
    validate_config,
    without_ignored,
)

REPO = Path(__file__).resolve().parents[1]


def default() -> dict[str, Any]:
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.mark.parametrize(
    "overlays", [[], *([str(p.relative_to(REPO))] for p in sorted((REPO / "configs").glob("*.yaml")))]
)
def test_shipped_configs_are_valid(overlays: list[str]) -> None:
    config = load_config(REPO / "config.yaml", *(REPO / path for path in overlays))
    assert config["model"]["revision"]  # defaults filled in


def test_overlays_merge_key_by_key_and_replace_lists(tmp_path: Path) -> None:
    overlay_file = tmp_path / "overlay.yaml"
    overlay_file.write_text("training:\n  lora:\n    ranks: [4]\n  epochs: 5\n")
    config = load_config(REPO / "config.yaml", overlay_file)
    default_config = load_config(REPO / "config.yaml")
    assert config["training"]["lora"]["ranks"] == [4] and config["training"]["epochs"] == 5
    # Keys the overlay leaves out keep config.yaml's values, one level down too.
    assert config["training"]["lora"]["targets"] == default_config["training"]["lora"]["targets"]
    assert config["data"] == default_config["data"]
    assert overlay({"a": {"b": [1, 2], "c": 1}}, {"a": {"b": [3]}}) == {"a": {"b": [3], "c": 1}}


def test_overlays_are_overlays(tmp_path: Path) -> None:
    """configs/*.yaml hold only what differs from config.yaml: no key repeats its value."""
    base = default()

    def repeated(layer: dict[str, Any], under: dict[str, Any], path: str) -> list[str]:
        found = []
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(under.get(key), dict):
                found += repeated(value, under[key], f"{path}{key}.")
            elif key in under and under[key] == value:
                found.append(f"{path}{key}")
        return found

    for path in sorted((REPO / "configs").glob("*.yaml")):
        assert repeated(yaml.safe_load(path.read_text()), base, "") == [], path.name


def test_an_overlay_error_names_every_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  epochs: zero\n")
    with pytest.raises(ConfigError, match=r"config.yaml \+ .*bad.yaml") as error:
        load_config(REPO / "config.yaml", bad)
    assert "training.epochs" in str(error.value)
    bad.write_text("training: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2:1: not valid YAML: .* started at line 1, column 11"):
        load_config(REPO / "config.yaml", bad)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("statistics.pairs", [["lora-r8-qv-n100", "nope"]], "unknown variant group(s) nope"),
        ("statistics.pairs", [["fft-n100", "fft-n100"]], "pairs a variant group with itself"),
        ("statistics.primary", ["base", "base"], "pairs a variant group with itself"),
        ("statistics.primary", ["base", "lora-r16-qv-n100"], "unknown variant group(s) lora-r16-qv-n100"),
    ],
)
def test_grid_checks_live_in_the_config_module(key: str, value: Any, message: str) -> None:
    """Scripts and tests that call validate_config get the checks the workflow makes."""
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        validate_config(edit(key, value), source="my-config.yaml")
    assert key in str(error.value) and "my-config.yaml" in str(error.value)
    validate_config(edit("statistics.pairs", [["base", "lora-r32-qv-n100"]]), source="fine.yaml")


def test_defaults_are_filled_without_changing_given_values() -> None:
    raw = default()
    del raw["generation"]["temperature"]
    config = validate_config(raw, source="x.yaml")
    assert config["generation"]["temperature"] == 1.0
    assert config["data"]["train"]["sizes"] == raw["data"]["train"]["sizes"]


def edit(path: str, value: Any) -> dict[str, Any]:
    config = default()
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return config


DELETE = object()

BAD = [
    ("data.eval.size", -5, "data.eval.size: -5 is less than the minimum of 1"),
    ("data.train.sizes", [100, 0], "data.train.sizes.1: 0 is less than the minimum of 1"),
    ("data.train.sizes", [], "data.train.sizes: [] should be non-empty"),
    ("data.dataset", "imagenet", "data.dataset: 'imagenet' is not one of"),
    ("model.device", "gpu", "model.device: 'gpu' is not one of ['auto', 'cpu', 'cuda']"),
    ("model.dtype", "int3", "model.dtype: 'int3' is not one of"),
    ("model.source", "not a model", "model.source: 'not a model' is neither"),
    ("model.source", "./no/such/model", "model.source: no Hugging Face model folder at"),
    ("generation.max_new_tokens", 0, "generation.max_new_tokens: 0 is less than the minimum of 1"),
    ("generation.greedy", "yes", "generation.greedy: 'yes' is not of type 'boolean'"),
    ("prompt.max_input_tokens", "512", "prompt.max_input_tokens: '512' is not of type 'integer'"),
    ("prompt.instruction", DELETE, "prompt: 'instruction' is a required property"),
    ("evaluation.batch_sise", 8, "evaluation: Additional properties are not allowed ('batch_sise' was unexpected)"),
    ("evaluation.batch_size", "most", "evaluation.batch_size: 'most' is not valid under any of the given schemas"),
    ("evaluation.cache", "paged", "evaluation.cache: 'paged' is not one of ['prefilled', 'dynamic', 'static']"),
    ("evaluation.compile", True, "evaluation.compile: true needs evaluation.cache: static"),
    ("quantisation.precisions", ["int3"], "quantisation.precisions.0: 'int3' is not one of"),
    ("quantisation.precisions", ["int8", "int8"], "quantisation.precisions: ['int8', 'int8'] has non-unique elements"),
    ("quantisation.latency.new_tokens", 1, "quantisation.latency.new_tokens: 1 is less than the minimum of 2"),
    ("quantisation.latency.examples", 999, "quantisation.latency.examples: 999 is more than data.eval.size (20)"),
    ("quantisation.int4.quant_type", "int4", "quantisation.int4.quant_type: 'int4' is not one of ['nf4', 'fp4']"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_value_names_the_key(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(edit(key, value), source="my-config.yaml")
    assert "my-config.yaml" in str(error.value)
    assert message in str(error.value)


def test_missing_local_data_file_names_key_and_path(tmp_path: Path) -> None:
    config = edit("data.dataset", "local")
    config["data"]["local"] = {"train_file": str(tmp_path / "train.jsonl"), "eval_file": None}
    with pytest.raises(ConfigError) as error:
        validate_config(config, source="c.yaml")
    message = str(error.value)
    assert f"data.local.train_file: file not found: {tmp_path / 'train.jsonl'}" in message
    assert "data.local.eval_file: required when data.dataset is `local`" in message


def test_every_problem_is_reported_at_once() -> None:
    config = edit("model.device", "gpu")
    config["data"]["eval"]["size"] = 0
    with pytest.raises(ConfigError) as error:
        validate_config(config, source="c.yaml")
    assert "model.device" in str(error.value) and "data.eval.size" in str(error.value)


def test_int8_dynamic_is_refused_on_a_gpu() -> None:
    config = edit("model.device", "cuda")
    config["quantisation"]["precisions"] = ["fp16", "int8-dynamic"]
    with pytest.raises(ConfigError, match="quantisation.precisions: int8-dynamic runs on the CPU only"):
        validate_config(config, source="c.yaml")


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        validate_config(["a"], source="c.yaml")


def test_model_kinds_and_names() -> None:
    assert model_kind("embedded") == "embedded"
    assert model_kind("TinyLlama/TinyLlama-1.1B-Chat-v1.0") == "hub"
    assert model_kind("./models/mine") == "local" and model_kind("/abs/mine") == "local"
    assert model_kind("no spaces/allowed here") == "invalid"
    assert model_name({"source": "embedded"}) == "smollm2-135m-instruct"
    assert model_name({"source": "TinyLlama/TinyLlama-1.1B-Chat-v1.0"}) == "TinyLlama--TinyLlama-1.1B-Chat-v1.0"
    assert model_name({"source": "/data/models/llama-7b/"}) == "llama-7b"
    assert model_name({"source": "embedded", "name": "mine"}) == "mine"
    assert dataset_name({"dataset": "aclsum", "name": None}) == "aclsum"


@pytest.mark.parametrize(("key", "value", "message"), [BAD[0], BAD[3], BAD[4]])
def test_snakemake_rejects_bad_config_before_any_job(tmp_path: Path, key: str, value: Any, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(edit(key, value)))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--cores",
            "1",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(tmp_path),
            "--configfile",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output and str(bad) in output
    assert "Job stats" not in output  # failed while parsing: no job was planned, none ran


def test_canonical_sorts_keys_recursively_and_keeps_values() -> None:
    from lora_study.config import canonical

    value = {"b": {"y": 1, "x": [{"d": 2, "c": 3}]}, "a": None}
    result = canonical(value)
    assert list(result) == ["a", "b"] and list(result["b"]) == ["x", "y"] and list(result["b"]["x"][0]) == ["c", "d"]
    assert result == value


def test_settings_documented_as_ignored_are_dropped_and_the_others_kept() -> None:
    """Rule params come from this, so changing an ignored setting reruns nothing."""
    config = validate_config(default(), source="c.yaml")
    kept = without_ignored(config)
    assert "revision" not in kept["model"] and kept["model"]["source"] == "embedded"
    assert kept["generation"] == {"greedy": True, "max_new_tokens": config["generation"]["max_new_tokens"]}
    assert not {"hub_path", "hub_config", "local"} & set(kept["data"])
    assert config["model"]["revision"] == "main", "the validated config itself is left alone"
    hub = edit("model.source", "TinyLlama/TinyLlama-1.1B-Chat-v1.0")
    hub["generation"]["greedy"] = False
    hub["data"]["dataset"] = "cnn_dailymail"
    kept = without_ignored(validate_config(hub, source="c.yaml"))
    assert kept["model"]["revision"] == "main" and kept["generation"]["temperature"] == 1.0
    assert kept["data"]["hub_path"] == "abisee/cnn_dailymail" and "local" not in kept["data"]
