"""Record a benchmark's printed figures in docs/results/, with what produced them.

    python bench/record_bench.py --out docs/results --quiet -- python bench/batch_order.py --megabatch 4 8 12

Runs the command, and writes `<date>-<code version>-bench-<script name>/README.md` holding
the code version, the exact command, the machine, whether it was quiet, the wall time and
the command's output verbatim (the figures are the benchmark's own print, never typed).
A failed command records nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lora_study.core.io import atomic_write_text
from lora_study.core.provenance import code_version, cpu_model


def machine() -> str:
    """CPU model, cores, memory and GPU, as a reader compares machines."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        gpus = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        gpus = ""
    return f"{cpu_model()}, {os.cpu_count()} cores, {memory:.1f} GiB RAM, {gpus.replace(chr(10), ', ') or 'no GPU'}"


def record(*, command: Sequence[str], out: Path, quiet: bool, note: str) -> Path:
    """Run `command` in the repository and write its record; return the record's folder."""
    started = time.perf_counter()
    done = subprocess.run(list(command), cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed (exit status {done.returncode}):\n{done.stderr[-3000:]}")
    version = code_version()
    script = next((Path(part).stem for part in command if part.endswith(".py")), Path(command[0]).name)
    folder = out / f"{dt.date.today().isoformat()}-{version}-bench-{script}"
    quiet_text = "yes" if quiet else f"no{': ' + note if note else ''}"
    atomic_write_text(
        folder / "README.md",
        f"# Benchmark {script} at {version}\n\n"
        "Written by `bench/record_bench.py`: the output below is the benchmark's own print.\n\n"
        f"| | |\n|---|---|\n| code version | `{version}` |\n| command | `{shlex.join(command)}` |\n"
        f"| machine | {machine()} |\n| quiet machine | {quiet_text} |\n| wall time | {seconds:.0f} s |\n"
        f"| date | {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} |\n\n"
        f"```\n{done.stdout.rstrip()}\n```\n",
    )
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where record folders go (docs/results)")
    quiet = parser.add_mutually_exclusive_group(required=True)
    quiet.add_argument("--quiet", dest="quiet", action="store_true", help="nothing else ran on the machine")
    quiet.add_argument("--not-quiet", dest="quiet", action="store_false", help="something ran beside it (--note)")
    parser.add_argument("--note", default="", help="what else ran")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the benchmark's command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the benchmark's command after --")
    try:
        print(record(command=command, out=args.out.resolve(), quiet=args.quiet, note=args.note))
    except RuntimeError as error:
        print(f"record_bench: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
