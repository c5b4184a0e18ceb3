"""Rule prepare_model: turn the configured model source into a Hugging Face folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.logs import logged_job
from lora_study.stages.model.prepare import prepare_model

with logged_job(snakemake.log[0]):
    prepare_model(model=snakemake.params.model, out_dir=snakemake.output[0])
