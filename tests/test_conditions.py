"""Run conditions: the CPU time of other processes during a run, and the under-load verdict."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from lora_study.core.conditions import OTHER_CORES_LIMIT, Snapshot, any_under_load, conditions, load_summary, snapshot


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs Linux /proc/stat")
def test_another_busy_process_shows_as_other_cpu_time() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start spinning
        start = snapshot()
        started = time.perf_counter()
        time.sleep(1.0)  # this process idles; the other one spins a whole core
        seconds = time.perf_counter() - started
        found = conditions(start=start, end=snapshot(), seconds=seconds)
    finally:
        busy.kill()
        busy.wait()
    assert found["cpu_seconds"] < 0.2
    assert found["other_cpu_seconds"] > 0.6  # about one core for one second
    assert found["other_cores"] > OTHER_CORES_LIMIT


def test_own_cpu_time_is_taken_out_of_the_machine_busy_time() -> None:
    start = Snapshot(process_cpu_seconds=1.0, machine_busy_seconds=100.0, load_average_1m=0.5)
    end = Snapshot(process_cpu_seconds=3.0, machine_busy_seconds=105.0, load_average_1m=0.7)
    found = conditions(start=start, end=end, seconds=2.5)
    # The machine was busy 5 s, 2 of them this process: others used 3 s in 2.5 s.
    assert found == {"load_average_1m": 0.5, "cpu_seconds": 2.0, "other_cpu_seconds": 3.0, "other_cores": 1.2}
    # Tick rounding can make the remainder negative: no negative use.
    rounded = Snapshot(process_cpu_seconds=3.004, machine_busy_seconds=102.0, load_average_1m=0.7)
    assert conditions(start=start, end=rounded, seconds=2.0)["other_cpu_seconds"] == 0.0
    unknown = Snapshot(process_cpu_seconds=3.0, machine_busy_seconds=None, load_average_1m=None)
    assert conditions(start=start, end=unknown, seconds=2.0)["other_cores"] is None


def test_summary_flags_a_file_with_a_run_under_load() -> None:
    quiet = {"other_cores": 0.05, "load_average_1m": 1.0}
    loaded = {"other_cores": 0.9, "load_average_1m": 3.0}
    assert load_summary([quiet, quiet], threads=2, cpus=2)["under_load"] is False
    summary = load_summary([quiet, loaded, quiet], threads=2, cpus=2)
    assert summary["under_load"] is True and summary["runs_under_load"] == 1
    assert summary["max_other_cores"] == 0.9 and summary["max_load_average_1m"] == 3.0
    assert load_summary([{"other_cores": None, "load_average_1m": None}], threads=2)["under_load"] is None
    # On a bigger machine the cores this job leaves free may be busy without slowing it.
    assert load_summary([loaded], threads=2, cpus=4)["under_load"] is False
    assert load_summary([loaded], threads=2, cpus=4)["other_cores_limit"] == 2.25


def test_unknown_load_is_not_reported_as_quiet() -> None:
    assert any_under_load([False, True, None]) is True
    assert any_under_load([False, False]) is False
    assert any_under_load([False, None]) is None
    assert any_under_load([]) is None
