"""Corrupt model files are refused, naming the file, the record and how to rebuild: the
prepared model against its manifest, trained artefacts against the train.json beside them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from conftest import record_training, write_manifest
from lora_study.core.checksums import MANIFEST_KEY, ChecksumError, folder_hashes, sha256_file
from lora_study.core.grid import VariantSpec
from lora_study.core.io import MANIFEST, read_json, write_json
from lora_study.model.adapters import attach_adapter
from lora_study.model.loading import load_model, variant_loader, weights_dir
from lora_study.stages.model.prepare import prepare_model
from lora_study.stages.weights.mitigation import mitigate_intruders
from lora_study.stages.weights.weight_drift import load_tuned

SPEC = VariantSpec(kind="lora", train_size=4, seed=1, learning_rate=1e-3, rank=4, alpha=8.0, targets="qv")
MODEL = {"device": "cpu", "dtype": "float32"}


def flip_byte(path: Path, *, offset: int | None = None) -> None:
    """Overwrite one byte in place (same size, as the issue's 25 MB overwrite)."""
    size = path.stat().st_size
    offset = size // 2 if offset is None else offset
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert path.stat().st_size == size


@pytest.fixture()
def prepared(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny prepared model that a test may damage."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "prepared"))


@pytest.fixture()
def adapter(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A saved LoRA adapter with its train.json beside it."""
    model = attach_adapter(model=load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32), spec=SPEC)
    folder = tmp_path / "variant" / "adapter"
    model.save_pretrained(folder)
    record_training(folder)
    return folder


def test_hashes_are_sha256_of_the_model_files(tiny_model_dir: Path) -> None:
    import hashlib

    hashes = read_json(tiny_model_dir / MANIFEST)[MANIFEST_KEY]
    assert "model.safetensors" in hashes and "config.json" in hashes and MANIFEST not in hashes
    data = (tiny_model_dir / "model.safetensors").read_bytes()
    assert (
        hashes["model.safetensors"]
        == hashlib.sha256(data).hexdigest()
        == sha256_file(tiny_model_dir / "model.safetensors")
    )


def test_an_intact_prepared_model_loads(prepared: Path) -> None:
    assert weights_dir(prepared) == prepared.resolve()
    assert load_model(model_dir=prepared, device="cpu", dtype=torch.float32).config.num_hidden_layers == 2


def test_one_corrupt_byte_in_the_prepared_weights_is_refused(prepared: Path) -> None:
    flip_byte(prepared / "model.safetensors")
    with pytest.raises(ChecksumError) as error:
        load_model(model_dir=prepared, device="cpu", dtype=torch.float32)
    message = str(error.value)
    weights, manifest = prepared.resolve() / "model.safetensors", prepared / MANIFEST
    assert f"{weights} does not match the sha256 recorded in {manifest} at preparation" in message
    assert "snakemake --forcerun prepare_model" in message and f"delete {prepared}" in message


def test_a_missing_weight_file_is_refused(prepared: Path) -> None:
    (prepared / "model.safetensors").unlink()
    with pytest.raises(
        ChecksumError, match=r"model.safetensors is missing, but .*manifest.json recorded it at preparation"
    ):
        weights_dir(prepared)


def test_a_manifest_without_hashes_asks_for_a_rebuild(prepared: Path) -> None:
    """A manifest written before hashes were recorded: a clear message, not a KeyError."""
    manifest = read_json(prepared / MANIFEST)
    del manifest[MANIFEST_KEY]
    write_json(prepared / MANIFEST, manifest)
    with pytest.raises(ChecksumError, match=r"records no sha256 hashes .*before hashes were recorded.*prepare_model"):
        weights_dir(prepared)


def test_a_changed_local_model_folder_says_to_restore_or_prepare_again(prepared: Path, tmp_path: Path) -> None:
    manifest = prepare_model(model={"source": str(prepared)}, out_dir=tmp_path / "local")
    assert set(manifest[MANIFEST_KEY]) == set(folder_hashes(prepared)) >= {"model.safetensors", "config.json"}
    flip_byte(prepared / "model.safetensors")
    with pytest.raises(ChecksumError, match=r"restore the local model folder .*prepare_model"):
        weights_dir(tmp_path / "local")


def test_an_intact_adapter_loads(adapter: Path, tiny_model_dir: Path) -> None:
    loaded = variant_loader(spec=SPEC, model_dir=tiny_model_dir, weights=adapter, model=MODEL)()
    assert loaded.model.peft_config


def test_a_truncated_adapter_is_refused_by_every_loader(adapter: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    weights = adapter / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    expected = (
        re.escape(f"{weights} does not match the sha256 recorded in {adapter.parent}/train.json at training")
        + ".*"
        + re.escape(f"delete {adapter.parent} and rerun snakemake")
    )
    with pytest.raises(ChecksumError, match=expected):
        variant_loader(spec=SPEC, model_dir=tiny_model_dir, weights=adapter, model=MODEL)()
    with pytest.raises(ChecksumError, match=expected):
        load_tuned(
            spec=SPEC, base=load_model(model_dir=tiny_model_dir, device="cpu", dtype=torch.float32), weights=adapter
        )
    with pytest.raises(ChecksumError, match=expected):
        mitigate_intruders(
            spec=SPEC,
            model_dir=tiny_model_dir,
            weights=adapter,
            eval_path=tmp_path / "unused.jsonl",
            general_path=tmp_path / "unused.jsonl",
            config={"model": MODEL},
            out_path=tmp_path / "mitigation.json",
        )


def test_an_adapter_without_its_record_is_refused(adapter: Path, tiny_model_dir: Path) -> None:
    (adapter.parent / "train.json").unlink()
    with pytest.raises(ChecksumError, match=r"train.json is missing"):
        variant_loader(spec=SPEC, model_dir=tiny_model_dir, weights=adapter, model=MODEL)()
    write_json(adapter.parent / "train.json", {"run": {}, "metrics": {}, "meta": {"created_at": 0, "code_version": 0}})
    with pytest.raises(ChecksumError, match=r"records no sha256 hashes .*before hashes were recorded"):
        variant_loader(spec=SPEC, model_dir=tiny_model_dir, weights=adapter, model=MODEL)()


def test_a_corrupt_full_model_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "variant" / "model"))
    record_training(model)
    spec = VariantSpec(kind="fft", train_size=4, seed=1, learning_rate=1e-5)
    variant_loader(spec=spec, model_dir=tiny_model_dir, weights=model, model=MODEL)()  # intact: loads
    flip_byte(model / "model.safetensors", offset=(model / "model.safetensors").stat().st_size - 1)
    with pytest.raises(ChecksumError, match="model.safetensors does not match"):
        variant_loader(spec=spec, model_dir=tiny_model_dir, weights=model, model=MODEL)()


def test_the_test_manifest_records_hashes(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    write_manifest(tmp_path)
    assert read_json(tmp_path / MANIFEST)[MANIFEST_KEY] == {"config.json": sha256_file(tmp_path / "config.json")}
