"""File output that never leaves a half-written result behind.

Every result is written to a temporary file in the destination's directory and then
renamed over the destination, which is atomic on POSIX: a job killed mid-write leaves
either the old file or none, never a truncated one. The temporary sibling a killed job
leaves behind is deleted by the next attempt to write the same output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The prepared model folder's record of where it came from and how it was checked. Named here,
# not in lora_study.model.loading (which re-exports it), so that code without torch (the report
# and its conda env, envs/report.yaml) can read it.
MANIFEST = "manifest.json"

# tempfile's mkstemp and mkdtemp add 8 characters of this set to the prefix; files get the
# suffix `.tmp`. Matching exactly this keeps other hidden files (and the temporaries of an
# output named `<name>.<something>`) safe from remove_stale_temporaries.
_TEMP_TAIL = r"\.[a-z0-9_]{8}(\.tmp)?"


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically, creating parent directories."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to a temporary sibling, then rename it over `path`: a killed job never
    leaves half a file under the real name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; results are for sharing
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(path: str | os.PathLike[str]) -> None:
    """Delete the temporary siblings (`.<name>.<random>`) that an attempt at writing `path`
    left when it was killed (a 253 MB folder for full fine-tuning weights). Safe to call at
    the start of a write: Snakemake never runs two jobs that write one output, and a job
    writes each of its outputs once, so no live write owns them."""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}") + _TEMP_TAIL)
    for sibling in path.parent.iterdir():
        if not pattern.fullmatch(sibling.name):
            continue
        if sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)


def follow_umask(folder: Path) -> None:
    """Give every file and folder under `folder` the permissions the umask allows, as plain
    open() would: safetensors writes weight files 0600, other results are 0644. Only adds
    permissions, never removes them."""
    mask = current_umask()
    for entry in [folder, *folder.rglob("*")]:
        if entry.is_symlink():
            continue
        allowed = (0o777 if entry.is_dir() else 0o666) & ~mask
        mode = entry.stat().st_mode & 0o7777
        if mode | allowed != mode:
            os.chmod(entry, mode | allowed)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON (keys in insertion order) atomically. Result files go
    through `lora_study.core.results.write_result`, which checks their format first."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write one JSON object per line atomically."""
    atomic_write_text(path, "".join(json.dumps(dict(row), ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSONL file; a malformed line raises ValueError naming the file and line."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON: {error.msg}") from error
    return rows


@contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces `path` in one
    rename, on failure it is deleted: a half-written folder never looks complete. A
    killed job cannot delete it: the next attempt does (remove_stale_temporaries)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        follow_umask(tmp)  # mkdtemp makes 0700, safetensors 0600: results are for sharing
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
