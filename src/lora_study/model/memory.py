"""Memory of a job: this process's resident set (now and its peak), CUDA's allocations, and
the bytes a model's weights hold (what a precision or a merge changes)."""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

_PROC_STATUS = Path("/proc/self/status")


_PROC_CLEAR_REFS = Path("/proc/self/clear_refs")


def current_rss_bytes() -> int | None:
    """Resident memory of this process now (Linux; None elsewhere)."""
    return _status_bytes("VmRSS")


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (since start, or since `reset_peak_rss`)."""
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB elsewhere


def reset_peak_rss() -> bool:
    """Reset the peak-RSS mark to the current RSS (Linux: /proc/self/clear_refs "5");
    False where that is not possible, and the peak then covers the whole process."""
    try:
        _PROC_CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _status_bytes(field: str) -> int | None:
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    except OSError:
        return None
    return None


def cuda_memory(device: str) -> Mapping[str, int] | None:
    """Allocated and peak-allocated CUDA memory in bytes (None off CUDA)."""
    if not device.startswith("cuda"):
        return None
    torch.cuda.synchronize()
    return {"allocated_bytes": torch.cuda.memory_allocated(), "peak_allocated_bytes": torch.cuda.max_memory_allocated()}


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights the model actually holds: every distinct tensor of its state
    (quantised weights with their scales and quantisation state, unquantised layers,
    buffers); tied tensors are counted once."""
    seen: set[int] = set()
    total = 0
    for tensor in _state_tensors(model.state_dict()):
        if tensor.is_quantized:
            total += tensor.numel() * tensor.element_size()
            if tensor.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                scales, zeros = tensor.q_per_channel_scales(), tensor.q_per_channel_zero_points()
                total += scales.numel() * scales.element_size() + zeros.numel() * zeros.element_size()
            continue
        key = tensor.untyped_storage().data_ptr() if tensor.numel() else id(tensor)
        if key in seen:
            continue
        seen.add(key)
        total += tensor.untyped_storage().nbytes()
    return total


def _state_tensors(values: Mapping[str, Any]) -> Iterator[torch.Tensor]:
    for value in values.values():
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (tuple, list)):  # dynamic-quantised Linear: (weight, bias)
            yield from (item for item in value if isinstance(item, torch.Tensor))
