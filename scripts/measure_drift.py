"""Rule measure_drift: layer-by-layer CKA and cosine of one trained variant against the base
features, and its cross-entropy on the forgetting texts."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.grid import VariantSpec
from lora_study.core.logs import logged_job
from lora_study.stages.drift.job import measure_drift

with logged_job(snakemake.log[0]):
    inputs, output = snakemake.input, snakemake.output
    measure_drift(
        spec=VariantSpec.from_dict(snakemake.params.spec),
        model_dir=inputs.model,
        weights=inputs.weights,
        prompts_path=inputs.prompts,
        text_paths={"in_domain": inputs.in_domain, "general": inputs.general},
        base_features_path=inputs.base_features,
        base_forgetting_path=inputs.base_forgetting,
        config=snakemake.params.settings,
        drift_path=output.drift,
        matrix_path=output.matrix,
        features_path=output.features,
    )
