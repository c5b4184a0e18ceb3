"""Atomic output: an interrupted write leaves the previous file (or none), never half a file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lora_study.core.io import atomic_directory, current_umask, read_jsonl, write_json, write_jsonl


def test_interrupted_write_keeps_previous_content(tmp_path: Path) -> None:
    target = tmp_path / "predictions.jsonl"
    write_jsonl(target, [{"id": "a"}])

    def rows():
        yield {"id": "b"}
        raise KeyboardInterrupt  # the job is killed while producing rows

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(target, rows())
    assert read_jsonl(target) == [{"id": "a"}]
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.jsonl"]


def test_written_files_are_readable_by_others(tmp_path: Path) -> None:
    write_json(tmp_path / "x" / "result.json", {"a": 1})
    assert (tmp_path / "x" / "result.json").stat().st_mode & 0o044 == 0o044


def test_malformed_jsonl_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_a_killed_writes_temporaries_are_removed_by_the_next_write(tmp_path: Path) -> None:
    """A job killed while saving leaves `.<name>.<random>` behind (mkdtemp/mkstemp names);
    the next write of the same output deletes it, and nothing else."""
    stale_folder = tmp_path / ".model.k1ll3d_x"
    (stale_folder / "sub").mkdir(parents=True)
    (stale_folder / "sub" / "model.safetensors").write_bytes(b"half")
    stale_file = tmp_path / ".train.json.abc_1234.tmp"
    stale_file.write_text("{")
    kept = [
        tmp_path / ".model.cache",  # not tempfile's 8 characters
        tmp_path / ".model.k1ll3d_x.bak",
        tmp_path / ".model.v2.k1ll3d_x",  # a temporary of another output, `model.v2`
        tmp_path / ".other.k1ll3d_x",
        tmp_path / ".snakemake_timestamp",
        tmp_path / "model.k1ll3d_x",
    ]
    for path in kept:
        path.write_text("keep")
    with atomic_directory(tmp_path / "model") as folder:
        (folder / "config.json").write_text("{}")
    write_json(tmp_path / "train.json", {"a": 1})
    assert not stale_folder.exists() and not stale_file.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model", "train.json", *(p.name for p in kept)])
    assert all(path.read_text() == "keep" for path in kept)


def test_files_saved_into_an_atomic_directory_follow_the_umask(tmp_path: Path) -> None:
    """safetensors writes 0600; a saved folder's files get the mode other results have."""
    from safetensors.torch import save_file

    with atomic_directory(tmp_path / "adapter") as folder:
        save_file({"w": torch.zeros(2)}, folder / "adapter_model.safetensors")
        (folder / "nested").mkdir(mode=0o700)
        write_json(folder / "nested" / "config.json", {})
    write_json(tmp_path / "train.json", {})
    expected = (tmp_path / "train.json").stat().st_mode & 0o777
    assert expected == 0o666 & ~current_umask()
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_mode & 0o777 == expected
    assert (tmp_path / "adapter" / "nested" / "config.json").stat().st_mode & 0o777 == expected
    for folder in (tmp_path / "adapter", tmp_path / "adapter" / "nested"):
        assert folder.stat().st_mode & 0o777 == 0o777 & ~current_umask()
