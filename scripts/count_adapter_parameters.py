"""Rule count_adapter_parameters: trainable parameters per rank and target preset (no training)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.adapters import parameter_table
from lora_study.io import write_json
from lora_study.logs import logged_job

with logged_job(snakemake.log[0]):  # noqa: F821
    table = parameter_table(
        model_dir=snakemake.input.model,  # noqa: F821
        ranks=snakemake.params.ranks,  # noqa: F821
        presets=snakemake.params.presets,  # noqa: F821
    )
    write_json(snakemake.output[0], table)  # noqa: F821
