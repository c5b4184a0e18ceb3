"""What produced a result: package versions, device and time, recorded in every result JSON."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
from typing import Any



PACKAGES = (
    "torch", "transformers", "peft", "accelerate", "bitsandbytes", "datasets", "rouge-score", "snakemake", "lora-study",
)


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_description(device: str) -> str:
    """A human-readable name of the device that ran a job."""
    try:
        import torch  # here, not at the top: the report environment has no torch
    except ImportError:  # a job of the report environment (comparisons, summaries): no torch, so CPU
        return f"{platform.processor() or platform.machine()} (no torch)"
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def meta_info(*, device: str) -> dict[str, Any]:
    return {
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "device_name": device_description(device),
        "platform": platform.platform(),
        "versions": package_versions(),
    }
