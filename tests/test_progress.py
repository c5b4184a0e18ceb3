"""Progress lines (core.progress): elapsed time, the estimate of time left, and how often a
fast loop writes one; and the step count that training's progress line divides by."""

from __future__ import annotations

import pytest

from lora_study.core.progress import Progress, clock_text, remaining_seconds
from lora_study.model.training import epoch_batches, optimizer_steps


def test_clock_text() -> None:
    assert clock_text(0) == "0:00"
    assert clock_text(59.4) == "0:59"
    assert clock_text(61) == "1:01"
    assert clock_text(3725) == "1:02:05"


def test_remaining_seconds_at_the_mean_pace() -> None:
    assert remaining_seconds(done=0, total=10, elapsed=5.0) is None
    assert remaining_seconds(done=2, total=10, elapsed=5.0) == pytest.approx(20.0)
    assert remaining_seconds(done=10, total=10, elapsed=5.0) == 0.0


def test_progress_lines_and_their_pace() -> None:
    now = [100.0]
    progress = Progress(total=50, unit="steps", every=10.0, clock=lambda: now[0])
    now[0] = 130.0
    assert progress.line(10) == "10/50 steps, 0:30 elapsed, about 2:00 left"
    assert not progress.due()
    now[0] = 139.9
    assert not progress.due()
    now[0] = 140.0
    assert progress.due()
    now[0] = 400.0
    assert progress.line(50) == "50/50 steps, 5:00 elapsed"  # done: no estimate


@pytest.mark.parametrize(("items", "batch", "accumulation", "epochs"), [(5, 2, 2, 3), (100, 4, 2, 2), (7, 8, 1, 1)])
def test_optimizer_steps_are_the_accumulation_windows(items: int, batch: int, accumulation: int, epochs: int) -> None:
    """What train_loop steps through: the windows of `accumulation` batches, per epoch."""
    settings = {"batch_size": batch, "grad_accumulation": accumulation, "epochs": epochs}
    windows = 0
    for epoch in range(epochs):
        batches = epoch_batches(lengths=[10] * items, batch_size=batch, megabatch=1, seed=0, epoch=epoch)
        windows += len(range(0, len(batches), accumulation))
    assert optimizer_steps(items=items, settings=settings) == windows
