"""Rule generate_predictions: the model's prediction for every evaluation example."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.evaluate import predict
from lora_study.logs import logged_job

with logged_job(snakemake.log[0]):  # noqa: F821
    predict(
        model_dir=snakemake.input.model,  # noqa: F821
        eval_path=snakemake.input.eval,  # noqa: F821
        config=snakemake.params.settings,  # noqa: F821
        predictions_path=snakemake.output.predictions,  # noqa: F821
        info_path=snakemake.output.info,  # noqa: F821
        variant="base",
    )
