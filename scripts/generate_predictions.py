"""Rules generate_predictions and generate_variant_predictions: the prediction of the
base model or of a trained variant for every evaluation example."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.grid import VariantSpec
from lora_study.core.logs import logged_job
from lora_study.model.evaluate import predict
from lora_study.model.loading import variant_loader

with logged_job(snakemake.log[0]):
    settings = snakemake.params.settings
    spec_fields = getattr(snakemake.params, "spec", None)  # absent for the base model
    loader = None
    variant = "base"
    if spec_fields:
        spec = VariantSpec.from_dict(spec_fields)
        loader = variant_loader(
            spec=spec, model_dir=snakemake.input.model, weights=snakemake.input.weights, model=settings["model"]
        )
        variant = spec.name
    predict(
        model_dir=snakemake.input.model,
        eval_path=snakemake.input.eval,
        config=settings,
        predictions_path=snakemake.output.predictions,
        info_path=snakemake.output.info,
        variant=variant,
        spec=spec_fields,
        load=loader,
    )
