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
import functools
import json
import os
import re
import string
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lora_study.core.datasets import (
    DATASET_SPLITS,
    DATASET_TASK,
    GENERAL_SOURCES,
    HUB_DEFAULTS,
    LOCAL_FILE_KEY,
    general_source,
    hub_source,
    resolved_split,
)
from lora_study.core.grid import NAME_PATTERN, expand_grid, group_specs

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "schemas" / "config.schema.yaml"
EMBEDDED_MODEL = "embedded"
EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_LOCAL_PREFIXES = ("./", "../", "/", "~")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the file and the key."""


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def load_config(*paths: str | Path, config_args: Sequence[str] = (), read_data: bool = True) -> dict[str, Any]:
    """Read config files, each overlaid on the ones before as `stack_layers` says, then the
    `--config KEY=VALUE` entries, and validate the result: what the workflow runs with
    (rules/common.smk reads config.yaml, the `--configfile` overlays and `--config` so)."""
    return resolve_files(*paths, config_args=config_args, read_data=read_data).config


def resolve_files(*paths: str | Path, config_args: Sequence[str] = (), read_data: bool = True) -> Resolved:
    """`load_config`, with where each value came from (the checker shows it)."""
    if not paths:
        raise ConfigError("load_config: no config file given")
    layers = [read_layer(path) for path in paths] + config_arg_layers(config_args)
    stacked = stack_layers(layers)
    source = " + ".join(dict.fromkeys(layer.source for layer in layers))  # `--config` once
    config = validate_config(
        stacked.config, source=source, origins=stacked.origins, problems=stacked.problems, read_data=read_data
    )
    origins = {path: stacked.origins.get(path, _default_origin(config, path)) for path in _leaf_paths(config)}
    return Resolved(config=config, origins=origins, unused=stacked.unused, problems=[])


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, strict where it would silently change a file's meaning: a key
    written twice in one mapping is an error (YAML forbids it; PyYAML and so Snakemake keep
    the second block and drop the first), and `1e-3` is a number as YAML 1.2 reads it (YAML
    1.1 wants a dot, `1.0e-3`, and reads `1e-3` as text)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges another mapping in; PyYAML handles it
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # PyYAML's own error for an unhashable key follows
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is written twice in one mapping (first at line {first_line[key] + 1}); "
                    "YAML keeps only the second block, so the first would be lost silently: merge the two",
                    key_node.start_mark,
                )
            first_line[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


# YAML 1.2's exponent numbers without a dot (1e-3, 2E+5), which YAML 1.1 reads as text.
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(path: str | Path) -> Any:
    """One config file's YAML; a syntax error names the file, line and column (Snakemake's own
    message for a bad `--configfile` names neither), and so does a key written twice."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_ConfigLoader)
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: config file not found") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8") from error
    except yaml.YAMLError as error:
        raise ConfigError(_yaml_problem(error, where=str(path))) from error


def _yaml_problem(error: yaml.YAMLError, *, where: str) -> str:
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        where = f"{where}:{mark.line + 1}:{mark.column + 1}"
    problem = getattr(error, "problem", None) or str(error)
    context, start = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and start is not None:
        problem += f" ({context} started at line {start.line + 1}, column {start.column + 1})"
    hint = "; indent with spaces, not tabs" if "\\t" in problem else ""
    return f"{where}: not valid YAML: {problem}{hint}"


# --- how config files stack -------------------------------------------------------
#
# config.yaml first, then each overlay (`--configfile a b`, configs/*.yaml), then `--config`
# entries. A mapping merges key by key into the one below it, except at REPLACED_KEYS, where
# an overlay's mapping replaces the whole one below; a list or a value always replaces. And
# a setting made for one task (model, dataset) does not carry over to another: see
# SWITCHED_KEYS. config.yaml says which rule holds next to each key; tests/test_config.py
# checks that it says what this code does.

KeyPath = tuple[str, ...]

# Mappings an overlay replaces whole: a label set cannot be shrunk by merging, a task block
# merged key by key would keep another task's settings, and the prompt fields are the data
# file's fields, all or none.
REPLACED_KEYS: frozenset[KeyPath] = frozenset(
    {
        ("task",),
        ("task", "labels"),
        ("data", "local", "fields"),
        # A rate, a list of rates or a {low, high, count} range: a new range is never a mix of two.
        ("training", "lora", "learning_rate"),
        ("training", "fft", "learning_rate"),
    }
)

# A switch (left) and the settings that belong to one value of it (right): a config file's
# value for one of these counts only where the file's own value of each switch it belongs to
# (its own, or inherited from the files below it) is the study's final one. So an overlay that
# switches a classification config back to summarisation gets config.yaml's cue and token
# budgets, not the classification file's; where no file of the final task sets one,
# TASK_DEFAULTS (or the schema's default) fills it, and the instruction must be given.
SWITCHED_KEYS: dict[KeyPath, tuple[KeyPath, ...]] = {
    ("task", "name"): (
        ("prompt", "instruction"),
        ("prompt", "template"),
        ("prompt", "cue"),
        ("generation", "max_new_tokens"),
        ("training", "max_target_tokens"),
        ("statistics", "metric"),
        ("data", "local", "fields"),
        ("data", "local", "answers_field"),
    ),
    ("model", "source"): (("model", "name"), ("model", "revision")),
    ("data", "dataset"): (
        # The instruction and template speak of one dataset's texts and fields.
        ("prompt", "instruction"),
        ("prompt", "template"),
        ("data", "name"),
        ("data", "hub_path"),
        ("data", "hub_config"),
        ("data", "train", "split"),
        ("data", "eval", "split"),
    ),
}

# The task-specific settings of the tasks other than summarisation (config.yaml holds
# summarisation's) where no config file of that task sets them: the shipped configs' values.
TASK_DEFAULTS: dict[str, dict[KeyPath, Any]] = {
    "classification": {
        ("prompt", "cue"): "Answer:",
        ("generation", "max_new_tokens"): 4,  # the free answer, kept for its parse rate
        ("training", "max_target_tokens"): 8,  # a label's words and the end marker
        ("statistics", "metric"): None,  # the task's own: accuracy
    },
    "extractive_qa": {
        ("prompt", "cue"): "Answer:",
        ("generation", "max_new_tokens"): 32,  # SQuAD answers are short spans
        ("training", "max_target_tokens"): 48,
        ("statistics", "metric"): None,  # the task's own: f1
    },
}
CONFIG_ARGS_SOURCE = "--config"
SCHEMA_DEFAULT = "default"


@dataclass(frozen=True)
class Layer:
    """One config file's settings (or the `--config` entries), named by where they came from."""

    source: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class Unused:
    """A setting a config file made that the study does not use: made for another value of a
    switch (another task, model or dataset) than the study's."""

    path: KeyPath
    value: Any
    source: str
    switch: KeyPath
    switch_value: Any

    @property
    def why(self) -> str:
        return f"set for {'.'.join(self.switch)} {self.switch_value!r}"


@dataclass
class Resolved:
    """A stacked configuration: the values, where each leaf came from (a file, `--config`,
    `default`), the settings left out as made for another task, and what stacking found wrong."""

    config: dict[str, Any]
    origins: dict[KeyPath, str]
    unused: list[Unused] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_layer(path: str | Path) -> Layer:
    """One config file as a layer: a mapping of settings, or an error naming the file."""
    values = read_yaml(path)
    if values is None:
        # Snakemake refuses it too, before the workflow runs, with "Config file must be given
        # as JSON or YAML with keys at top level." (no file named): say which and why.
        raise ConfigError(
            f"{path}: holds no settings (empty, or only comments); Snakemake refuses such a --configfile "
            "('Config file must be given as JSON or YAML with keys at top level'): leave it out, or write in it "
            "the settings it should change"
        )
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path}: the configuration must be a mapping of keys, got {type(values).__name__}")
    return Layer(source=str(path), values=values)


def config_arg_layers(entries: Sequence[str]) -> list[Layer]:
    """`--config KEY=VALUE` entries as layers named `--config`, each VALUE read as YAML (as in a
    config file: Snakemake reads a mapping's values as text, so `evaluation={batch_size: 2}`
    would hold the string '2'). Snakemake applies them after every config file; so do we."""
    layers = []
    for entry in entries:
        key, equals, text = str(entry).partition("=")
        if not equals or not key:
            raise ConfigError(f"{CONFIG_ARGS_SOURCE} {entry}: not KEY=VALUE")
        try:
            value = yaml.load(text, Loader=_ConfigLoader) if text.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(_yaml_problem(error, where=f"{CONFIG_ARGS_SOURCE} {key}=")) from error
        layers.append(Layer(source=CONFIG_ARGS_SOURCE, values={key: value}))
    return layers


def overlay(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `changes` stacked on it, as an overlay file on the files below it
    (`stack_layers`: mappings merge key by key except at REPLACED_KEYS, lists and values replace,
    and settings made for another task, model or dataset than the result's are left out)."""
    return stack_layers([Layer("base", base), Layer("overlay", changes)]).config


def stack_layers(layers: Sequence[Layer]) -> Resolved:
    """The layers stacked in order (see the comment on REPLACED_KEYS and SWITCHED_KEYS)."""
    switch_values: list[dict[KeyPath, Any]] = []
    state: dict[KeyPath, Any] = {}
    for layer in layers:
        for switch in SWITCHED_KEYS:
            value = _get(layer.values, switch)
            if value is not _MISSING:
                state[switch] = value
        switch_values.append(dict(state))
    final = dict(state)
    stacked = Resolved(config={}, origins={})
    for layer, switches in zip(layers, switch_values, strict=True):
        task = layer.values.get("task")
        if isinstance(task, Mapping) and "name" not in task:
            stacked.problems.append(
                f"task.name: {layer.source} gives a task block without a name; a task block replaces the one below "
                "it whole (config.yaml: [replaces]), so name the task in it too"
            )
        _stack(stacked, layer.values, path=(), source=layer.source, switches=switches, final=final)
    for unused in reversed(stacked.unused):  # the last file that set it says why
        key, switch = ".".join(unused.path), ".".join(unused.switch)
        missing = _get(stacked.config, unused.path) is _MISSING and not _has_default(unused.path, final=final)
        if missing and not any(problem.startswith(f"{key}:") for problem in stacked.problems):
            stacked.problems.append(
                f"{key}: {unused.source} sets it for {switch} {unused.switch_value!r}, but the study's {switch} is "
                f"{final.get(unused.switch)!r}: set {key} in the file that sets {switch}: {final.get(unused.switch)}"
            )
    return stacked


_MISSING = object()


def _get(values: Any, path: KeyPath) -> Any:
    for key in path:
        if not isinstance(values, Mapping) or key not in values:
            return _MISSING
        values = values[key]
    return values


def _switches_of(path: KeyPath) -> list[KeyPath]:
    """The switches `path` (or a mapping above it) belongs to."""
    return [switch for switch, owned in SWITCHED_KEYS.items() if any(path[: len(key)] == key for key in owned)]


def _has_default(path: KeyPath, *, final: Mapping[KeyPath, Any]) -> bool:
    """Whether validation fills `path` when no config file sets it."""
    if path in TASK_DEFAULTS.get(final.get(("task", "name")), {}):
        return True
    parent = _subschema(path[:-1])
    return "default" in parent.get("properties", {}).get(path[-1], {}) or path[-1] not in parent.get("required", ())


def _subschema(path: KeyPath) -> Mapping[str, Any]:
    """The schema of the object at `path` (by `properties`)."""
    schema: Mapping[str, Any] = _schema()
    for key in path:
        schema = schema.get("properties", {}).get(key, {})
    return schema


@functools.cache
def _schema() -> dict[str, Any]:
    """The schema, read once per process (checks consult it per key)."""
    return load_schema()


def _stack(
    stacked: Resolved,
    values: Mapping[str, Any],
    *,
    path: KeyPath,
    source: str,
    switches: Mapping[KeyPath, Any],
    final: Mapping[KeyPath, Any],
) -> None:
    parent = stacked.config
    for part in path:
        parent = parent[part]
    for key, value in values.items():
        here = (*path, key)
        other = [switch for switch in _switches_of(here) if switches.get(switch) != final.get(switch)]
        if other:
            switch = other[0]
            stacked.unused += [
                Unused(path=leaf, value=item, source=source, switch=switch, switch_value=switches.get(switch))
                for leaf, item in _leaves(value, here)
            ]
            continue
        if isinstance(value, Mapping) and here not in REPLACED_KEYS:
            # Merged key by key, also onto nothing: keys inside may belong to another task.
            if not isinstance(parent.get(key), dict):
                parent[key] = {}
                _forget_origins(stacked, here)
            _stack(stacked, value, path=here, source=source, switches=switches, final=final)
            continue
        parent[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
        _forget_origins(stacked, here)
        stacked.origins.update((leaf, source) for leaf, _ in _leaves(value, here))


def _forget_origins(stacked: Resolved, path: KeyPath) -> None:
    for known in [p for p in stacked.origins if p[: len(path)] == path]:
        del stacked.origins[known]


def _leaves(value: Any, path: KeyPath) -> list[tuple[KeyPath, Any]]:
    """(path, value) of every leaf under `path`: a value, a list or an empty mapping."""
    if isinstance(value, Mapping) and value:
        return [leaf for key, item in value.items() for leaf in _leaves(item, (*path, key))]
    return [(path, value)]


def _leaf_paths(config: Mapping[str, Any]) -> list[KeyPath]:
    return [path for path, _ in _leaves(config, ())]


def _default_origin(config: Mapping[str, Any], path: KeyPath) -> str:
    task = config.get("task", {}).get("name")
    return f"default for {task}" if path in TASK_DEFAULTS.get(task, {}) else SCHEMA_DEFAULT


def validate_config(
    config: Any,
    *,
    source: str,
    base_dir: str | Path = ".",
    origins: Mapping[KeyPath, str] | None = None,
    problems: Sequence[str] = (),
    read_data: bool = True,
) -> dict[str, Any]:
    """Return a validated copy of `config` with defaults filled in (a task's own, then the schema's).

    Raises ConfigError listing every problem, each as `key.path: message`, under a line naming
    `source`; with `origins` (leaf path -> the file or `--config` that set it, from
    `stack_layers`), each problem also names where its key was set. `problems`: what stacking
    the files found. Relative local paths are resolved against `base_dir` (the workflow's working
    directory); `read_data`: also read a local dataset's files for what the data jobs would refuse.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source}: the configuration must be a mapping of keys, got {type(config).__name__}")
    schema = _schema()  # read once per process
    config = copy.deepcopy(dict(config))
    _fill_task_defaults(config)
    _fill_defaults(config, schema)
    # JSON Schema's `integer` accepts 4.0, which would then reach names (fft-n4.0-s1) and
    # slicing, and rule params compare 2 and 2.0 as different: each number is made the type
    # its place in the schema holds (under oneOf too).
    config = _numbers_as_schema_types(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
    found = list(problems)
    for error in validator.iter_errors(config):
        missing = [f"{_key(error.absolute_path)}.{key}".lstrip(".") for key in _missing_keys(error)]
        if any(problem.startswith(f"{key}:") for key in missing for problem in problems):
            continue  # stacking said why it is missing
        found.append(f"{_key(error.absolute_path)}: {error.message}")
    if not found:
        found = _semantic_problems(config, base_dir=Path(base_dir), read_data=read_data)
    if found:
        # Stacking's own problems name their files already.
        blamed = {problem: "" if problem in problems else _blame(problem, origins=origins) for problem in found}
        lines = [f"  {problem}{blamed[problem]}" for problem in sorted(found)]
        raise ConfigError(f"invalid configuration in {source}:\n" + "\n".join(lines))
    return config


def _missing_keys(error: jsonschema.ValidationError) -> list[str]:
    if error.validator == "required" and isinstance(error.instance, Mapping):
        return [key for key in error.validator_value if key not in error.instance]
    return []


# The dotted key a problem's message starts with ("data.eval.size: ...", "data.dataset commons holds ...").
_PROBLEM_KEY = re.compile(r"^[A-Za-z_][\w-]*(?:\.[\w-]+)*")


def _blame(problem: str, *, origins: Mapping[KeyPath, str] | None) -> str:
    """` (from FILE)`: where the problem's key was set (every file that set a leaf under it), so
    that a `--config` value is blamed on `--config` and an overlay's on the overlay."""
    match = _PROBLEM_KEY.match(problem)
    top = problem.startswith(f"{_key(())}:")
    if origins is None or not (match or top):
        return ""
    path = tuple(match.group().split(".")) if match else ()
    extra = re.search(r"\('([^']+)' was unexpected\)", problem)  # additionalProperties: the key that is
    if extra:
        path = (*path, extra.group(1))
    while path:
        sources = sorted({source for leaf, source in origins.items() if leaf[: len(path)] == path})
        if sources:
            return f" (from {', '.join(sources)})"
        path = path[:-1]
    return ""


def _fill_task_defaults(config: dict[str, Any]) -> None:
    """Fill the task's own defaults (TASK_DEFAULTS) where no config file of the task set them."""
    task = config.get("task")
    if not isinstance(task, Mapping):
        return
    for path, value in TASK_DEFAULTS.get(task.get("name"), {}).items():
        parent = _get(config, path[:-1])
        if isinstance(parent, dict) and path[-1] not in parent:
            parent[path[-1]] = copy.deepcopy(value)


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


def path_name_problem(name: str) -> str | None:
    """Why `name` cannot be a folder name in result paths, or None. Beyond the wildcard
    pattern: no `..` (a parent folder to some tools) and no trailing dot."""
    if not re.fullmatch(NAME_PATTERN, name):
        return "use letters, digits and . _ + - only, starting with a letter or digit (no spaces or slashes)"
    if ".." in name or name.endswith("."):
        return "it must not contain '..' or end in '.'"
    return None


def local_hub_folder(data: Mapping[str, Any]) -> str | None:
    """`data.hub_path` when the dataset is a hub dataset read from a local folder in the
    hub's layout (a path, not a hub id), else None."""
    if data["dataset"] not in HUB_DEFAULTS:
        return None
    path, _ = hub_source(data)
    return path if path.startswith(_LOCAL_PREFIXES) else None


def dataset_task_problem(data: Mapping[str, Any], task_name: str) -> str | None:
    """Why `data.dataset` cannot serve the task `task_name`, or None (a local dataset serves any)."""
    dataset = data["dataset"]
    task = DATASET_TASK.get(dataset)
    if task is None or task == task_name:
        return None
    fitting = [name for name, its_task in DATASET_TASK.items() if its_task == task_name] + ["local"]
    return (
        f"data.dataset {dataset} holds {task} examples but task.name is {task_name}; "
        f"set task.name: {task} or choose another dataset ({task_name}: {', '.join(fitting)})"
    )


def split_settings(data: Mapping[str, Any], *, part: str) -> dict[str, Any]:
    """The slice of the `data` block that decides which rows `part`'s split holds, in the data
    block's own shape: the dataset, the resolved split, and where the rows come from (hub
    folder or local file and fields). A rule's params: a setting the split ignores (the other
    part's local file, `hub_path` for aclsum) reruns nothing, and `split: null` equals its default
    (so does a null hub path or config: the resolved ones are given)."""
    dataset, split = data["dataset"], resolved_split(data, part=part)
    settings: dict[str, Any] = {"dataset": dataset, part: {"split": split}}
    if dataset in HUB_DEFAULTS:
        hub_path, hub_config = hub_source(data)
        settings |= {"hub_path": hub_path, "hub_config": hub_config}
    if dataset == "local":
        settings["local"] = _local_settings(data["local"], split=split)
    return canonical(settings)


def _local_settings(local: Mapping[str, Any], *, split: str) -> dict[str, Any]:
    """The `data.local` keys that decide a local split's rows. `fields` and `answers_field`
    only when set, so a summarisation study's params (and files) stay as they were; with
    answers, `reference_field` is not read, so it is left out."""
    file_key = LOCAL_FILE_KEY[split]
    settings = {file_key: local[file_key], "id_field": local["id_field"], "input_field": local["input_field"]}
    if local.get("fields"):
        settings["fields"] = dict(local["fields"])
    if local.get("answers_field"):
        settings["answers_field"] = local["answers_field"]
    else:
        settings["reference_field"] = local["reference_field"]
    return settings


def subset_settings(data: Mapping[str, Any], *, part: str) -> dict[str, Any]:
    """Exactly what changes `part`'s subset file: its split's rows (`split_settings`) and the
    draw's seed (and, for eval, its size; a train size is in the file's name)."""
    settings = split_settings(data, part=part)
    settings[part]["seed"] = data[part]["seed"]
    if part in ("eval", "validation"):
        settings[part]["size"] = data[part]["size"]
    return canonical(settings)


def split_files(data: Mapping[str, Any], *, part: str) -> list[str]:
    """The files `part`'s split is read from when they are the user's (a local data file, or
    every file of a local copy of the hub dataset, hidden ones left out): the jobs that read
    them declare them as inputs, so editing one reruns what depends on it. Installed packages
    and the hub cache are not the user's files: their version is recorded instead."""
    if data["dataset"] == "local":
        return [str(Path(data["local"][LOCAL_FILE_KEY[resolved_split(data, part=part)]]).expanduser())]
    folder = local_hub_folder(data)
    return _files_under(folder) if folder else []


def model_files(model: Mapping[str, Any]) -> list[str]:
    """The files of a local model folder (hidden ones left out), which `prepare_model` reads:
    its inputs, so replacing the weights there prepares the model again. None for the
    embedded model (an installed package) and a hub id (its revision is a param)."""
    return _files_under(model["source"]) if model_kind(model["source"]) == "local" else []


def _files_under(folder: str) -> list[str]:
    found = []
    for root, folders, names in os.walk(Path(folder).expanduser()):
        folders[:] = [name for name in folders if not name.startswith(".")]  # .git, .cache: not the data
        found += [str(Path(root) / name) for name in names if not name.startswith(".")]
    return sorted(found)


def without_ignored(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` without the settings it documents as ignored in this configuration, so that
    rule params (and so reruns) never depend on them: `model.revision` unless the model is a
    hub id, sampling settings under greedy decoding, the hub dataset's location unless the
    dataset is a hub dataset (and there the resolved one: null equals the default written
    out), `data.local` unless it is local; and set to their defaults: `prompt.cue` under a chat
    template, and the task settings of the other tasks (labels, positive label, abstention answer)."""
    config = copy.deepcopy(dict(config))
    if model_kind(config["model"]["source"]) != "hub":
        config["model"].pop("revision", None)
    if config["generation"]["greedy"]:
        for key in ("temperature", "top_p", "seed"):
            config["generation"].pop(key, None)
    if config["data"]["dataset"] in HUB_DEFAULTS:
        config["data"]["hub_path"], config["data"]["hub_config"] = hub_source(config["data"])
    else:
        for key in ("hub_path", "hub_config"):
            config["data"].pop(key, None)
    if config["data"]["dataset"] != "local":
        config["data"].pop("local", None)
    # The prompt and task blocks are params of nearly every job: their ignored settings are set
    # to the schema's defaults rather than dropped, so that studies run before keep their params.
    if config["prompt"]["chat_template"]:
        _pin_default(config, ("prompt", "cue"))  # the chat template marks where the answer begins
    if config["task"]["name"] != "classification":
        _pin_default(config, ("task", "labels"))
        _pin_default(config, ("task", "positive_label"))
    if config["task"]["name"] != "extractive_qa":
        _pin_default(config, ("task", "abstain"))
    return config


def _pin_default(config: dict[str, Any], path: KeyPath) -> None:
    """Set the setting at `path` to the schema's default."""
    parent = _get(config, path[:-1])
    parent[path[-1]] = copy.deepcopy(_subschema(path)["default"])


def normalised(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` (validated) with each setting that can be written several ways written one way,
    so that rule params, and so reruns, follow what a setting does, not how it is spelt: a name
    equal to the one derived (`model.name` of the model's own name, `data.name` of the dataset's)
    is null, the general text `auto` stands for is `auto`, a null metric is the task's own, and
    label keys are text (YAML reads `0:` as a number; the data's labels are compared as text).
    Whole numbers are normalised by `validate_config`."""
    config = copy.deepcopy(dict(config))
    model, data = config["model"], config["data"]
    if model.get("name") and model["name"] == model_name({**model, "name": None}):
        model["name"] = None
    if data.get("name") == data["dataset"]:
        data["name"] = None
    general = config["drift"]["forgetting"]["general"]
    if general["source"] == general_source(dataset=data["dataset"], source="auto"):
        general["source"] = "auto"
    task = config["task"]
    if config["statistics"].get("metric") is None:
        config["statistics"]["metric"] = TASK_DEFAULT_METRIC[task["name"]]
    if task.get("labels"):
        task["labels"] = {str(label): words for label, words in task["labels"].items()}
    return config


def workflow_config(*paths: str | Path, config_args: Sequence[str] = (), read_data: bool = True) -> dict[str, Any]:
    """The configuration the rules read (rules/common.smk): the files and `--config` entries
    stacked and validated (`load_config`), each setting spelt one way (`normalised`), the
    settings it ignores dropped (`without_ignored`) and keys sorted (`canonical`), so that rule
    params, and so reruns, change only with what a setting does."""
    loaded = load_config(*paths, config_args=config_args, read_data=read_data)
    return canonical(without_ignored(normalised(loaded)))


def _semantic_problems(config: Mapping[str, Any], *, base_dir: Path, read_data: bool = True) -> list[str]:
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
    if kind != "invalid":
        name, given = model_name(config["model"]), bool(config["model"].get("name"))
        why = path_name_problem(name)
        if why and given:
            problems.append(f"model.name: {name!r} cannot name a results folder: {why}")
        elif why:
            problems.append(
                f"model.source: the name derived from it, {name!r}, cannot name a results folder: {why}; "
                "set model.name to a short name such as `my-model`"
            )
    problems += _brace_problems(config)
    evaluation = config["evaluation"]
    if evaluation.get("compile") is True and evaluation.get("cache") != "static":
        problems.append(
            "evaluation.compile: true needs evaluation.cache: static (transformers compiles a static-cache "
            "generation only)"
        )
    data = config["data"]
    for part in ("train", "eval", "validation"):
        split, available = data[part].get("split"), DATASET_SPLITS[data["dataset"]][2]
        if split and split not in available:
            problems.append(
                f"data.{part}.split: unknown split {split!r} for dataset {data['dataset']!r}; "
                f"available: {', '.join(available)}"
            )
    for key in ("lora", "fft"):
        rates = config["training"][key]["learning_rate"]
        if isinstance(rates, Mapping) and not rates["low"] < rates["high"]:
            problems.append(
                f"training.{key}.learning_rate: a range needs low < high (got low {rates['low']}, high {rates['high']})"
            )
    name_problem = path_name_problem(dataset_name(data))
    if name_problem:
        problems.append(f"data.name: {dataset_name(data)!r} cannot name a results folder: {name_problem}")
    if data["dataset"] == "local":
        local = data.get("local") or {}
        for key in ("train_file", "eval_file"):
            value = local.get(key)
            if not value:
                problems.append(f"data.local.{key}: required when data.dataset is `local`")
            elif not _resolve(value, base_dir).is_file():
                problems.append(f"data.local.{key}: file not found: {_resolve(value, base_dir)}")
    hub_folder = local_hub_folder(data)
    if hub_folder and not _resolve(hub_folder, base_dir).is_dir():
        problems.append(f"data.hub_path: folder not found: {_resolve(hub_folder, base_dir)}")
    problems += _quantisation_problems(config)
    problems += _cpu_float16_problems(config)
    problems += _grid_problems(config)
    problems += _task_problems(config)
    problems += _text_problems(config)
    problems += _local_id_problems(config, base_dir=base_dir)
    if read_data and not problems:
        problems += _local_data_problems(config, base_dir=base_dir)
    return problems


# Each task's per-example metrics and the one statistics use when `statistics.metric` is null.
# Here, not in the task modules, because the config check runs where only snakemake is
# installed (the rules layer loads grid and config alone); the tasks take them from here.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "summarisation": ("rouge1", "rouge2", "rougeL", "rougeLsum"),
    "classification": ("accuracy",),
    "extractive_qa": ("f1", "exact"),
}
TASK_DEFAULT_METRIC = {"summarisation": "rougeL", "classification": "accuracy", "extractive_qa": "f1"}
TEMPLATE_INPUT = "input"  # prompt.template's placeholder for the long text, the only part that may be cut


def template_names(template: str) -> list[str]:
    """The placeholders of a prompt template, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def template_problem(template: str) -> str | None:
    """Why `template` cannot be a prompt template, or None: it must hold `{input}` once, and
    only plain `{name}` placeholders (no formats, conversions, indexing), each once."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        return f"{template!r} is not a valid template ({error}); write literal braces as {{{{ and }}}}"
    names = [name for _, name, _, _ in parsed if name is not None]
    if names.count(TEMPLATE_INPUT) != 1:
        return f"{template!r} must contain {{{TEMPLATE_INPUT}}} exactly once (the long text, the part that may be cut)"
    for _, name, spec, conversion in parsed:
        if name is not None and (not name.isidentifier() or spec or conversion):
            return f"{template!r}: placeholder {{{name}}} must be a plain field name such as {{question}}"
    if len(set(names)) != len(names):
        return f"{template!r} repeats a placeholder"
    return None


# The fixed fields each dataset's examples carry (`required`: a prompt without them asks
# nothing: the second sentence of a pair, the question about a context).
DATASET_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "glue": {"required": ("sentence2",), "available": ("sentence2",)},
    "squad_v2": {"required": ("question",), "available": ("question",)},
    "commons": {"required": (), "available": ("agenda",)},
}


# The classes of the built-in classification datasets (glue: the MRPC config), as the data module
# names them: task.labels must name exactly these.
DATASET_LABELS: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("commons", None): ("Con", "Lab"),
    ("glue", "mrpc"): ("equivalent", "not_equivalent"),
}


def _task_problems(config: Mapping[str, Any]) -> list[str]:
    """The task block against the prompt template, the dataset and the statistics."""
    task, prompt, data = config["task"], config["prompt"], config["data"]
    problems = []
    mismatch = dataset_task_problem(data, task["name"])
    if mismatch:
        problems.append(mismatch)
    if (
        task["name"] == "extractive_qa"
        and data["dataset"] == "local"
        and not (data.get("local") or {}).get("answers_field")
    ):
        problems.append("data.local.answers_field: extractive_qa needs the field holding each question's gold answers")
    template = prompt.get("template", "{input}")
    problem = template_problem(template)
    if problem:
        problems.append(f"prompt.template: {problem}")
    else:
        used = [name for name in template_names(template) if name != "input"]
        if data["dataset"] == "local":
            known = {"required": (), "available": tuple((data.get("local") or {}).get("fields") or {})}
        else:
            known = DATASET_FIELDS.get(data["dataset"], {"required": (), "available": ()})
        for name in used:
            if name not in known["available"]:
                have = ", ".join(f"{{{f}}}" for f in known["available"]) or "none (only {input})"
                problems.append(f"prompt.template: {{{name}}} is not a field of data.dataset {data['dataset']}: {have}")
        for name in known["required"]:
            if name not in used:
                problems.append(
                    f"prompt.template: {data['dataset']} examples need {{{name}}} in the template, or the prompt "
                    f"never shows it, e.g. {template!r} -> add {{{name}}}"
                )
    if task["name"] == "classification":
        labels = task.get("labels") or {}
        classes = DATASET_LABELS.get(
            (data["dataset"], hub_source(data)[1] if data["dataset"] in HUB_DEFAULTS else None)
        )
        if classes and len(labels) >= 2 and sorted(map(str, labels)) != sorted(classes):
            problems.append(
                f"task.labels: {data['dataset']} examples are labelled {', '.join(classes)}, but task.labels has "
                f"{', '.join(map(str, labels))}: give words for exactly its labels"
            )
        if len(labels) < 2:
            problems.append("task.labels: classification needs at least two labels, as label: words to answer with")
        positive = task.get("positive_label")
        if positive is not None and positive not in {str(label) for label in labels}:  # YAML may key labels 0, 1
            problems.append(
                f"task.positive_label: {positive!r} is not one of task.labels ({', '.join(map(str, labels))})"
            )
    metric, metrics = config["statistics"].get("metric"), TASK_METRICS[task["name"]]
    if metric is not None and metric not in metrics:
        problems.append(
            f"statistics.metric: {metric!r} is not a metric of the {task['name']} task; use one of "
            f"{', '.join(metrics)} (or null for {TASK_DEFAULT_METRIC[task['name']]})"
        )
    return problems


def label_words_key(words: str) -> str:
    """What a label's words come to when an answer is matched against them: lower case, the
    punctuation a space, whitespace collapsed (classification compares answers this way, so two
    labels whose words come to the same key could never be told apart)."""
    return " ".join(re.sub(r"[^\w\s]", " ", words.lower()).split())


def _text_problems(config: Mapping[str, Any]) -> list[str]:
    """Text the model is given or trained to answer with, blank or meaningless: refused here
    rather than by the first model job."""
    task, problems = config["task"], []
    if not config["prompt"]["instruction"].strip():
        problems.append("prompt.instruction: holds only whitespace; write the task's instruction")
    if task["name"] == "classification":
        labels = task.get("labels") or {}
        keys: dict[str, list[str]] = {}
        for label, words in labels.items():
            keys.setdefault(label_words_key(words), []).append(str(label))
            if not label_words_key(words):
                problems.append(
                    f"task.labels.{label}: the words {words!r} are blank or punctuation only, and answers are "
                    "matched after dropping both: give the words the model should answer with"
                )
        for key, same in keys.items():
            if key and len(same) > 1:
                problems.append(
                    f"task.labels: labels {', '.join(same)} answer with the same words ({key!r} once case and "
                    "punctuation are dropped), so no answer could tell them apart: give each its own words"
                )
        as_text = [str(label) for label in labels]
        if len(set(as_text)) != len(as_text):
            problems.append(
                f"task.labels: {list(labels)} names one label twice (as a number and as text): the data's labels "
                "are compared as text"
            )
    if task["name"] == "extractive_qa":
        from lora_study.tasks.squad_v2 import normalize_answer  # standard library only

        if not normalize_answer(task["abstain"]):
            problems.append(
                f"task.abstain: {task['abstain']!r} is nothing once SQuAD's normalisation (lower case, no "
                "punctuation, no a/an/the) is applied, so abstaining could not be told from an empty answer: use "
                "words, e.g. unanswerable"
            )
    return problems


def _local_id_problems(config: Mapping[str, Any], *, base_dir: Path) -> list[str]:
    """Without `id_field`, a local row is named by its file's name and line (data.jsonl:3): two
    different files with the same name would give rows of each the other's ids, and training
    rows would be dropped as overlapping the evaluation set."""
    data = config["data"]
    local = data.get("local") or {}
    if data["dataset"] != "local" or local.get("id_field") or not (local.get("train_file") and local.get("eval_file")):
        return []
    train, evals = (_resolve(local[key], base_dir) for key in ("train_file", "eval_file"))
    if train == evals or train.name != evals.name:
        return []
    return [
        f"data.local.id_field: null names each row by its file's name and line ({train.name}:1, ...), but "
        f"data.local.train_file ({train}) and eval_file ({evals}) are two files named {train.name}: their rows' "
        "ids would collide and training rows be dropped as evaluation rows; set data.local.id_field to a field "
        "of unique ids, or rename one of the files"
    ]


def _local_data_problems(config: Mapping[str, Any], *, base_dir: Path) -> list[str]:
    """A local dataset's files, read as the data jobs read them, with what the task needs of
    each row: a summarisation reference is text (a JSON number is a mistake there), a
    classification label is one of task.labels. What a data job or the first model job would
    stop on, said before any job starts."""
    data, task = config["data"], config["task"]
    if data["dataset"] != "local":
        return []
    # Here, not at the top: the data module needs numpy, which only a local dataset's check reads.
    from lora_study.core.data import DataError, load_split

    local = {**data["local"], **{key: str(_resolve(data["local"][key], base_dir)) for key in LOCAL_FILE_KEY.values()}}
    problems, seen = [], set()
    for split, key in LOCAL_FILE_KEY.items():
        if split == "eval" and local["eval_file"] == local["train_file"]:
            continue  # read once
        try:
            examples = load_split(data={**data, "local": local}, split=split, task=task["name"])
        except DataError as error:
            problems.append(f"data.local.{key}: {error}")
            continue
        seen |= {example.reference for example in examples}
        if task["name"] == "classification":
            known = {str(label) for label in task.get("labels") or {}}
            unknown: dict[str, int] = {}
            for example in examples:
                if example.reference not in known:
                    unknown[example.reference] = unknown.get(example.reference, 0) + 1
            if unknown:
                shown = ", ".join(f"{label!r} ({count} rows)" for label, count in list(unknown.items())[:5])
                problems.append(
                    f"data.local.{key}: {local[key]}: labels {shown} are not in task.labels "
                    f"({', '.join(sorted(known))}); add them to task.labels or drop those rows"
                )
    never = sorted({str(label) for label in task.get("labels") or {}} - seen)
    if task["name"] == "classification" and never and not problems:
        problems.append(
            f"task.labels: {', '.join(never)} never occur in the data files, whose labels are "
            f"{', '.join(sorted(seen))}: the model would be scored over classes the data does not have; drop them"
        )
    return problems


def _brace_problems(config: Mapping[str, Any]) -> list[str]:
    """The user's files that jobs declare as inputs must have no brace in their path:
    Snakemake reads `{name}` in an input path as a wildcard, and has no escape for it."""
    data, general = config["data"], config["drift"]["forgetting"]["general"]["source"]
    paths = []
    if model_kind(config["model"]["source"]) == "local":
        paths += [
            ("model.source", config["model"]["source"]),
            *(("model.source", f) for f in model_files(config["model"])),
        ]
    if data["dataset"] == "local":
        paths += [(f"data.local.{key}", data["local"].get(key) or "") for key in ("train_file", "eval_file")]
    hub_folder = local_hub_folder(data)
    if hub_folder:
        paths += [("data.hub_path", hub_folder), *(("data.hub_path", f) for f in split_files(data, part="eval"))]
    if general not in ("auto", *GENERAL_SOURCES):
        paths.append(("drift.forgetting.general.source", general))
    problems = []
    for key, path in paths:
        if ("{" in path or "}" in path) and not any(problem.startswith(f"{key}:") for problem in problems):
            problems.append(
                f"{key}: {path!r} has a brace in its path, which Snakemake reads as a wildcard in an input file; "
                "rename the file or folder, or link to it from a path without braces"
            )
    return problems


def _grid_problems(config: Mapping[str, Any]) -> list[str]:
    """Statistics pairs and the primary question name two different groups of the grid."""
    trained = expand_grid(training=config["training"], train_sizes=config["data"]["train"]["sizes"])
    # A group is a method's short name (lora-r8-qv-n100): it names the variants at whatever rate a sweep chooses.
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


def _numbers_as_schema_types(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` with each number the type its place in the schema holds: a whole-number float
    where an integer is allowed becomes that integer (4.0 -> 4), an integer where only numbers
    are becomes a float (2 -> 2.0), under oneOf/anyOf branches too. Anything else, 4.5 where an
    integer is wanted included, is left for the schema to judge."""
    branches = _branches(schema)
    types = {kind for branch in branches for kind in _types(branch)}
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer() and "integer" in types:
        return int(value)
    if isinstance(value, int) and "number" in types and "integer" not in types:
        return float(value)
    if isinstance(value, dict):
        return {key: _numbers_as_schema_types(item, _property_schema(branches, key)) for key, item in value.items()}
    if isinstance(value, list):
        items = [branch["items"] for branch in branches if isinstance(branch.get("items"), Mapping)]
        return [_numbers_as_schema_types(item, {"anyOf": items}) for item in value]
    return value


def _branches(schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """`schema` and every schema it combines with oneOf, anyOf or allOf, recursively."""
    found = [schema]
    for key in ("oneOf", "anyOf", "allOf"):
        for branch in schema.get(key, ()):
            found += _branches(branch)
    return found


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type", ())
    return {kind} if isinstance(kind, str) else set(kind)


def _property_schema(branches: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any]:
    """The schemas a mapping's `key` is checked against, in any branch."""
    found = []
    for branch in branches:
        if key in branch.get("properties", {}):
            found.append(branch["properties"][key])
        elif isinstance(branch.get("additionalProperties"), Mapping):
            found.append(branch["additionalProperties"])
    return {"anyOf": found}


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


def show_resolved(resolved: Resolved) -> str:
    """The resolved configuration as YAML, each value followed by the file (or `--config`, or
    `default`) it came from, then the settings left out as made for another task, model or
    dataset (where they differ from what the study uses)."""
    lines: list[tuple[str, str]] = []
    _show(resolved.config, resolved.origins, path=(), lines=lines)
    column = min(max(len(text) for text, _ in lines), 62)
    shown = [f"{text:<{column}}  # {origin}" if origin else text for text, origin in lines]
    unused = [item for item in resolved.unused if _get(resolved.config, item.path) != item.value]
    if unused:
        shown.append("# Not used: set for another task, model or dataset than the study's")
        shown += [f"#   {'.'.join(item.path)}: {_flow(item.value)}  ({item.source}, {item.why})" for item in unused]
    return "\n".join(shown)


def _show(
    value: Mapping[str, Any], origins: Mapping[KeyPath, str], *, path: KeyPath, lines: list[tuple[str, str]]
) -> None:
    indent = "  " * len(path)
    order = list(_subschema(path).get("properties", {}))  # the schema's order, as config.yaml's
    for key in sorted(value, key=lambda key: order.index(key) if key in order else len(order)):
        item, here = value[key], (*path, key)
        if isinstance(item, Mapping) and item:
            lines.append((f"{indent}{key}:", ""))
            _show(item, origins, path=here, lines=lines)
        else:
            lines.append((f"{indent}{key}: {_flow(item)}", origins.get(here, SCHEMA_DEFAULT)))


def _flow(value: Any) -> str:
    """`value` as one line of YAML."""
    if isinstance(value, str) and "\n" in value:
        return json.dumps(value, ensure_ascii=False)  # a double-quoted YAML string, \n kept on its line
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31, allow_unicode=True, sort_keys=False)
    return text.strip().removesuffix("\n...").strip()


def main(argv: Sequence[str]) -> int:
    """`python -m lora_study.core.config config.yaml [overlay.yaml ...] [--config KEY=VALUE ...]`: check
    config files as the workflow does (the same messages as `snakemake -n` with `--configfile`
    and `--config`), and show the resolved configuration with the file each value came from.
    Snakemake reads a `--configfile` before the workflow runs and refuses an empty file, a YAML
    syntax error or a non-UTF-8 file without naming its line (or the file): this names both."""
    argv = list(argv)
    paths, config_args = (
        (argv[: argv.index("--config")], argv[argv.index("--config") + 1 :]) if "--config" in argv else (argv, [])
    )
    try:
        resolved = resolve_files(*paths, config_args=config_args)
    except ConfigError as error:
        print(error)
        return 1
    print(show_resolved(resolved))
    print(f"valid: {' + '.join([*map(str, paths), *([CONFIG_ARGS_SOURCE] if config_args else [])])}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
