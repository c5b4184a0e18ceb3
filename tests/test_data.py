"""Tests for lora_study.core.data: deterministic, nested, disjoint subsets and clear errors."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, data_block, run_snakemake, tiny_config
from lora_study.core.config import subset_settings
from lora_study.core.data import (
    DataError,
    Example,
    default_splits,
    detokenise,
    draw_eval,
    draw_train,
    draw_validation,
    drift_texts,
    general_texts,
    heldout_texts,
    load_split,
    make_subsets,
    read_draw,
    read_examples,
    subsets_meta,
    write_draw,
    write_subsets,
    write_subsets_info,
)
from lora_study.core.datasets import general_source
from lora_study.core.io import read_jsonl
from lora_study.core.results import read_result

# The `data:` block of config.yaml, as the schema-validated dict the module receives.
BASE: dict[str, Any] = data_block()


def config(
    dataset: str,
    *,
    local: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    eval: dict[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    data = copy.deepcopy(BASE) | {"dataset": dataset} | top
    for key, update in (("local", local), ("train", train), ("eval", eval)):
        data[key].update(update or {})
    return data


def write_rows(path: Path, rows: list[dict[str, Any]], *, as_array: bool = False) -> Path:
    text = json.dumps(rows, indent=1) if as_array else "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8")
    return path


def rows(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"input": f"{prefix} text number {i}.", "reference": f"{prefix} summary {i}."} for i in range(n)]


# --- splits and aclsum ------------------------------------------------------------


def test_default_splits_per_dataset_and_unknown_dataset() -> None:
    assert default_splits("aclsum") == ("train", "test")
    assert default_splits("news") == ("all", "all")
    assert default_splits("cnn_dailymail") == ("train", "validation")
    assert default_splits("local") == ("train", "eval")
    with pytest.raises(DataError, match="data.dataset.*'xsum'"):
        default_splits("xsum")


def test_unknown_split_lists_the_available_ones() -> None:
    with pytest.raises(DataError, match=r"data.eval.split: unknown split 'dev'.*train, val, test"):
        make_subsets(data=config("aclsum", eval={"split": "dev"}))


@pytest.mark.parametrize(
    ("tokenised", "expected"),
    [
        (
            "However , current Machine Translation ( MT ) systems .",
            "However, current Machine Translation (MT) systems.",
        ),
        (
            "by using ' Op ( operator / operand ) ' tokens as a unit of input / output .",
            "by using 'Op (operator/operand)' tokens as a unit of input/output.",
        ),
        (
            'to militate the " exposure bias " problem , or " blocks " .',
            'to militate the "exposure bias" problem, or "blocks".',
        ),
        ("as on-line users ' opinions are popular .", "as on-line users' opinions are popular."),
        (
            "HIERSUM 's capacity to produce ' topical summaries ' in order",
            "HIERSUM's capacity to produce 'topical summaries' in order",
        ),
        ("translate ' A because B ' as ' B because A. '", "translate 'A because B' as 'B because A.'"),
        ("labor by 16 - 63 % and 2 % in MRR", "labor by 16-63% and 2% in MRR"),
        ("Code : https://github.com / thunlp/ ContinualRE .", "Code: https://github.com/thunlp/ContinualRE."),
        ("-LRB- MT -RRB- is n't `` good '' ( e.g. , BLEU ) .", '(MT) isn\'t "good" (e.g., BLEU).'),
        ("reactors produce radioactive waste ...", "reactors produce radioactive waste..."),
    ],
)
def test_detokenise_known_aclsum_strings(tokenised: str, expected: str) -> None:
    assert detokenise([tokenised]) == expected


def test_detokenise_joins_sentences_with_one_space() -> None:
    assert detokenise(["First ( A ) .", "Second , too ."]) == "First (A). Second, too."


def test_aclsum_example_is_detokenised_abstract_and_three_part_summary() -> None:
    root = Path(importlib.util.find_spec("aclsum").submodule_search_locations[0])
    raw = {r["id"]: r for r in read_jsonl(root / "dataset" / "test.jsonl")}
    examples = load_split(data=config("aclsum"), split="test")
    assert len(examples) == len(raw) == 100
    for example in examples:
        row = raw[example.id]
        summary = row["summary"]
        assert example.reference == " ".join(
            " ".join([summary["challenge"], summary["approach"], summary["outcome"]]).split()
        )
        assert example.input == detokenise(row["sentences"]["abstract"])
        assert " ," not in example.input and "( " not in example.input


# --- determinism, sizes, disjointness ---------------------------------------------


def test_two_runs_write_byte_identical_files_with_matching_hashes(tmp_path: Path) -> None:
    data = config("aclsum", train={"sizes": [30, 10]})
    for run in ("a", "b"):
        write_subsets(subsets=make_subsets(data=data), out_dir=tmp_path / run)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["eval.jsonl", "subsets.json", "train-n10.jsonl", "train-n30.jsonl"]
    for name in [name for name in names if name.endswith(".jsonl")]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    info, again = read_result(tmp_path / "a" / "subsets.json"), read_result(tmp_path / "b" / "subsets.json")
    assert (info["run"], info["metrics"]) == (again["run"], again["metrics"])  # meta: when, by which code
    run, metrics = info["run"], info["metrics"]
    for name, entry in metrics["files"].items():
        assert entry["sha256"] == hashlib.sha256((tmp_path / "a" / name).read_bytes()).hexdigest()
    assert run["source"]["eval"].endswith("aclsum/dataset/test.jsonl")
    assert (metrics["eval"]["split"], metrics["train"]["split"]) == ("test", "train")
    assert (metrics["eval"]["seed"], metrics["train"]["seed"]) == (42, 123)
    assert metrics["train"]["sizes"] == {"10": 10, "30": 30}
    assert info["meta"]["device"] is None


def test_sizes_are_exact_nested_and_round_trip(tmp_path: Path) -> None:
    subsets = make_subsets(data=config("aclsum", train={"sizes": [10, 30, 100]}))
    assert {n: len(ex) for n, ex in subsets.train.items()} == {10: 10, 30: 30, 100: 100}
    assert subsets.train[30][:10] == subsets.train[10]
    assert subsets.train[100][:30] == subsets.train[30]
    assert len(subsets.eval) == 20
    write_subsets(subsets=subsets, out_dir=tmp_path)
    assert read_examples(tmp_path / "train-n30.jsonl") == subsets.train[30]
    assert read_examples(tmp_path / "eval.jsonl") == subsets.eval


def test_other_seed_gives_other_eval_set() -> None:
    first = make_subsets(data=config("aclsum"))
    second = make_subsets(data=config("aclsum", eval={"seed": 7}))
    assert [e.id for e in first.eval] != [e.id for e in second.eval]


def assert_disjoint(eval_set: list[Example], train: list[Example]) -> None:
    def norm(text: str) -> str:
        return " ".join(text.lower().split())

    assert not {e.id for e in eval_set} & {t.id for t in train}
    assert not {norm(e.input) for e in eval_set} & {norm(t.input) for t in train}


def test_news_draws_train_and_eval_disjointly_from_its_one_split() -> None:
    subsets = make_subsets(data=config("news", train={"sizes": [50, 200]}))
    assert_disjoint(subsets.eval, subsets.train[200])
    assert subsets.meta["train"]["dropped_overlapping_eval"] >= 20  # at least the eval rows themselves
    assert all(e.input.strip() and e.reference.strip() for e in subsets.train[200] + subsets.eval)


def test_local_same_file_for_train_and_eval_is_split_disjointly(tmp_path: Path) -> None:
    file = write_rows(tmp_path / "all.jsonl", rows("same", 30))
    data = config(
        "local", local={"train_file": str(file), "eval_file": str(file)}, train={"sizes": [25]}, eval={"size": 5}
    )
    subsets = make_subsets(data=data)
    assert_disjoint(subsets.eval, subsets.train[25])
    drawn = {e.id for e in subsets.eval} | {t.id for t in subsets.train[25]}
    assert drawn == {f"all.jsonl:{i}" for i in range(1, 31)}  # ids are per file row
    with pytest.raises(DataError, match=r"data.train.sizes: asks for 26 examples .* has only 25"):
        make_subsets(data=data | {"train": {"split": None, "sizes": [26], "seed": 123}})


def test_train_duplicate_of_an_eval_input_is_dropped(tmp_path: Path) -> None:
    eval_file = write_rows(tmp_path / "eval.jsonl", rows("eval", 3))
    duplicate = {"input": "  EVAL text   number 1. ", "reference": "anything"}
    train_file = write_rows(tmp_path / "train.jsonl", rows("train", 10) + [duplicate])
    data = config(
        "local",
        local={"train_file": str(train_file), "eval_file": str(eval_file)},
        train={"sizes": [10]},
        eval={"size": 3},
    )
    subsets = make_subsets(data=data)
    assert subsets.meta["train"]["dropped_overlapping_eval"] == 1
    assert "train.jsonl:11" not in {t.id for t in subsets.train[10]}
    assert_disjoint(subsets.eval, subsets.train[10])


def test_too_large_sizes_name_the_key_and_the_counts() -> None:
    with pytest.raises(DataError, match=r"data.train.sizes: asks for 101 examples .* has only 100"):
        make_subsets(data=config("aclsum", train={"sizes": [10, 101]}))
    with pytest.raises(DataError, match=r"data.eval.size: asks for 101 examples .* has only 100"):
        make_subsets(data=config("aclsum", eval={"size": 101}))
    with pytest.raises(DataError, match=r"data.train.sizes is empty"):
        make_subsets(data=config("aclsum", train={"sizes": []}))


# --- local files ------------------------------------------------------------------


def test_local_reads_json_arrays_and_jsonl_with_id_field(tmp_path: Path) -> None:
    named = [{"key": f"k{i}", "doc": f"doc {i}", "sum": f"s {i}"} for i in range(4)]
    array = write_rows(tmp_path / "train.json", named, as_array=True)
    lines = write_rows(tmp_path / "eval.json", named[:2])  # JSONL despite the extension
    data = config(
        "local",
        local={
            "train_file": str(array),
            "eval_file": str(lines),
            "id_field": "key",
            "input_field": "doc",
            "reference_field": "sum",
        },
    )
    assert load_split(data=data, split="train") == [Example(f"k{i}", f"doc {i}", f"s {i}") for i in range(4)]
    assert [e.id for e in load_split(data=data, split="eval")] == ["k0", "k1"]


@pytest.mark.parametrize(
    ("content", "local", "message"),
    [
        (None, {}, r"missing\.jsonl: no such file \(data.local.train_file\)"),
        ('{"input": "a", "reference": "b"}\n{"input": "a",\n', {}, r"bad\.jsonl:2: not valid JSON"),
        ('[{"input": "a", "reference": "b"},\n {"input": }]', {}, r"bad\.jsonl:2: not valid JSON"),
        (
            '{"input": "a", "reference": "b"}\n{"text": "a", "reference": "b"}\n',
            {},
            r"bad\.jsonl: row 2: no field 'input' \(data.local.input_field\)",
        ),
        (
            '{"doc": "a", "reference": "b"}\n',
            {"input_field": "doc", "reference_field": "summary"},
            r"bad\.jsonl: row 1: no field 'summary' \(data.local.reference_field\)",
        ),
        ('{"input": "  ", "reference": "b"}\n', {}, r"bad\.jsonl: row 1: field 'input' is empty"),
        ('{"input": "a", "reference": ""}\n', {}, r"bad\.jsonl: row 1: field 'reference' is empty"),
        (
            '{"input": "a", "reference": "b"}\n',
            {"id_field": "uid"},
            r"bad\.jsonl: row 1: no field 'uid' \(data.local.id_field\)",
        ),
        ('["a", "b"]', {}, r"bad\.jsonl: row 1: not a JSON object"),
    ],
)
def test_local_file_errors_name_the_file_row_and_field(
    tmp_path: Path, content: str | None, local: dict[str, Any], message: str
) -> None:
    path = tmp_path / ("missing.jsonl" if content is None else "bad.jsonl")
    if content is not None:
        path.write_text(content, encoding="utf-8")
    data = config("local", local={"train_file": str(path), "eval_file": str(path), **local})
    with pytest.raises(DataError, match=message):
        load_split(data=data, split="train")


def test_local_unset_file_names_the_key() -> None:
    with pytest.raises(DataError, match="data.local.eval_file is not set"):
        load_split(data=config("local"), split="eval")


def test_read_examples_names_file_of_incomplete_rows(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "eval.jsonl", [{"id": "1", "input": "x"}])
    with pytest.raises(DataError, match=r"eval\.jsonl: example 1 has no reference"):
        read_examples(path)


# --- cnn_dailymail through `datasets`, from a folder in the hub repo's layout ------

README = """---
configs:
- config_name: 3.0.0
  data_files:
  - split: train
    path: 3.0.0/train-*
  - split: validation
    path: 3.0.0/validation-*
  - split: test
    path: 3.0.0/test-*
---
# cnn_dailymail (test copy)
"""


def cnn_rows(split: str, n: int) -> dict[str, list[str]]:
    return {
        "article": [f"({split}) Article {i} about something." for i in range(n)],
        "highlights": [f"Highlight {i} of {split}." for i in range(n)],
        "id": [hashlib.sha1(f"{split}{i}".encode()).hexdigest() for i in range(n)],
    }


@pytest.fixture
def hub_folder(tmp_path: Path, offline: None) -> Path:
    """A local copy of abisee/cnn_dailymail's layout, read strictly offline."""
    import pandas as pd

    folder = tmp_path / "cnn_dailymail"
    (folder / "3.0.0").mkdir(parents=True)
    (folder / "README.md").write_text(README, encoding="utf-8")
    for split, n in (("train", 150), ("validation", 40), ("test", 5)):
        pd.DataFrame(cnn_rows(split, n)).to_parquet(folder / "3.0.0" / f"{split}-00000-of-00001.parquet")
    return folder


def test_cnn_dailymail_loads_the_hub_layout_with_load_dataset(hub_folder: Path) -> None:
    data = config("cnn_dailymail", hub_path=str(hub_folder))
    for split, n in (("train", 150), ("validation", 40), ("test", 5)):
        examples = load_split(data=data, split=split)
        expected = cnn_rows(split, n)
        assert [(e.id, e.input, e.reference) for e in examples] == list(
            zip(expected["id"], expected["article"], expected["highlights"], strict=True)
        )


def test_cnn_dailymail_subsets_equal_dataset_shuffle_select(hub_folder: Path) -> None:
    from datasets import Dataset

    subsets = make_subsets(data=config("cnn_dailymail", hub_path=str(hub_folder), train={"sizes": [10, 100]}))
    # The hand-run study: ds.shuffle(seed=...).select(range(n)) on an in-memory Dataset.
    validation, train = Dataset.from_dict(cnn_rows("validation", 40)), Dataset.from_dict(cnn_rows("train", 150))
    assert [e.id for e in subsets.eval] == validation.shuffle(seed=42).select(range(20))["id"]
    assert [e.id for e in subsets.train[100]] == train.shuffle(seed=123).select(range(100))["id"]
    assert [e.id for e in subsets.train[10]] == train.shuffle(seed=123).select(range(10))["id"]
    assert subsets.meta["source"]["eval"] == f"{hub_folder} (config 3.0.0)"


def test_cnn_dailymail_unreachable_source_names_hub_path(hub_folder: Path) -> None:
    data = config("cnn_dailymail", hub_path=str(hub_folder / "nowhere"), hub_config="3.0.0")
    with pytest.raises(DataError, match=r"data.hub_path .*nowhere.*split 'train'"):
        load_split(data=data, split="train")


def test_heldout_texts_avoid_every_subset_and_are_seeded() -> None:
    data = config("aclsum", train={"sizes": [20]}, eval={"size": 10})
    subsets = make_subsets(data=data)
    used = [*subsets.eval, *subsets.train[20]]
    texts = heldout_texts(data=data, used=used, size=15, seed=7)
    assert len(texts) == 15 and len({row["id"] for row in texts}) == 15
    assert not {row["id"] for row in texts} & {e.id for e in used}
    assert not {row["text"] for row in texts} & {e.input for e in used}
    assert texts == heldout_texts(data=data, used=used, size=15, seed=7)
    assert texts != heldout_texts(data=data, used=used, size=15, seed=8)


def test_heldout_texts_too_many_names_the_key() -> None:
    data = config("aclsum", eval={"size": 10})
    with pytest.raises(DataError, match="drift.forgetting.examples: asks for 100000 examples"):
        heldout_texts(data=data, used=make_subsets(data=data).eval, size=100_000, seed=7)


def test_drift_texts_leave_out_every_training_text_and_use_the_other_splits() -> None:
    data = config("aclsum", train={"sizes": [100]}, eval={"size": 20})
    subsets = make_subsets(data=data)
    trained = subsets.train[100]
    everything = drift_texts(data=data, trained=trained, size=None, seed=0)
    # aclsum: 100 train rows all trained on; test (100) and val (50) remain, evaluation examples included.
    assert len(everything) == 150 and len({row["text"] for row in everything}) == 150
    assert not {row["text"] for row in everything} & {e.input for e in trained}
    assert {e.input for e in subsets.eval} <= {row["text"] for row in everything}
    chosen = drift_texts(data=data, trained=trained, size=100, seed=0)
    assert len(chosen) == 100 and chosen == drift_texts(data=data, trained=trained, size=100, seed=0)
    assert chosen != drift_texts(data=data, trained=trained, size=100, seed=1)
    with pytest.raises(DataError, match="drift.examples: asks for 151 examples"):
        drift_texts(data=data, trained=trained, size=151, seed=0)


def test_general_texts_come_from_the_other_domain_or_a_file(tmp_path: Path) -> None:
    assert general_source(dataset="aclsum", source="auto") == "news"
    assert general_source(dataset="news", source="auto") == "aclsum"
    assert general_source(dataset="aclsum", source="my.jsonl") == "my.jsonl"
    news = general_texts(source="news", size=5, seed=7)
    assert len(news) == 5 and news == general_texts(source="news", size=5, seed=7)
    abstracts = {e.input for split in ("train", "val", "test") for e in load_split(data=config("aclsum"), split=split)}
    assert not {row["text"] for row in news} & abstracts
    path = write_rows(tmp_path / "general.jsonl", [{"text": "one text"}, {"text": "another"}, {"text": "a third"}])
    assert sorted(row["text"] for row in general_texts(source=str(path), size=3, seed=0)) == [
        "a third",
        "another",
        "one text",
    ]
    bad = write_rows(tmp_path / "bad.jsonl", [{"text": "fine"}, {"body": "no text"}])
    with pytest.raises(DataError, match=r"bad.jsonl: row 2 has no non-empty string field 'text'"):
        general_texts(source=str(bad), size=1, seed=0)
    with pytest.raises(DataError, match="drift.forgetting.general.source: .*missing.jsonl is not a file"):
        general_texts(source=str(tmp_path / "missing.jsonl"), size=1, seed=0)


# --- the subset jobs: one file each, the bytes make_subsets wrote -------------------

# sha256 prefixes of what `make_subsets` (one job writing every file, commit d844316) wrote
# for these configs: the per-file jobs must write the same bytes, and subsets.json the same
# `run` and `metrics` (the hash of json.dumps([run, metrics])).
BEFORE_SPLIT = {
    "tiny": (
        {"eval.jsonl": "8a259a78d7eac145", "train-n4.jsonl": "e98cb234e4567c94"},
        "7fe499c168098a6f",
    ),
    "aclsum": (
        {
            "eval.jsonl": "6c8079d159bbc547",
            "train-n10.jsonl": "ec48f8875f2fce27",
            "train-n30.jsonl": "771bcc6201c74c60",
        },
        "fcbfb6fdf6d6f4a2",
    ),
    "local": (
        {"eval.jsonl": "1ea2069d29db1c4b", "train-n20.jsonl": "64a59819fa557967", "train-n5.jsonl": "4ffa87c24d9e83db"},
        "7f0c5c060f265508",
    ),
    "news": (
        {
            "eval.jsonl": "dfe0863f3a504759",
            "train-n200.jsonl": "68c0ef56be3e1e67",
            "train-n50.jsonl": "d3411c7d3281110c",
        },
        "6bad6376df0de70f",
    ),
}


def before_split_config(case: str) -> dict[str, Any]:
    """The data blocks BEFORE_SPLIT was made from (local: files under ./src, with a train row
    that repeats an eval input, so one is dropped)."""
    if case == "tiny":
        return config("aclsum", train={"sizes": [4]}, eval={"size": 4})
    if case == "aclsum":
        return config("aclsum", train={"sizes": [30, 10]})
    if case == "news":
        return config("news", train={"sizes": [50, 200]})

    def named(prefix: str, n: int) -> list[dict[str, Any]]:
        return [
            {"key": f"{prefix}{i}", "doc": f"{prefix.upper()} text number {i}.", "sum": f"{prefix} summary {i}."}
            for i in range(n)
        ]

    Path("src").mkdir()
    write_rows(Path("src/train.jsonl"), named("t", 30) + [{"key": "dup", "doc": "  e TEXT number 1. ", "sum": "x"}])
    write_rows(Path("src/eval.jsonl"), named("e", 6))
    local = {
        "train_file": "src/train.jsonl",
        "eval_file": "src/eval.jsonl",
        "id_field": "key",
        "input_field": "doc",
        "reference_field": "sum",
    }
    return config("local", local=local, train={"sizes": [20, 5]}, eval={"size": 6})


@pytest.mark.parametrize("case", list(BEFORE_SPLIT))
def test_subset_jobs_write_the_bytes_make_subsets_wrote(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the rules make_eval_subset, make_train_subset (per size) and record_subsets do,
    each from only its params (config.subset_settings), as their scripts call it."""
    monkeypatch.chdir(tmp_path)
    data = before_split_config(case)
    out = tmp_path / "out"
    evals = draw_eval(data=subset_settings(data, part="eval"))
    write_draw(draw=evals, dataset=data["dataset"], path=out / "eval.jsonl", info_path=out / "parts/eval.json")
    sizes = sorted(data["train"]["sizes"])
    for size in sizes:
        train = draw_train(data=subset_settings(data, part="train"), evals=read_examples(out / "eval.jsonl"), size=size)
        write_draw(
            draw=train,
            dataset=data["dataset"],
            path=out / f"train-n{size}.jsonl",
            info_path=out / f"parts/train-n{size}.json",
        )
    files = [out / "eval.jsonl", *(out / f"train-n{size}.jsonl" for size in sizes)]
    meta = subsets_meta(
        dataset=data["dataset"],
        name=data["name"],
        sizes=data["train"]["sizes"],
        evals=read_draw(path=out / "eval.jsonl", info_path=out / "parts/eval.json"),
        trains={
            size: read_draw(path=out / f"train-n{size}.jsonl", info_path=out / f"parts/train-n{size}.json")
            for size in sizes
        },
    )
    write_subsets_info(meta=meta, files={path.name: path for path in files}, out_path=out / "subsets.json")

    hashes, subsets_hash = BEFORE_SPLIT[case]
    assert {path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16] for path in files} == hashes
    info = read_result(out / "subsets.json")
    assert hashlib.sha256(json.dumps([info["run"], info["metrics"]]).encode()).hexdigest()[:16] == subsets_hash
    # The library's all-at-once path writes the same.
    write_subsets(subsets=make_subsets(data=data), out_dir=tmp_path / "at-once")
    assert all((tmp_path / "at-once" / path.name).read_bytes() == path.read_bytes() for path in files)
    # Nested: each smaller training set is a prefix of the next.
    for smaller, larger in zip(sizes, sizes[1:], strict=False):
        assert read_examples(out / f"train-n{larger}.jsonl")[:smaller] == read_examples(out / f"train-n{smaller}.jsonl")


def test_subset_params_hold_only_what_changes_each_file() -> None:
    data = config("aclsum", train={"sizes": [4, 8]}, eval={"size": 4})
    assert subset_settings(data, part="eval") == {"dataset": "aclsum", "eval": {"seed": 42, "size": 4, "split": "test"}}
    assert subset_settings(data, part="train") == {"dataset": "aclsum", "train": {"seed": 123, "split": "train"}}
    # A default split written out, or a setting of another dataset, changes nothing.
    same = config("aclsum", train={"split": "train", "sizes": [2]}, eval={"split": "test", "size": 4}, hub_path="x/y")
    assert [subset_settings(same, part=p) for p in ("eval", "train")] == [
        subset_settings(data, part=p) for p in ("eval", "train")
    ]
    local = config("local", local={"train_file": "a.jsonl", "eval_file": "b.jsonl", "id_field": "id"})
    assert subset_settings(local, part="eval")["local"] == {
        "eval_file": "b.jsonl",
        "id_field": "id",
        "input_field": "input",
        "reference_field": "reference",
    }


def test_the_workflows_data_jobs_write_what_make_subsets_wrote(tmp_path: Path) -> None:
    """The real rules on the tiny config (data jobs only: seconds): the subset files, and the
    drift, held-out and general texts made from them, have make_subsets' bytes (d844316)."""
    targets = [
        f"results/data/aclsum/{name}" for name in ("subsets.json", "drift.jsonl", "heldout.jsonl", "general.jsonl")
    ]
    run_snakemake(tmp_path, "--cores", "1", *targets, configfile=REPO / "configs" / "tiny.yaml")
    folder = tmp_path / "results/data/aclsum"
    assert {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:16] for path in sorted(folder.glob("*.jsonl"))
    } == {
        **BEFORE_SPLIT["tiny"][0],
        "drift.jsonl": "f7fb3268dd168f5a",
        "heldout.jsonl": "fdbf13f65fb72d2d",
        "general.jsonl": "aedef48cc409810d",
    }
    info = read_result(folder / "subsets.json")
    assert (
        hashlib.sha256(json.dumps([info["run"], info["metrics"]]).encode()).hexdigest()[:16] == BEFORE_SPLIT["tiny"][1]
    )


def test_the_validation_subset_avoids_the_evaluation_and_training_rows() -> None:
    data = copy.deepcopy(data_block())
    subsets = make_subsets(data=data)
    draw = draw_validation(data=data, evals=subsets.eval, trained=subsets.train[100])
    assert draw.info["split"] == "val" and len(draw.examples) == data["validation"]["size"] == 20
    inputs = {e.input for e in draw.examples}
    assert not inputs & {e.input for e in [*subsets.eval, *subsets.train[100]]}
    # Drift texts leave the validation rows out (and stay clear of training texts as before).
    drift = drift_texts(data=data, trained=subsets.train[100], validation=draw.examples, size=None, seed=0)
    assert not inputs & {row["text"] for row in drift}
    assert len(drift) == 150 - 20  # aclsum's test and val splits, less the validation rows


def test_a_validation_subset_from_the_evaluation_split_leaves_its_rows_out() -> None:
    data = copy.deepcopy(data_block())
    data["validation"] = {"split": "test", "size": 80, "seed": 3}
    subsets = make_subsets(data=data)
    draw = draw_validation(data=data, evals=subsets.eval, trained=subsets.train[100])
    assert not {e.id for e in draw.examples} & {e.id for e in subsets.eval}
    data["validation"]["size"] = 81  # aclsum's test split holds 100, 20 of them evaluated
    with pytest.raises(DataError, match=r"data.validation.size: asks for 81 examples but aclsum/test outside"):
        draw_validation(data=data, evals=subsets.eval, trained=subsets.train[100])


def test_a_sweep_draws_validation_rows_that_the_drift_and_forgetting_texts_leave_out(tmp_path: Path) -> None:
    """The real rules on the tiny config with a learning-rate sweep (data jobs only)."""
    config = tiny_config()
    config["training"]["lora"]["learning_rate"] = [1e-4, 1e-3]
    configfile = tmp_path / "sweep.yaml"
    configfile.write_text(yaml.safe_dump(config))
    names = ("validation.jsonl", "drift.jsonl", "heldout.jsonl")
    run_snakemake(tmp_path, "--cores", "1", *(f"results/data/aclsum/{n}" for n in names), configfile=configfile)
    folder = tmp_path / "results/data/aclsum"
    validation = {" ".join(e.input.split()) for e in read_examples(folder / "validation.jsonl")}
    measured = [row["text"] for name in names[1:] for row in read_jsonl(folder / name)]
    assert len(validation) == 20 and measured and not validation & {" ".join(text.split()) for text in measured}


def test_a_validation_subset_avoids_evaluation_ids_where_evaluation_and_training_share_its_split() -> None:
    """news draws evaluation, training and validation from its one split `all`: an evaluation
    row must be left out by its id too, not only by its text."""
    data = {
        "dataset": "news",
        "train": {"split": None, "seed": 1},
        "eval": {"split": None, "seed": 2},
        "validation": {"split": None, "size": 3, "seed": 3},
    }
    rows = load_split(data=data, split="all")
    # An evaluation row whose text differs from its source row: only its id ties them.
    evals = [Example(id=row.id, input=f"rewritten {i}", reference=row.reference) for i, row in enumerate(rows[:3000])]
    draw = draw_validation(data=data, evals=evals, trained=[])
    assert not {e.id for e in draw.examples} & {e.id for e in evals}
