"""Rule measure_latency: load the model at one precision and time forced-length generation."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.logs import logged_job
from lora_study.stages.quantise.quantise import benchmark_latency

with logged_job(snakemake.log[0]):
    benchmark_latency(
        model_dir=snakemake.input.model,
        eval_path=snakemake.input.eval,
        config=snakemake.params.settings,
        precision=snakemake.wildcards.precision,
        options=snakemake.params.options,
        latency_path=snakemake.output.latency,
    )
