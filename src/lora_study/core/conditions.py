"""What the machine was doing while a run was timed, recorded beside the run.

On a shared machine the same int8 prompts measured 2.6 s per example quiet and 9-33 s
under load, and nothing in the file showed it. So every timed run records the 1-minute
load average at its start, the CPU time this process spent in it, and (Linux) the CPU time
every other process spent meanwhile: the machine's busy time from /proc/stat minus this
process's. The load average lags by about a minute (right after another job it still
counts that job), so the verdict "taken under load" rests on the other processes' CPU
time during the run itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PROC_STAT = Path("/proc/stat")
# A run counts as taken under load when other processes used more than this many cores on
# average during it beyond the cores the job leaves free (a quarter core: the scheduler then
# takes measurable time from a job that uses every core it was given). On a 2-core machine
# and a 2-thread job: 0.25; on a 64-core node and a 16-thread job: 48.25.
OTHER_CORES_LIMIT = 0.25


@dataclass(frozen=True)
class Snapshot:
    process_cpu_seconds: float
    machine_busy_seconds: float | None  # every CPU's non-idle time since boot (Linux)
    load_average_1m: float | None


def snapshot() -> Snapshot:
    """The clocks a run's conditions are read from, now."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return Snapshot(
        process_cpu_seconds=time.process_time(), machine_busy_seconds=_machine_busy_seconds(), load_average_1m=load
    )


def conditions(*, start: Snapshot, end: Snapshot, seconds: float) -> dict[str, float | None]:
    """A run's conditions: load average at its start, this process's CPU seconds in it, and
    the CPU seconds and mean cores of every other process meanwhile (None off Linux)."""
    cpu = end.process_cpu_seconds - start.process_cpu_seconds
    other = None
    if start.machine_busy_seconds is not None and end.machine_busy_seconds is not None:
        # /proc/stat ticks are 10 ms: a negative remainder is rounding, not negative use.
        other = max(0.0, end.machine_busy_seconds - start.machine_busy_seconds - cpu)
    return {
        "load_average_1m": start.load_average_1m,
        "cpu_seconds": cpu,
        "other_cpu_seconds": other,
        "other_cores": other / seconds if other is not None and seconds > 0 else None,
    }


def other_cores_limit(*, threads: int, cpus: int | None = None) -> float:
    """Other processes' mean cores above which a run of `threads` threads was under load."""
    cpus = cpus or os.cpu_count() or threads
    return OTHER_CORES_LIMIT + max(0, cpus - threads)


def load_summary(runs: Iterable[Mapping[str, Any]], *, threads: int, cpus: int | None = None) -> dict[str, Any]:
    """Over a file's timed runs (dicts with the fields of `conditions`) of a job using
    `threads` threads: whether any was taken under load (None: the OS does not tell), how
    many, the largest share of other processes and load average, and the definition."""
    runs = list(runs)
    limit = other_cores_limit(threads=threads, cpus=cpus)
    others = [r["other_cores"] for r in runs if r.get("other_cores") is not None]
    loads = [r["load_average_1m"] for r in runs if r.get("load_average_1m") is not None]
    return {
        "under_load": (max(others) > limit) if others else None,
        "runs_under_load": sum(other > limit for other in others) if others else None,
        "max_other_cores": max(others) if others else None,
        "max_load_average_1m": max(loads) if loads else None,
        "other_cores_limit": limit,
        "under_load_definition": (
            f"a timed run is under load when other processes used more than {limit:g} cores on average during it "
            f"({OTHER_CORES_LIMIT} beyond the {limit - OTHER_CORES_LIMIT:g} of {cpus or os.cpu_count()} CPUs this "
            f"job's {threads} threads leave free; machine busy time from /proc/stat minus this process's CPU "
            "time); null where the OS does not tell"
        ),
    }


def any_under_load(flags: Iterable[bool | None]) -> bool | None:
    """True if any part was under load, False if every part was measured and none was, None
    if some part could not be measured and none was found under load."""
    flags = list(flags)
    if any(flag is True for flag in flags):
        return True
    if not flags or any(flag is None for flag in flags):
        return None
    return False


def load_mark(under_load: bool | None) -> str:
    """What a report puts beside a timing, as the serving section does: " (under load)" when other
    processes took CPU the job needed, " (load unknown)" where the file could not tell (or
    predates the flag), nothing for a quiet timing."""
    return {True: " (under load)", None: " (load unknown)"}.get(under_load, "")


def _machine_busy_seconds() -> float | None:
    try:
        fields = _PROC_STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
    ticks = [int(value) for value in fields[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def free_memory_bytes(*, proc: Path = Path("/proc"), cgroups: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Memory this job may still take: MemAvailable, or less where the job's cgroup or one
    above it (a SLURM job or step, a container) has a limit; None where neither can be read."""
    limits = []
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:
        entries = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        entries = []
    for entry in entries:
        number, controllers, path = entry.split(":", 2)
        if number == "0" and controllers == "":  # cgroup v2
            limits += _cgroup_room(root=cgroups, path=path, limit="memory.max", usage="memory.current")
        elif "memory" in controllers.split(","):  # cgroup v1's memory hierarchy
            root = cgroups / "memory"
            limits += _cgroup_room(root=root, path=path, limit="memory.limit_in_bytes", usage="memory.usage_in_bytes")
    return min(limits) if limits else None


def _cgroup_room(*, root: Path, path: str, limit: str, usage: str) -> list[int]:
    """Limit minus usage of every cgroup from `path` up to `root` that sets a limit."""
    room = []
    folder = root / path.strip().lstrip("/")
    while True:
        try:
            maximum = (folder / limit).read_text().strip()
            # v2 writes "max" for no limit; v1 a number near 2**63.
            if maximum != "max" and int(maximum) < 2**62:
                room.append(int(maximum) - int((folder / usage).read_text()))
        except (OSError, ValueError):
            pass
        if folder == root or root not in folder.parents:
            return room
        folder = folder.parent
