"""What produced a result: code version, package versions, device and time, recorded in every
result JSON's `meta`."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

# The checkout holding this package's source (src/lora_study/ -> the repository root): the
# workflow may run with --directory elsewhere, so the working directory says nothing.
SOURCE_ROOT = Path(__file__).resolve().parents[3]
# lora-study itself is absent: it runs from src/ on sys.path, never pip-installed, so its
# version is the code version, not a package version.
PACKAGES = ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "datasets", "rouge-score", "snakemake")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def code_version(*, root: Path = SOURCE_ROOT) -> str:
    """`git describe --always --dirty` of `root`, asked at job time (a rule param would rerun
    every job on each commit); a sentence starting "unknown" where git cannot say."""
    # Only `root` itself: git would otherwise describe whatever repository encloses a copy.
    if not (root / ".git").exists():
        return "unknown (not a git checkout)"
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except FileNotFoundError:
        return "unknown (git not installed)"
    except (OSError, subprocess.SubprocessError) as error:
        return f"unknown (git describe failed: {error})"
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        return f"unknown (git describe failed: {reason})"
    return done.stdout.strip()


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module knows; run
    records name the machine by it, since `x86_64` says nothing about speed."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: fall back below
    return platform.processor() or platform.machine()


# The instruction-set extensions that pick a kernel for int8, bfloat16 or 4-bit arithmetic
# (x86: AVX2, AVX-512 and its VNNI and BF16 parts, AMX; Arm: NEON/ASIMD, SVE, BF16, I8MM).
ISA_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)


def cpu_features(*, cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """What tells two CPUs apart where the model name does not (a VM often says only "Intel(R)
    Xeon(R) Processor"): vendor, family, model number and stepping, and the instruction-set
    extensions among ISA_FLAGS the first CPU reports (Linux; elsewhere only the model name)."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    break  # the first CPU's block is enough: the others are the same chip
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return {"model": cpu_model(), "isa": None}
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {
        "model": cpu_model(),
        "vendor": fields.get("vendor_id") or fields.get("CPU implementer"),
        "family": fields.get("cpu family") or fields.get("CPU architecture"),
        "model_number": fields.get("model") or fields.get("CPU part"),
        "stepping": fields.get("stepping") or fields.get("CPU variant"),
        "isa": [flag for flag in ISA_FLAGS if flag in flags],
    }


def device_description(device: str) -> str:
    """A human-readable name of the device that ran a job.

    torch is asked only when the job already imported it: a job that computed with torch
    has, and a torch-free job (ROUGE, comparisons, summaries) computed on the CPU without
    it; importing torch here just to say so cost those jobs seconds of start-up each, and
    fails in the report environment, which has no torch."""
    torch = sys.modules.get("torch")
    if torch is None:
        return f"{cpu_model()} (no torch)"
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def meta_info(*, device: str | None = None) -> dict[str, Any]:
    """A result's `meta`; `device` None for a job that computes on no device (data, counts)."""
    return {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "device": device,
        "device_name": device_description(device) if device else None,
        "platform": platform.platform(),
        "cpu": {"model": cpu_model(), "cores": os.cpu_count()},
        "versions": package_versions(),
    }
