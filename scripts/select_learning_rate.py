"""Checkpoint select_learning_rate: one method's learning rate, chosen on the validation
split from every candidate's validation.json (lora_study.stages.selection.selection)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.logs import logged_job
from lora_study.core.provenance import meta_info
from lora_study.core.results import read_result, write_result
from lora_study.stages.selection.selection import choose_rate

with logged_job(snakemake.log[0]):
    candidates: dict[float, list] = {}
    for path in snakemake.input.validation:
        result = read_result(path)
        candidates.setdefault(float(result["run"]["spec"]["learning_rate"]), []).append(result)
    statistics = snakemake.params.statistics
    metrics = choose_rate(
        candidates=candidates,
        resamples=statistics["resamples"],
        seed=statistics["seed"],
        confidence=statistics["confidence"],
    )
    write_result(
        snakemake.output[0],
        run={"method": snakemake.wildcards.method, "specs": snakemake.params.specs},
        metrics=metrics,
        meta=meta_info(),
    )
