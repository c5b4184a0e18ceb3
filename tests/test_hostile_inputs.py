"""Hostile inputs, each answered with a clear error (what, where, what to do) or correctly
accepted: config values, config files, data files and the workflow's own parsing. Unit-level
checks and dry runs only, so the suite runs in seconds."""

from __future__ import annotations

import codecs
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, run_snakemake, tiny_config
from lora_study.core.config import ConfigError, load_config, model_name, validate_config
from lora_study.core.config import main as config_main
from lora_study.core.data import DataError, general_texts, load_split
from lora_study.core.grid import expand_grid

# --- config values ----------------------------------------------------------------


def edited(changes: dict[str, Any]) -> dict[str, Any]:
    """config.yaml with dotted keys set."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in changes.items():
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[last] = value
    return config


def get(config: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        config = config[part]
    return config


# Whole-number floats where the schema wants an integer are that integer (JSON Schema accepts
# 4.0 as an integer; before, it reached names such as fft-n4.0-s1 and slicing).
WHOLE_NUMBERS = [
    ("data.eval.size", 4.0, 4),
    ("data.eval.seed", 42.0, 42),
    ("data.train.sizes", [100.0, 4], [100, 4]),
    ("training.seeds", [1.0, 2.0], [1, 2]),
    ("training.lora.ranks", [8.0], [8]),
    ("training.epochs", 2.0, 2),
    ("drift.examples", 100.0, 100),  # type [integer, null]
    ("quantisation.latency.examples", 4.0, 4),
    ("evaluation.batch_size", 2.0, 2),  # oneOf [integer, `all`]: before, 2.0 was kept and reran every generation
    ("serving.batch_sizes", [1.0, 2.0], [1, 2]),
]


@pytest.mark.parametrize(("key", "value", "expected"), WHOLE_NUMBERS, ids=[k for k, _, _ in WHOLE_NUMBERS])
def test_whole_number_floats_become_integers(key: str, value: Any, expected: Any) -> None:
    got = get(validate_config(edited({key: value}), source="c.yaml"), key)
    assert got == expected
    assert all(type(v) is int for v in got) if isinstance(got, list) else type(got) is int


def test_floats_stay_floats_where_the_schema_wants_a_number() -> None:
    config = validate_config(edited({"generation.temperature": 2.0, "training.lora.alpha_ratio": 2.0}), source="c")
    assert (
        type(config["generation"]["temperature"]) is float and type(config["training"]["lora"]["alpha_ratio"]) is float
    )


@pytest.mark.parametrize(
    ("key", "value"), [("training.weight_decay", 0), ("training.lora.alpha_ratio", 2), ("training.lora.dropout", 0)]
)
def test_an_integer_where_the_schema_wants_a_number_is_that_float(key: str, value: int) -> None:
    """`0` and `0.0` are one setting: before, rule params told them apart and reran the jobs."""
    got = get(validate_config(edited({key: value}), source="c.yaml"), key)
    assert got == value and type(got) is float


REJECTED = [
    # Not whole: rejected, naming the key.
    ({"data.eval.size": 4.5}, "data.eval.size: 4.5 is not of type 'integer'"),
    ({"training.lora.ranks": [8, 2.5]}, "training.lora.ranks.1: 2.5 is not of type 'integer'"),
    ({"training.seeds": [True]}, "training.seeds.0: True is not of type 'integer'"),
    (
        {"data.train.split": "dev"},
        "data.train.split: unknown split 'dev' for dataset 'aclsum'; available: train, val, test",
    ),
    ({"data.eval.split": "validation"}, "data.eval.split: unknown split 'validation'"),
    # A variant paired with itself (rejected before this suite; kept here with its kin).
    ({"statistics.pairs": [["fft-n100", "fft-n100"]]}, "pairs a variant group with itself"),
    ({"model.name": "m.."}, "model.name: 'm..' cannot name a results folder: it must not contain '..'"),
    ({"data.name": "x."}, "data.name: 'x.' cannot name a results folder"),
    # Text that is there but says nothing (an empty instruction was refused, a blank one was not).
    ({"prompt.instruction": " \n\t "}, "prompt.instruction: holds only whitespace"),
    # A threshold the metric can never reach (metrics lie in [0, 1]) is a check that cannot fail.
    ({"statistics.max_quality_gap": 1.0}, "statistics.max_quality_gap: 1.0 is greater than or equal to the maximum"),
]


def classification(labels: dict[Any, str], **task: Any) -> dict[str, Any]:
    """Changes making config.yaml a classification study of the commons speeches."""
    return {
        "data.dataset": "commons",
        "prompt.instruction": "Which party?",
        "task": {"name": "classification", "labels": labels, **task},
        "statistics.metric": None,
    }


# Label words and abstention answers a model job would stop on (or, worse, score): before,
# each passed the dry run.
REJECTED += [
    (classification({"Con": "Yes", "Lab": "yes!"}), "task.labels: labels Con, Lab answer with the same words ('yes'"),
    (classification({"Con": "Tory", "Lab": "   "}), "task.labels.Lab: the words '   ' are blank or punctuation only"),
    (classification({"Con": "Tory", "Lab": "?!"}), "task.labels.Lab: the words '?!' are blank or punctuation only"),
    (classification({0: "no", "0": "yes"}), "names one label twice (as a number and as text)"),
    (
        {
            "data.dataset": "squad_v2",
            "prompt.template": "{input} {question}",
            "task": {"name": "extractive_qa", "abstain": "The."},
            "statistics.metric": None,
        },
        "task.abstain: 'The.' is nothing once SQuAD's normalisation",
    ),
]


@pytest.mark.parametrize(("changes", "message"), REJECTED, ids=[str(c) for c, _ in REJECTED])
def test_bad_config_values_are_rejected_naming_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(edited(changes), source="my.yaml")
    assert message in str(error.value) and "my.yaml" in str(error.value)


@pytest.mark.parametrize("folder", ["my model", "weights..", "models.", "ünïcode"])
def test_a_local_model_folder_without_a_usable_name_asks_for_model_name(tmp_path: Path, folder: str) -> None:
    """Before: a cryptic MissingInputException (the wildcard pattern rejected the path)."""
    source = tmp_path / folder
    source.mkdir()
    (source / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"model.source: the name derived from it, .* set model.name"):
        validate_config(edited({"model.source": str(source)}), source="c.yaml")
    config = validate_config(edited({"model.source": str(source), "model.name": "mine"}), source="c.yaml")
    assert model_name(config["model"]) == "mine"


def test_braces_in_the_instruction_are_kept_as_written() -> None:
    instruction = "Summarize {x} and {{y}} for {dataset}"
    config = validate_config(edited({"prompt.instruction": instruction}), source="c.yaml")
    assert config["prompt"]["instruction"] == instruction


# --- config files -----------------------------------------------------------------

BAD_FILES = [
    ("model:\n  device: [cpu\n", r"bad.yaml:3:1: not valid YAML: .*started at line 2, column 11"),
    ("model:\n\tdevice: cpu\n", r"bad.yaml:2:1: not valid YAML: .*'\\t'.*indent with spaces, not tabs"),
    ("model: {device: cpu\n", r"bad.yaml:2:1: not valid YAML"),
    (b"model:\n  source: \xff\n", r"bad.yaml: not UTF-8 text .*save it as UTF-8"),
    ("- a list\n", r"bad.yaml: the configuration must be a mapping of keys, got list"),
    # A key written twice: YAML forbids it, PyYAML (and so Snakemake) silently kept the second block.
    (
        "model:\n  device: cpu\ntraining:\n  epochs: 1\nmodel:\n  dtype: float32\n",
        r"bad.yaml:5:1: not valid YAML: key 'model' is written twice in one mapping \(first at line 1\)",
    ),
    (
        "training:\n  lora:\n    ranks: [4]\n    ranks: [8]\n",
        r"bad.yaml:4:5: not valid YAML: key 'ranks' is written twice in one mapping \(first at line 3\)",
    ),
    # Empty or comment-only: Snakemake refuses it naming no file; the checker said it was valid.
    ("", r"bad.yaml: holds no settings \(empty, or only comments\)"),
    ("# only a comment\n\n", r"bad.yaml: holds no settings"),
    # A task block replaces the one below it whole, so it must say which task it is.
    ("task:\n  labels: {a: yes, b: no}\n", r"task.name: .*bad.yaml gives a task block without a name"),
]
BAD_FILE_IDS = ["unclosed", "tab", "flow", "not-utf8", "list", "duplicate", "nested-duplicate", "empty", "comments"]


@pytest.mark.parametrize(("content", "message"), BAD_FILES, ids=[*BAD_FILE_IDS, "task-without-name"])
def test_a_bad_config_file_names_the_file_and_line(tmp_path: Path, content: str | bytes, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError, match=message):
        load_config(REPO / "config.yaml", bad)


def test_a_number_in_exponent_form_is_a_number(tmp_path: Path) -> None:
    """YAML 1.1 (PyYAML, Snakemake) reads `1e-3` as text, which the schema then refused; YAML 1.2
    and every other reader of numbers read it as 0.001, as the user means."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("serving:\n  merge:\n    tolerance:\n      float32: 1e-3\n      float16: 5E-1\n")
    tolerance = load_config(REPO / "config.yaml", overlay)["serving"]["merge"]["tolerance"]
    assert tolerance["float32"] == 0.001 and tolerance["float16"] == 0.5
    overlay.write_text("serving:\n  merge:\n    tolerance:\n      float32: '1e-3'\n")  # quoted: text, as written
    with pytest.raises(ConfigError, match="serving.merge.tolerance.float32: '1e-3' is not of type 'number'"):
        load_config(REPO / "config.yaml", overlay)


def test_config_values_are_read_as_a_config_file_and_blamed_on_config(tmp_path: Path) -> None:
    """`--config evaluation={batch_size: 3}`: Snakemake reads a mapping's values as text ('3'),
    and a bad value was blamed on the config files."""
    tiny = REPO / "configs" / "tiny.yaml"
    config = load_config(REPO / "config.yaml", tiny, config_args=["evaluation={batch_size: 3}"])
    assert config["evaluation"]["batch_size"] == 3 and config["evaluation"]["cache"] == "prefilled"  # merged
    with pytest.raises(ConfigError) as error:
        load_config(REPO / "config.yaml", tiny, config_args=["evaluation={batch_size: most}"])
    (line,) = [line for line in str(error.value).splitlines() if "evaluation.batch_size" in line]
    assert line.endswith("(from --config)") and "tiny.yaml" not in line


# --- data files -------------------------------------------------------------------


def local_data(path: Path, **local: Any) -> dict[str, Any]:
    return {
        "dataset": "local",
        "local": {
            "train_file": str(path),
            "eval_file": str(path),
            "id_field": None,
            "input_field": "input",
            "reference_field": "reference",
        }
        | local,
        "train": {"split": None, "sizes": [1], "seed": 1},
        "eval": {"split": None, "size": 1, "seed": 1},
    }


def row(ident: str, text: str = "some text") -> str:
    return json.dumps({"id": ident, "input": text, "reference": "a summary"}) + "\n"


BAD_DATA = [
    (
        "non-utf8",
        row("a").encode() + row("b").encode() + b'{"id": "c", "input": "caf\xe9"}\n',
        {},
        r"data.jsonl:3: not UTF-8 text \(byte 0xe9 at offset \d+: invalid continuation byte\); save the file as UTF-8",
    ),
    (
        "lone-surrogate",
        row("a") + '{"id": "b", "input": "x \\ud800 y", "reference": "r"}\n',
        {},
        r"data.jsonl: row 2: field 'input': holds a lone surrogate '\\ud800' at character 2",
    ),
    (
        "surrogate-id",
        '{"id": "\\udfff", "input": "x", "reference": "r"}\n',
        {"id_field": "id"},
        r"row 1: field 'id': holds a lone surrogate",
    ),
    (
        "duplicate-ids",
        row("a") + row("b") + row("a") + row("b") + row("c"),
        {"id_field": "id"},
        r"data.jsonl: 2 id\(s\) of field 'id' \(data.local.id_field\) repeat: 'a' at rows 1, 3; 'b' at rows 2, 4; ids must be unique",
    ),
    (
        "duplicate-ids-mixed-types",
        '{"id": 1, "input": "x", "reference": "r"}\n{"id": "1", "input": "y", "reference": "r"}\n',
        {"id_field": "id"},
        r"repeat: '1' at rows 1, 2",
    ),
    (
        "missing-field",
        row("a") + '{"id": "b", "input": "x"}\n',
        {},
        r"data.jsonl: row 2: no field 'reference' \(data.local.reference_field\)",
    ),
    (
        "missing-id",
        row("a") + '{"input": "x", "reference": "r"}\n',
        {"id_field": "id"},
        r"row 2: no field 'id' \(data.local.id_field\)",
    ),
    ("empty-input", '{"input": "   ", "reference": "r"}\n', {}, r"row 1: field 'input' is empty or not a string"),
    ("number-input", '{"input": 3, "reference": "r"}\n', {}, r"row 1: field 'input' is empty or not a string"),
    ("empty-file", "", {}, r"data.jsonl: no rows \(data.local.train_file\)"),
    ("blank-lines", "\n  \n\n", {}, r"data.jsonl: no rows"),
    ("empty-array", "[]", {}, r"data.jsonl: no rows"),
    ("not-an-object", "[" + row("a") + ", [1, 2]]", {}, r"data.jsonl: row 2: not a JSON object"),
    ("broken-json", row("a") + '{"id": "b", \n', {}, r"data.jsonl:2: not valid JSON"),
]


@pytest.mark.parametrize(("content", "local", "message"), [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA])
def test_a_bad_local_data_file_names_the_file_row_and_problem(
    tmp_path: Path, content: str | bytes, local: dict[str, Any], message: str
) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    with pytest.raises(DataError, match=message):
        load_split(data=local_data(path, **local), split="train")


GOOD_DATA = [
    # A byte-order mark, as some editors write.
    ("bom", codecs.BOM_UTF8 + (row("a") + row("b")).encode(), ["some text", "some text"]),
    # U+2028 is allowed raw inside a JSON string: one row, not two.
    (
        "line-separator",
        (json.dumps({"input": "one\u2028two", "reference": "r"}, ensure_ascii=False) + "\n").encode(),
        ["one\u2028two"],
    ),
    ("crlf", (row("a") + row("b")).replace("\n", "\r\n").encode(), ["some text", "some text"]),
    ("escaped-pair", b'{"input": "emoji \\ud83d\\ude00", "reference": "r"}\n', ["emoji \U0001f600"]),
    ("braces", row("a", "{dataset} and {{x}}").encode(), ["{dataset} and {{x}}"]),
]


@pytest.mark.parametrize(("content", "inputs"), [c[1:] for c in GOOD_DATA], ids=[c[0] for c in GOOD_DATA])
def test_unusual_but_valid_data_files_are_read_as_written(tmp_path: Path, content: bytes, inputs: list[str]) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    assert [example.input for example in load_split(data=local_data(path), split="train")] == inputs


def test_a_bad_general_text_file_names_the_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "general.jsonl"
    path.write_text('{"text": "fine"}\n{"text": "bad \\udc80"}\n')
    with pytest.raises(DataError, match=r"general.jsonl: row 2: field 'text': holds a lone surrogate"):
        general_texts(source=str(path), size=1, seed=0)
    path.write_bytes(b'{"text": "fine"}\n{"text": "\x80"}\n')
    with pytest.raises(DataError, match=r"general.jsonl:2: not UTF-8 text"):
        general_texts(source=str(path), size=1, seed=0)


def test_two_data_files_of_one_name_without_an_id_field_are_refused_before_any_job(tmp_path: Path) -> None:
    """Rows are named by file name and line without `id_field`: before, the two files' ids
    collided and training rows were silently dropped as evaluation rows."""
    files = {}
    for part in ("train", "eval"):
        (tmp_path / part).mkdir()
        files[part] = tmp_path / part / "data.jsonl"
        files[part].write_text("".join(row(f"{part}{i}", f"{part} text {i}") for i in range(3)))
    local = {"train_file": str(files["train"]), "eval_file": str(files["eval"]), "id_field": None}
    with pytest.raises(ConfigError, match=r"data.local.id_field: null names each row by its file's name and line"):
        validate_config(edited({"data.dataset": "local", "data.local": local}), source="c.yaml")
    # Fine: an id field, or one file for both (its subsets are drawn disjointly from it).
    validate_config(edited({"data.dataset": "local", "data.local": local | {"id_field": "id"}}), source="c.yaml")
    same = local | {"eval_file": str(files["train"])}
    validate_config(edited({"data.dataset": "local", "data.local": same}), source="c.yaml")


LOCAL_ROWS_FOR_THE_TASK = [
    (
        "summarisation-reference-number",
        {},
        row("a") + '{"id": "b", "input": "x", "reference": 3}\n',
        r"data.local.train_file: .*data.jsonl: row 2: field 'reference' is 3, a number, but a summarisation "
        r"reference is text",
    ),
    (
        "label-not-in-task-labels",
        classification({"Con": "Conservative", "Lab": "Labour"}),
        '{"input": "x", "reference": "Con"}\n{"input": "y", "reference": "Green"}\n',
        r"data.jsonl: labels 'Green' \(1 rows\) are not in task.labels \(Con, Lab\)",
    ),
]


@pytest.mark.parametrize(
    ("task", "content", "message"),
    [c[1:] for c in LOCAL_ROWS_FOR_THE_TASK],
    ids=[c[0] for c in LOCAL_ROWS_FOR_THE_TASK],
)
def test_a_local_row_the_task_cannot_use_is_refused_before_any_job(
    tmp_path: Path, task: dict[str, Any], content: str, message: str
) -> None:
    """Before: a number was taken as the summary "3", and an unknown label stopped the first model job."""
    path = tmp_path / "data.jsonl"
    path.write_text(content)
    local = {"train_file": str(path), "eval_file": str(path)}
    with pytest.raises(ConfigError, match=message):
        validate_config(edited({**task, "data.dataset": "local", "data.local": local}), source="c.yaml")


def test_integer_labels_are_classification_labels(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"input": "x", "reference": 0}\n{"input": "y", "reference": 1}\n')
    changes = classification({0: "no", 1: "yes"}) | {"data.dataset": "local"}
    validate_config(edited(changes | {"data.local": {"train_file": str(path), "eval_file": str(path)}}), source="c")


# --- the workflow: dry runs -------------------------------------------------------


def dry_run(workdir: Path, config: dict[str, Any], *args: str) -> str:
    configfile = workdir / "changed.yaml"
    configfile.write_text(yaml.safe_dump(config))
    return run_snakemake(workdir, "-n", *args, "report.html", configfile=configfile)


def test_braces_in_the_instruction_reach_the_comparison_job_as_written(tmp_path: Path) -> None:
    """Snakemake formats a plain string param as a wildcard pattern: before, `{x}` stopped
    the workflow (WildcardError, no key named) and `{dataset}` was replaced by the dataset's
    name in what compare_variants recorded. The params each job would run with are what
    `--touch` records in Snakemake's metadata."""
    instruction = "Summarize {x} and {{y}} for {dataset}"
    config = tiny_config()
    config["prompt"]["instruction"] = instruction
    configfile = tmp_path / "braces.yaml"
    configfile.write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, "--cores", "1", "--touch", "report.html", configfile=configfile)
    records = [
        json.loads(path.read_text()) for path in (tmp_path / ".snakemake" / "metadata").rglob("*") if path.is_file()
    ]
    params = {record["rule"]: " ".join(record["params"]) for record in records}
    for rule in ("compare_variants", "generate_predictions", "train_adapter", "measure_drift"):
        assert repr(instruction) in params[rule], (rule, params[rule])


def test_whole_number_floats_in_a_config_file_give_integer_names(tmp_path: Path) -> None:
    """Before: names like fft-n4.0-s1 and a MissingInputException."""
    config = tiny_config()
    config["data"]["train"]["sizes"] = [4.0]
    config["data"]["eval"]["size"] = 4.0
    config["training"]["seeds"] = [1.0]
    config["training"]["lora"]["ranks"] = [2.0, 4.0]
    output = dry_run(tmp_path, config)
    names = expand_grid(training=tiny_config()["training"], train_sizes=[4])  # the same config in integers
    assert all(name in output for name in names) and "train-n4.jsonl" in output
    assert ".0-" not in output and "n4.0" not in output


def test_spaces_and_unicode_in_data_file_names_are_fine(tmp_path: Path) -> None:
    data = tmp_path / "my data ü"
    data.mkdir()
    for name in ("train set.jsonl", "eval.jsonl"):
        (data / name).write_text("".join(row(f"r{i}") for i in range(30)))
    config = tiny_config()
    config["data"].update(
        dataset="local",
        local={"train_file": str(data / "train set.jsonl"), "eval_file": str(data / "eval.jsonl"), "id_field": "id"},
    )
    output = dry_run(tmp_path, config)
    assert str(data / "train set.jsonl") in output  # an input of make_train_subset


def brace_paths(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Configs naming a file of the user's with a brace in its path (each exists)."""
    folder = tmp_path / "my {data}"
    folder.mkdir()
    (folder / "rows.jsonl").write_text(row("a"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "weights{1}.bin").write_text("")
    file = str(folder / "rows.jsonl")
    return {
        "data.local.train_file": {"data.dataset": "local", "data.local": {"train_file": file, "eval_file": file}},
        "drift.forgetting.general.source": {"drift.forgetting.general.source": file},
        "data.hub_path": {"data.dataset": "cnn_dailymail", "data.hub_path": str(folder)},
        "model.source": {"model.source": str(model)},
    }


@pytest.mark.parametrize(
    "key", ["data.local.train_file", "drift.forgetting.general.source", "data.hub_path", "model.source"]
)
def test_a_brace_in_an_input_files_path_is_rejected_naming_the_key(tmp_path: Path, key: str) -> None:
    """Snakemake reads `{name}` in an input path as a wildcard and has no escape for it:
    before, a WildcardError that named no key."""
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}: .* has a brace in its path.* rename the file or folder"):
        validate_config(edited(brace_paths(tmp_path)[key]), source="c.yaml")


def test_a_bad_derived_model_name_stops_the_workflow_before_any_job(tmp_path: Path) -> None:
    folder = tmp_path / "my model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    config = tiny_config()
    config["model"]["source"] = str(folder)
    with pytest.raises(AssertionError) as failed:
        dry_run(tmp_path, config)
    assert "set model.name" in str(failed.value) and "MissingInputException" not in str(failed.value)


def failed_dry_run(workdir: Path, *args: str, configfile: Path) -> str:
    with pytest.raises(AssertionError) as failed:
        run_snakemake(workdir, "-n", "report.html", *args, configfile=configfile)
    return str(failed.value)


def checker_message(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    """What `python -m lora_study.core.config ARGV` prints for a bad configuration."""
    assert config_main([str(arg) for arg in argv]) == 1
    return capsys.readouterr().out.strip()


def test_a_key_written_twice_in_an_overlay_stops_the_dry_run_as_the_checker_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Snakemake's reader keeps the second block: before, the dry run planned with `model`'s
    first block (the CPU device) silently dropped."""
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump(tiny_config()) + "model:\n  dtype: float32\n")
    message = checker_message(capsys, REPO / "config.yaml", mine)
    assert re.fullmatch(rf"{re.escape(str(mine))}:\d+:1: not valid YAML: key 'model' is written twice.*", message)
    assert message in failed_dry_run(tmp_path, configfile=mine)


def test_a_yaml_error_in_config_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    """The workflow's own config.yaml is read before Snakemake's `configfile:` (whose message
    names neither file nor line)."""
    copy = tmp_path / "workflow"
    copy.mkdir()
    for name in ("Snakefile", "rules", "src", "schemas", "scripts", "envs", "report"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, copy / name)
    (copy / "config.yaml").write_text((REPO / "config.yaml").read_text().replace("  device: auto", "  device: [auto"))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(AssertionError) as failed:
        run_snakemake(work, "-n", "--snakefile", str(copy / "Snakefile"), configfile=REPO / "configs" / "tiny.yaml")
    assert f"{copy / 'config.yaml'}:" in str(failed.value) and "not valid YAML" in str(failed.value)
