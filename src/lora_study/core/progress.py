"""Progress lines for long jobs: how much is done of how much, the time so far and an estimate
of the time left, written to the job's log and its terminal (core.logs) alike.

The estimate assumes the remaining units cost what the finished ones cost on average: right
for training steps of similar size, an upper bound for generation, whose later rows end sooner.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def clock_text(seconds: float) -> str:
    """`seconds` as h:mm:ss or m:ss."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def remaining_seconds(*, done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the mean pace so far; None before the first unit is done."""
    if done <= 0:
        return None
    return elapsed / done * max(0, total - done)


class Progress:
    """`line(done)` says "done/total unit, elapsed m:ss, about m:ss left"; `due()` is true at
    most once every `every` seconds, so a fast loop logs a line now and then, not each turn."""

    def __init__(
        self, *, total: int, unit: str, every: float = 10.0, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.total, self.unit, self.every, self.clock = total, unit, every, clock
        self.started = clock()
        self.last_line = self.started

    def line(self, done: int) -> str:
        now = self.clock()
        self.last_line = now
        elapsed = now - self.started
        left = remaining_seconds(done=done, total=self.total, elapsed=elapsed)
        estimate = "" if left is None or done >= self.total else f", about {clock_text(left)} left"
        return f"{done}/{self.total} {self.unit}, {clock_text(elapsed)} elapsed{estimate}"

    def due(self) -> bool:
        return self.clock() - self.last_line >= self.every
