"""Rules serve_base and serve_variant: the base model, or a variant's merged export and
unmerged adapter with their passes interleaved, served at every batch size."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.grid import VariantSpec
from lora_study.core.logs import logged_job
from lora_study.stages.serving.modes import serve_modes

with logged_job(snakemake.log[0]):
    spec_fields = getattr(snakemake.params, "spec", None)  # absent for the base model
    if spec_fields:
        modes = {"merged": snakemake.input.merged, "unmerged": snakemake.input.adapter}
        out_paths = {"merged": snakemake.output.merged, "unmerged": snakemake.output.unmerged}
    else:
        modes, out_paths = {"base": None}, {"base": snakemake.output[0]}
    serve_modes(
        modes=modes,
        out_paths=out_paths,
        model_dir=snakemake.input.model,
        eval_path=snakemake.input.eval,
        config=snakemake.params.settings,
        spec=VariantSpec.from_dict(spec_fields) if spec_fields else None,
    )
