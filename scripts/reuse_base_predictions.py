"""Rule reuse_base_predictions: the `full` precision's quality run is the base evaluation's."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.logs import logged_job
from lora_study.stages.evaluate.reuse import reuse_base_predictions

with logged_job(snakemake.log[0]):
    inputs, outputs = snakemake.input, snakemake.output
    reuse_base_predictions(
        predictions=inputs.predictions,
        info=inputs.info,
        predictions_out=outputs.predictions,
        info_out=outputs.info,
    )
