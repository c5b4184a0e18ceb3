"""Rule generate_quant_predictions: the evaluation's predictions with the model at one precision."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.logs import logged_job
from lora_study.quantise import predict_at_precision

with logged_job(snakemake.log[0]):  # noqa: F821
    predict_at_precision(
        model_dir=snakemake.input.model,  # noqa: F821
        eval_path=snakemake.input.eval,  # noqa: F821
        config=snakemake.params.settings,  # noqa: F821
        precision=snakemake.wildcards.precision,  # noqa: F821
        options=snakemake.params.options,  # noqa: F821
        predictions_path=snakemake.output.predictions,  # noqa: F821
        info_path=snakemake.output.info,  # noqa: F821
    )
