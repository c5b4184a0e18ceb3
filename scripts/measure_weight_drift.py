"""Rule measure_weight_drift: update norm, effective rank and intruder dimensions of one
trained variant's weights against the base."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.grid import VariantSpec
from lora_study.core.logs import logged_job
from lora_study.stages.weights.weight_drift import measure_weight_drift

with logged_job(snakemake.log[0]):
    measure_weight_drift(
        spec=VariantSpec.from_dict(snakemake.params.spec),
        model_dir=snakemake.input.model,
        weights=snakemake.input.weights,
        settings=snakemake.params.settings,
        out_path=snakemake.output.weights,
    )
