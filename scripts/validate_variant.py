"""Rule validate_variant: a trained variant's loss on every validation example (what a
learning-rate sweep chooses on). It reads the validation subset only, never the test set."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.grid import VariantSpec
from lora_study.core.logs import logged_job
from lora_study.model.loading import variant_loader
from lora_study.stages.selection.validation import validate_variant

with logged_job(snakemake.log[0]):
    settings = snakemake.params.settings
    spec = VariantSpec.from_dict(snakemake.params.spec)
    validate_variant(
        spec=spec,
        load=variant_loader(
            spec=spec, model_dir=snakemake.input.model, weights=snakemake.input.weights, model=settings["model"]
        ),
        model_dir=snakemake.input.model,
        validation_path=snakemake.input.validation,
        config=settings,
        out_path=snakemake.output[0],
    )
