"""Rule generate_quant_predictions: the evaluation's predictions with the model at one precision."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.logs import logged_job
from lora_study.stages.quantise.quantise import predict_at_precision

with logged_job(snakemake.log[0]):
    predict_at_precision(
        model_dir=snakemake.input.model,
        eval_path=snakemake.input.eval,
        config=snakemake.params.settings,
        precision=snakemake.wildcards.precision,
        options=snakemake.params.options,
        predictions_path=snakemake.output.predictions,
        info_path=snakemake.output.info,
    )
