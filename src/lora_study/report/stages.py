"""The report's stages in page order; rule build_report's named inputs must be exactly the
inputs they declare (inputs.check_inputs), so a stage cannot lose a file the rule gathers."""

from __future__ import annotations

from lora_study.report import (
    compare,
    drift,
    foundation,
    quantisation,
    selection,
    serving,
    summary,
    tables,
    task_results,
    training,
    weights,
)
from lora_study.report.inputs import Stage

STAGES: tuple[Stage, ...] = (
    summary.STAGE,
    foundation.STAGE,
    task_results.STAGE,
    compare.STAGE,
    selection.STAGE,
    training.STAGE,
    quantisation.STAGE,
    drift.STAGE,
    weights.STAGE,
    serving.STAGE,
    tables.STAGE,
    foundation.PROVENANCE,
)
