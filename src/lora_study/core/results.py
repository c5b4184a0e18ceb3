"""The one format of every result JSON under results/, and its one writer and reader.

A result is a JSON object with exactly three keys, in this order, each a JSON object:
`run` (what was asked: variant, settings, input files), `metrics` (what was measured,
per-example rows included) and `meta` (how and when: `lora_study.core.provenance.meta_info`,
with at least `created_at` and `code_version`). Readers then never guess where a value
lives, and a file of another shape fails loudly, naming itself.

Standard library only (and lora_study.core.io): the report environment reads results too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from lora_study.core.io import read_json, write_json

SECTIONS = ("run", "metrics", "meta")
META_REQUIRED = ("created_at", "code_version")


def check_result(obj: Any, *, source: str) -> None:
    """Raise ValueError, naming `source`, unless `obj` is in the result format."""
    if not isinstance(obj, dict):
        raise ValueError(f"{source}: a result must be a JSON object, not {type(obj).__name__}")
    if list(obj) != list(SECTIONS):
        raise ValueError(
            f"{source}: a result's keys must be exactly {', '.join(SECTIONS)} in that order, "
            f"not {', '.join(map(str, obj)) or 'none'}"
        )
    for section in SECTIONS:
        if not isinstance(obj[section], dict):
            raise ValueError(f"{source}: {section} must be a JSON object, not {type(obj[section]).__name__}")
    missing = [key for key in META_REQUIRED if key not in obj["meta"]]
    if missing:
        raise ValueError(f"{source}: meta lacks {', '.join(missing)}")


def write_result(
    path: str | os.PathLike[str], *, run: Mapping[str, Any], metrics: Mapping[str, Any], meta: Mapping[str, Any]
) -> None:
    """Check, then write atomically: a wrongly shaped result never reaches the disk."""
    result = {"run": dict(run), "metrics": dict(metrics), "meta": dict(meta)}
    check_result(result, source=os.fspath(path))
    write_json(path, result)


def read_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        result = read_json(path)
    except json.JSONDecodeError as error:
        raise ValueError(f"{os.fspath(path)}: not valid JSON: {error}") from error
    check_result(result, source=os.fspath(path))
    return result
