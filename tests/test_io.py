"""Atomic output: an interrupted write leaves the previous file (or none), never half a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from lora_study.io import read_jsonl, write_json, write_jsonl


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
