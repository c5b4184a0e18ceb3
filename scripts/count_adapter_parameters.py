"""Rule count_adapter_parameters: trainable parameters per rank and target preset (no training)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.logs import logged_job
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.stages.adapters.param_counts import parameter_table

with logged_job(snakemake.log[0]):
    table = parameter_table(
        model_dir=snakemake.input.model,
        ranks=snakemake.params.ranks,
        presets=snakemake.params.presets,
    )
    # Counted from the safetensors headers: no torch, no model built, no device.
    write_result(snakemake.output[0], **table, meta=meta_info())
