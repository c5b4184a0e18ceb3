"""Config validation: every shipped config passes; each bad value is rejected naming its key."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import snakemake_command
from lora_study.core.config import (
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
def test_shipped_configs_are_valid(overlays: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # where snakemake runs: a shipped overlay's data files are relative to it
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
    from lora_study.core.config import canonical

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


# --- how overlays stack: what config.yaml says next to each key, and that it holds ----------

TAGS = ("merges", "replaces", "per task", "per model", "per dataset")
SWITCH_OF_TAG = {"per task": ("task", "name"), "per model": ("model", "source"), "per dataset": ("data", "dataset")}


def documented_rules() -> dict[tuple[str, ...], set[str]]:
    """Key path -> the tags config.yaml writes in the comment after it ([merges], [per task], ...)."""
    rules: dict[tuple[str, ...], set[str]] = {}
    parents: list[str] = []
    for line in (REPO / "config.yaml").read_text().splitlines():
        match = re.match(r"^( *)([A-Za-z_][\w-]*):(.*)$", line)
        if not match:
            continue
        depth = len(match.group(1)) // 2
        parents[depth:] = [match.group(2)]
        comment = match.group(3).split("#", 1)[1] if "#" in match.group(3) else ""
        rules[tuple(parents)] = set(re.findall(r"\[(" + "|".join(TAGS) + r")\]", comment))
    return rules


def tagged(tag: str) -> set[tuple[str, ...]]:
    return {path for path, tags in documented_rules().items() if tag in tags}


def test_config_yaml_says_next_to_each_block_how_an_overlay_changes_it() -> None:
    from lora_study.core.config import REPLACED_KEYS, SWITCHED_KEYS

    rules = documented_rules()

    def blocks(value: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        if not isinstance(value, dict):
            return []
        return [path] * bool(path) + [p for key, item in value.items() for p in blocks(item, (*path, key))]

    untagged = [p for p in blocks(default(), ()) if not rules[p] & {"merges", "replaces"}]
    assert untagged == [], f"config.yaml: write [merges] or [replaces] after {untagged}"
    assert tagged("replaces") == set(REPLACED_KEYS)
    for tag, switch in SWITCH_OF_TAG.items():
        assert tagged(tag) == set(SWITCHED_KEYS[switch]), tag


def owners(path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The switches a key belongs to by config.yaml's tags (on it or on a block above it)."""
    return [s for tag, s in SWITCH_OF_TAG.items() if any(path[: len(key)] == key for key in tagged(tag))]


def written(values: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return DELETE
        values = values[key]
    return values


def check_stacking(files: list[Path]) -> dict[str, Any]:
    """Resolve `files` and check the result against config.yaml's tags, file by file, from the
    files as written: each value is what the last file that may set it wrote (a later file's
    [replaces] block hides it), and a [per task]/[per model]/[per dataset] value comes only from
    a file whose task (model, dataset) in force is the final one."""
    from lora_study.core.config import resolve_files

    resolved = resolve_files(*files)
    raw = [(str(path), yaml.safe_load(path.read_text())) for path in files]
    in_force: list[dict[tuple[str, ...], Any]] = []
    state: dict[tuple[str, ...], Any] = {}
    for _, values in raw:
        state = state | {s: written(values, s) for s in SWITCH_OF_TAG.values() if written(values, s) is not DELETE}
        in_force.append(state)
    final = in_force[-1]
    replaced = tagged("replaces")

    def counts(index: int, path: tuple[str, ...]) -> bool:
        return all(in_force[index].get(switch) == final.get(switch) for switch in owners(path))

    def sets(values: Any, path: tuple[str, ...]) -> bool:
        hides = [path[:n] for n in range(1, len(path)) if path[:n] in replaced]
        return written(values, path) is not DELETE or any(written(values, p) is not DELETE for p in hides)

    for path, origin in resolved.origins.items():
        setters = [i for i, (_, values) in enumerate(raw) if sets(values, path) and counts(i, path)]
        value = written(resolved.config, path)
        if origin in {source for source, _ in raw}:
            index = max(i for i, (source, _) in enumerate(raw) if source == origin)
            assert setters and setters[-1] == index, (path, origin, setters)
            assert value == written(raw[index][1], path), (path, origin)
        else:
            # No file that counts sets it, or the last one replaced a block above it without it.
            assert origin.startswith("default") and (not setters or written(raw[setters[-1]][1], path) is DELETE)
    return resolved.config


SHIPPED_STACKS = [[path.name] for path in sorted((REPO / "configs").glob("*.yaml"))] + [
    ["tiny.yaml", "tiny-classification.yaml"]
]
# What a new user writes on top of a shipped config: settings, their own label set, a task switch.
USER_OVERLAYS: dict[str, dict[str, Any]] = {
    "settings": {
        "training": {"epochs": 5, "lora": {"ranks": [4, 8]}},
        "evaluation": {"batch_size": 2},
        "serving": {"merge": {"tolerance": {"float32": 1e-3}}},
    },
    "own-labels": {
        "data": {"dataset": "commons"},
        "prompt": {"instruction": "Which side of the House?"},
        "task": {"name": "classification", "labels": {"Con": "right", "Lab": "left"}},
    },
    "summarisation-again": {"data": {"dataset": "aclsum"}, "task": {"name": "summarisation"}},
}


@pytest.mark.parametrize("user", USER_OVERLAYS)
@pytest.mark.parametrize("stack", SHIPPED_STACKS, ids=["+".join(stack) for stack in SHIPPED_STACKS])
def test_a_new_users_overlay_on_a_shipped_config_resolves_to_what_it_says(
    tmp_path: Path, stack: list[str], user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # where snakemake runs: a shipped overlay's data files are relative to it
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump(USER_OVERLAYS[user]))
    config = check_stacking([REPO / "config.yaml", *(REPO / "configs" / name for name in stack), mine])
    for path, value in [(p, v) for p, v in leaves(USER_OVERLAYS[user])]:
        assert written(config, path) == value, path
    if "task" in USER_OVERLAYS[user]:
        assert config["task"] | USER_OVERLAYS[user]["task"] == config["task"]  # the block as written, no more


def leaves(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict) and value:
        return [leaf for key, item in value.items() for leaf in leaves(item, (*path, key))]
    return [(path, value)]


def test_an_overlay_replaces_a_label_set(tmp_path: Path) -> None:
    """Before: merged key by key, the user's two labels and the shipped config's two, so a
    four-label classifier scored over two-class data."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(json.dumps({"input": f"text {i}", "reference": ["neg", "pos"][i % 2]}) + "\n" for i in range(8))
    )
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        yaml.safe_dump(
            {
                "data": {"dataset": "local", "local": {"train_file": str(rows), "eval_file": str(rows)}},
                "task": {"name": "classification", "labels": {"pos": "positive", "neg": "negative"}},
                "prompt": {"instruction": "Is this review positive or negative?"},
            }
        )
    )
    shipped = [REPO / "config.yaml", REPO / "configs" / "tiny.yaml", REPO / "configs" / "tiny-classification.yaml"]
    task = load_config(*shipped, mine)["task"]
    assert task["labels"] == {"pos": "positive", "neg": "negative"} and task["positive_label"] is None


def test_switching_a_classification_config_back_to_summarisation_keeps_none_of_its_task_settings(
    tmp_path: Path,
) -> None:
    """Before: the classification overlay's cue, 4 new tokens and party question stayed, silently."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("data:\n  dataset: aclsum\ntask:\n  name: summarisation\n")
    tiny = [REPO / "config.yaml", REPO / "configs" / "tiny.yaml"]
    switched = load_config(*tiny, REPO / "configs" / "tiny-classification.yaml", mine)
    summarisation = load_config(*tiny)
    for block, key in [("prompt", "instruction"), ("prompt", "template"), ("prompt", "cue")] + [
        ("generation", "max_new_tokens"),
        ("training", "max_target_tokens"),
        ("statistics", "metric"),
    ]:
        assert switched[block][key] == summarisation[block][key], key
    assert switched["task"] == summarisation["task"]


def test_a_task_switch_without_an_instruction_for_the_task_is_refused(tmp_path: Path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text("data:\n  dataset: commons\ntask:\n  name: classification\n  labels: {Con: a, Lab: b}\n")
    with pytest.raises(ConfigError, match=r"prompt.instruction: .*config.yaml sets it for task.name 'summarisation'"):
        load_config(REPO / "config.yaml", mine)


def test_the_checker_shows_where_each_value_came_from(capsys: pytest.CaptureFixture[str]) -> None:
    from lora_study.core.config import main

    tiny, classification = REPO / "configs" / "tiny.yaml", REPO / "configs" / "tiny-classification.yaml"
    argv = [str(REPO / "config.yaml"), str(tiny), str(classification), "--config", "report={examples: 3}"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()

    def origin(key: str, value: str) -> str:
        (line,) = [line for line in lines if re.match(rf"^ +{key}: {re.escape(value)} +# ", line)]
        return line.rsplit("# ", 1)[1]

    device = yaml.safe_load(tiny.read_text())["model"]["device"]
    assert origin("device", device) == str(tiny)
    assert origin("examples", "3") == "--config"
    assert origin("cue", repr(yaml.safe_load(classification.read_text())["prompt"]["cue"])) == str(classification)
    assert origin("abstain", "unanswerable") == "default"
    assert origin("max_target_tokens", "8") == "default for classification"
    # tiny.yaml's token budget is summarisation's: shown as not used, with why.
    tokens = yaml.safe_load(tiny.read_text())["generation"]["max_new_tokens"]
    assert f"#   generation.max_new_tokens: {tokens}  ({tiny}, set for task.name 'summarisation')" in lines
    assert lines[-1] == f"valid: {' + '.join(argv[:3])} + --config"


def test_settings_written_several_ways_are_written_one_way() -> None:
    """What rule params see (rules/common.smk), so that a spelling reruns nothing."""
    from lora_study.core.config import normalised

    plain = normalised(validate_config(default(), source="c.yaml"))
    spelt = default()
    spelt["model"]["name"] = model_name({"source": spelt["model"]["source"]})  # the derived name, written out
    spelt["data"]["name"] = spelt["data"]["dataset"]
    spelt["drift"]["forgetting"]["general"]["source"] = "news"  # what `auto` is for aclsum
    spelt["statistics"]["metric"] = None  # the task's own
    assert normalised(validate_config(spelt, source="c.yaml")) == plain


def test_a_bad_config_value_is_blamed_on_config_in_the_dry_run_as_in_the_checker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: the dry run blamed the config files for a `--config` value (and read a
    mapping's values there as text). The same message as `python -m lora_study.core.config`."""
    from lora_study.core.config import main

    tiny = REPO / "configs" / "tiny.yaml"
    entry = "evaluation={batch_size: most}"
    assert main([str(REPO / "config.yaml"), str(tiny), "--config", entry]) == 1
    message = capsys.readouterr().out.strip()
    assert "evaluation.batch_size: 'most' is not valid under any of the given schemas (from --config)" in message
    result = subprocess.run(
        [*snakemake_command(tmp_path, "-n", "report.html", "--config", entry, configfile=tiny)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and message in result.stdout + result.stderr
