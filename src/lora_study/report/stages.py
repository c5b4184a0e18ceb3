"""The report's stages in page order; rule build_report's named inputs must be exactly the
inputs they declare (inputs.check_inputs), so a stage cannot lose a file the rule gathers.

A stage is a module of this package ending in `STAGE = Stage(...)`; its place on the page is its
name in PAGE_ORDER, the one line a new stage adds here ("module:NAME" for a second stage of a
module: foundation's provenance closes the page).
"""

from __future__ import annotations

import importlib

from lora_study.report.inputs import Stage

PAGE_ORDER = (
    "summary",
    "foundation",
    "task_results",
    "compare",
    "selection",
    "training",
    "quantisation",
    "drift",
    "weights",
    "serving",
    "tables",
    "foundation:PROVENANCE",
)


def stage_named(entry: str) -> Stage:
    module, _, attribute = entry.partition(":")
    return getattr(importlib.import_module(f"lora_study.report.{module}"), attribute or "STAGE")


STAGES: tuple[Stage, ...] = tuple(stage_named(entry) for entry in PAGE_ORDER)
