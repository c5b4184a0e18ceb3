"""The one result format: what write_result writes, read_result accepts, and the code version in meta."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lora_study.core.provenance import SOURCE_ROOT, code_version, meta_info
from lora_study.core.results import read_result, write_result

META = {"created_at": "2024-01-01T00:00:00+00:00", "code_version": "abc1234"}


def written(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_round_trip_keeps_sections_in_order(tmp_path: Path) -> None:
    path = tmp_path / "out" / "scores.json"
    write_result(path, run={"variant": "base"}, metrics={"per_example": [{"id": "a"}]}, meta=meta_info())
    result = read_result(path)
    assert list(result) == ["run", "metrics", "meta"]
    assert result["run"] == {"variant": "base"} and result["metrics"] == {"per_example": [{"id": "a"}]}
    assert result["meta"]["code_version"] == code_version() and result["meta"]["device"] is None


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"run": {}, "metrics": {}, "per_example": [], "meta": META}, "keys must be exactly run, metrics, meta"),
        ({"run": {}, "metrics": {}, "meta": {"created_at": "now"}}, "meta lacks code_version"),
        ({"run": {}, "metrics": [1, 2], "meta": META}, "metrics must be a JSON object, not list"),
        ({"metrics": {}, "run": {}, "meta": META}, "in that order"),
        ([], "must be a JSON object"),
    ],
)
def test_a_file_of_another_shape_is_rejected_naming_the_file(tmp_path: Path, obj: object, message: str) -> None:
    path = written(tmp_path / "bad.json", obj)
    with pytest.raises(ValueError, match=rf"{tmp_path}/bad\.json: .*{message}"):
        read_result(path)


def test_a_file_that_is_not_json_is_rejected_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"run": ')
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        read_result(path)


def test_nothing_is_written_for_a_meta_without_code_version(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"x\.json: meta lacks code_version"):
        write_result(tmp_path / "x.json", run={}, metrics={}, meta={"created_at": "now"})
    assert not list(tmp_path.iterdir())


def test_code_version_outside_a_checkout_says_unknown(tmp_path: Path) -> None:
    assert code_version(root=tmp_path) == "unknown (not a git checkout)"


@pytest.mark.skipif(not (SOURCE_ROOT / ".git").exists(), reason="the source is not a git checkout")
def test_code_version_of_the_repository_is_git_describe() -> None:
    described = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=SOURCE_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert code_version() == described
