"""Rule measure_latency: load the model at one precision and time forced-length generation."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.logs import logged_job
from lora_study.quantise import benchmark_latency

with logged_job(snakemake.log[0]):  # noqa: F821
    benchmark_latency(
        model_dir=snakemake.input.model,  # noqa: F821
        eval_path=snakemake.input.eval,  # noqa: F821
        config=snakemake.params.settings,  # noqa: F821
        precision=snakemake.wildcards.precision,  # noqa: F821
        options=snakemake.params.options,  # noqa: F821
        latency_path=snakemake.output.latency,  # noqa: F821
    )
