"""What checking the model files' sha256 costs a job (lora_study.core.checksums).

    python bench/hash_cost.py resources/models/smollm2-135m-instruct
    python bench/hash_cost.py results/adapters/smollm2-135m-instruct/aclsum/*/adapter

For each folder: its hashed files and bytes, then the best of --repeats timings of
hashlib.file_digest (what checksums.sha256_file uses) and of plain reads in 1 MiB and
8 MiB chunks, with the throughput. The files are read once first, so the figures are for
a warm page cache (a job that just loaded or wrote them); a cold read adds the disk's time,
which loading the weights pays anyway.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lora_study.core.checksums import model_files  # noqa: E402


def file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def chunked(size: int) -> Callable[[Path], str]:
    def digest(path: Path) -> str:
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(size):
                sha.update(chunk)
        return sha.hexdigest()

    return digest


def best_seconds(*, files: list[Path], digest: Callable[[Path], str], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        for path in files:
            digest(path)
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    methods = {"file_digest": file_digest, "1 MiB reads": chunked(1 << 20), "8 MiB reads": chunked(8 << 20)}
    for folder in args.folders:
        files = model_files(folder)
        size = sum(path.stat().st_size for path in files)
        print(f"{folder}: {len(files)} files, {size / 1e6:.1f} MB")
        for path in files:
            file_digest(path)  # warm the page cache
        for name, digest in methods.items():
            seconds = best_seconds(files=files, digest=digest, repeats=args.repeats)
            print(f"  {name:12} {seconds * 1000:8.1f} ms  {size / 1e6 / seconds:7.0f} MB/s")


if __name__ == "__main__":
    main()
