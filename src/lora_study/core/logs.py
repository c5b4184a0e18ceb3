"""Logging for rule scripts: progress goes to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_path: str | Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)


@contextmanager
def logged_job(log_path: str | Path | None) -> Iterator[None]:
    """Run a rule's body with logging set up; a failure's traceback lands in the rule's log."""
    configure_logging(log_path)
    try:
        yield
    except BaseException:
        logging.getLogger("lora_study").exception("job failed")
        raise
