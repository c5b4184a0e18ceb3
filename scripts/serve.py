"""Rules serve_base and serve_variant: one model served in one mode at every batch size."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.grid import VariantSpec
from lora_study.logs import logged_job
from lora_study.serving_modes import serve_mode

with logged_job(snakemake.log[0]):
    spec_fields = getattr(snakemake.params, "spec", None)  # absent for the base model
    serve_mode(
        mode=getattr(snakemake.params, "mode", None) or snakemake.wildcards.mode,
        model_dir=snakemake.input.model,
        eval_path=snakemake.input.eval,
        config=snakemake.params.settings,
        out_path=snakemake.output[0],
        spec=VariantSpec.from_dict(spec_fields) if spec_fields else None,
        weights=getattr(snakemake.input, "weights", None),
    )
