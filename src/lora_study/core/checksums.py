"""sha256 hashes of model files, recorded when they are written and checked when they are loaded.

A weight file overwritten in place (same size, so neither Snakemake nor transformers
notices) or truncated loads without complaint and gives garbage predictions. So the
prepared model's manifest records the hashes of the files its weights folder is made of
(`weights_sha256`), train.json records those of the trained adapter or model
(`metrics.artefact_sha256`), and every loader checks them first. Hashing streams the
file (0.5-0.9 s for the default model's 538 MB on a busy 2-core machine:
bench/hash_cost.py), and a file is hashed once per process while it stays unchanged.

Standard library only (and lora_study.io/results), like the result readers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lora_study.core.io import MANIFEST, read_json
from lora_study.core.results import read_result

# The files a model folder is made of, as prepare.py downloads them from the hub, plus
# PyTorch's .bin weights that older local folders hold. Everything else (PEFT's README.md
# model card, a local folder's optimizer state or logs) is never read when loading.
HASHED_PATTERNS = ("*.safetensors", "*.bin", "*.json", "*.model", "*.txt", "*.jinja", "tokenizer*")
NOT_HASHED = frozenset({MANIFEST})
MANIFEST_KEY = "weights_sha256"
TRAIN_JSON = "train.json"
TRAIN_KEY = "artefact_sha256"  # in train.json's metrics, beside artefact_bytes
MERGE_JSON = "merge.json"
MERGE_KEY = "merged_sha256"  # in merge.json's metrics, beside merged_bytes

# One job loads the base model several times (tokenizer, base, base again beside the tuned
# model): the hash of an unchanged file is reused. Keyed by inode, size and mtime, so a
# rewritten file is hashed again.
_hashed: dict[tuple[int, int, int, int], str] = {}


class ChecksumError(RuntimeError):
    """A model file does not match the hash recorded when it was written, or no hash was recorded."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, streamed (never read whole into memory)."""
    stat = os.stat(path)
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _hashed:
        with open(path, "rb") as handle:
            _hashed[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _hashed[key]


def model_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The hashed files of a model or adapter folder (top level only: loaders read no subfolder)."""
    folder = Path(folder)
    files = {path for pattern in HASHED_PATTERNS for path in folder.glob(pattern) if path.is_file()}
    return sorted(path for path in files if path.name not in NOT_HASHED)


def folder_hashes(folder: str | os.PathLike[str]) -> dict[str, str]:
    """{file name: sha256} of the folder's model files, in name order."""
    return {path.name: sha256_file(path) for path in model_files(folder)}


def verify_files(*, folder: Path, recorded: Mapping[str, str], record: Path, when: str, rebuild: str) -> None:
    """Raise ChecksumError unless every file `record` lists is in `folder` with its hash;
    `when` says when it was recorded ("at preparation"), `rebuild` how to make it anew."""
    for name, expected in recorded.items():
        path = folder / name
        if not path.is_file():
            raise ChecksumError(f"{path} is missing, but {record} recorded it {when}; {rebuild}")
        actual = sha256_file(path)
        if actual != expected:
            raise ChecksumError(
                f"{path} does not match the sha256 recorded in {record} {when}: it is corrupt, truncated "
                f"or was changed since (sha256 {actual}, recorded {expected}); {rebuild}"
            )


def verify_prepared(*, model_dir: str | os.PathLike[str], manifest: Mapping[str, Any], weights: Path) -> None:
    """Check the prepared model's weights folder against its manifest."""
    manifest_path = Path(model_dir) / MANIFEST
    rebuild = (
        f"prepare the model again: delete {model_dir} and rerun snakemake (or `snakemake --forcerun prepare_model`)"
    )
    if manifest.get("kind") == "local":
        rebuild = f"restore the local model folder {weights}, or if it changed on purpose, {rebuild}"
    elif manifest.get("kind") == "hub":
        rebuild = f"delete the damaged snapshot {weights} from the Hugging Face cache, then {rebuild}"
    recorded = manifest.get(MANIFEST_KEY)
    if not isinstance(recorded, dict) or not recorded:
        raise ChecksumError(
            f"{manifest_path} records no sha256 hashes of the model files ({MANIFEST_KEY}): it was written "
            f"before hashes were recorded, so its weights cannot be checked; {rebuild}"
        )
    verify_files(folder=weights, recorded=recorded, record=manifest_path, when="at preparation", rebuild=rebuild)


def verify_trained(weights: str | os.PathLike[str]) -> None:
    """Check a trained adapter or model folder against the train.json beside it."""
    verify_beside(weights, record_name=TRAIN_JSON, key=TRAIN_KEY, when="at training", action="train it again")


def verify_merged(folder: str | os.PathLike[str]) -> None:
    """Check a merged model folder against the merge.json beside it."""
    verify_beside(folder, record_name=MERGE_JSON, key=MERGE_KEY, when="at merging", action="merge it again")


def verify_beside(weights: str | os.PathLike[str], *, record_name: str, key: str, when: str, action: str) -> None:
    """Check a folder a job wrote against the hashes (`metrics.<key>`) of the record beside it."""
    weights = Path(weights)
    record = weights.parent / record_name
    rebuild = f"{action}: delete {weights.parent} and rerun snakemake"
    if not record.is_file():
        raise ChecksumError(f"{record} is missing: it records the hashes that {weights} is checked against; {rebuild}")
    recorded = read_result(record)["metrics"].get(key)
    if not isinstance(recorded, dict) or not recorded:
        raise ChecksumError(
            f"{record} records no sha256 hashes of the files of {weights} (metrics.{key}): it was written "
            f"before hashes were recorded, so they cannot be checked; {rebuild}"
        )
    verify_files(folder=weights, recorded=recorded, record=record, when=when, rebuild=rebuild)


def weights_dir(model_dir: str | Path) -> Path:
    """The folder holding the weights, read from the prepared model's manifest, once its
    files match the hashes the manifest recorded: every loader goes through here, so none
    loads corrupt weights."""
    model_dir = Path(model_dir)
    manifest_path = model_dir / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path}: no model manifest; run the prepare_model rule first")
    manifest: dict[str, Any] = read_json(manifest_path)
    weights = Path(manifest["weights"])
    weights = weights if weights.is_absolute() else (model_dir / weights).resolve()
    verify_prepared(model_dir=model_dir, manifest=manifest, weights=weights)
    return weights
