"""Are two runs' results the same, value for value? For a change that should move no number
(a restructure, a new schedule): every result file under results/ of RUN_A and RUN_B, compared
exactly, except what a rerun cannot repeat: each result's `meta` (dates, versions, machine),
every measured time, speed, memory or machine load (keys named below) and the code version
the tables' rows carry.

    python bench/same_results.py RUN_A RUN_B            # exit 0: the same; 1: a value or file differs
    python bench/same_results.py RUN_A RUN_B --show 50  # list up to 50 differing values
    python bench/same_results.py RUN_A RUN_B --rel-tol 1e-9  # numbers this close listed apart, not failing

`--rel-tol` is for a change that reorders floating-point arithmetic on purpose (a faster
formula for the same quantity): numbers within it (relative, or absolute near zero) are
counted and listed apart, with the largest gap, so a reader sees how close "the same" was.

Reads JSON results (run, metrics), JSONL rows and CSV rows; model weights and NumPy arrays are
left to their own checks (checksums in train.json and merge.json are compared here).
Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Keys whose values are measurements of the machine, not results of the study: they differ
# between two runs of the same code. A key is skipped when one of its words (split at "_") is
# one of these: `tokens_per_second`, `peak_rss_bytes`, `under_load`, `created_at`, ...
MEASURED = {
    "second",
    "seconds",
    "time",
    "latency",
    "ttft",
    "tpot",
    "throughput",
    "gflops",
    "rss",
    "cuda",
    "memory",
    "load",
    "cores",
    "elapsed",
    "created",
    "timed",
    "busy",
    "wall",
    "date",
    "host",
}


# What names the code rather than the result: the tables' columns `code_version` and `run`
# (the config hash, which has its own column, joined to the code version).
PROVENANCE = {"code_version"}
TABLE_PROVENANCE = {"run"}


def measured(key: object) -> bool:
    # A table's column may join keys with dots: decode_tokens_per_second.p50.
    return bool(MEASURED & set(re.split(r"[_.]", str(key).lower()))) or key in PROVENANCE


SUFFIXES = (".json", ".jsonl", ".csv")


def result_files(root: Path) -> dict[str, Path]:
    """Result files under root/results by relative path, outside model and adapter folders."""
    found = {}
    for path in sorted((root / "results").rglob("*")):
        relative = path.relative_to(root)
        if path.suffix in SUFFIXES and not {"model", "adapter"} & set(relative.parts[:-1]):
            found[relative.as_posix()] = path
    return found


def content(path: Path) -> Any:
    """A file's comparable content: a JSON result without its meta, JSONL or CSV rows."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return [
            {key: value for key, value in row.items() if key not in TABLE_PROVENANCE}
            for row in csv.DictReader(text.splitlines())
        ]
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if isinstance(data, dict) and "meta" in data:
        data = {key: value for key, value in data.items() if key != "meta"}
    return data


def number(value: Any) -> float | None:
    """A JSON number, or a CSV cell that is one; None for anything else (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def differences(a: Any, b: Any, *, where: str = "") -> Iterator[tuple[str, float | None]]:
    """Where `a` and `b` differ, skipping measured keys, with the relative gap where both are
    numbers (None otherwise); values are compared exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if measured(key):
                continue
            if key not in a or key not in b:
                yield f"{where}.{key}: only in {'B' if key not in a else 'A'}", None
            else:
                yield from differences(a[key], b[key], where=f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: {len(a)} items against {len(b)}", None
        for index, (x, y) in enumerate(zip(a, b, strict=False)):
            yield from differences(x, y, where=f"{where}[{index}]")
    elif a != b and not (a != a and b != b):  # NaN equals NaN here
        x, y = number(a), number(b)
        gap = None
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y):
            gap = abs(x - y) / max(abs(x), abs(y), 1.0)  # relative, absolute below 1
        yield f"{where}: {a!r} against {b!r}", gap


def compare(*, run_a: Path, run_b: Path, rel_tol: float = 0.0) -> tuple[list[str], list[str], int]:
    """The differences (files missing on one side included), the numbers that differ by at
    most `rel_tol`, and the number of files compared."""
    files_a, files_b = result_files(run_a), result_files(run_b)
    found = [f"{name}: only in A" for name in sorted(set(files_a) - set(files_b))]
    found += [f"{name}: only in B" for name in sorted(set(files_b) - set(files_a))]
    close = []
    shared = sorted(set(files_a) & set(files_b))
    for name in shared:
        for text, gap in differences(content(files_a[name]), content(files_b[name])):
            within = gap is not None and gap <= rel_tol
            (close if within else found).append(f"{name}{text}" + (f" (gap {gap:.1e})" if within else ""))
    return found, close, len(shared)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--show", type=int, default=20, help="differences to list (default 20)")
    parser.add_argument(
        "--rel-tol", type=float, default=0.0, help="numbers within this relative gap are listed apart (default 0)"
    )
    args = parser.parse_args(argv)
    found, close, compared = compare(run_a=args.run_a, run_b=args.run_b, rel_tol=args.rel_tol)
    print(f"{compared} result files in both runs; {len(found)} differences (measured times and meta skipped)")
    for line in found[: args.show]:
        print(f"  {line}")
    if args.rel_tol:
        print(f"{len(close)} numbers differ by at most {args.rel_tol:g} (relative; absolute below 1)")
        for line in close[: args.show]:
            print(f"  {line}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
