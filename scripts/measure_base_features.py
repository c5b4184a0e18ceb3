"""Rule measure_base_features: the base model's pooled features on the drift prompts and its
cross-entropy on the forgetting texts, computed once for every variant's drift job."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.logs import logged_job
from lora_study.stages.drift.job import measure_base_features

with logged_job(snakemake.log[0]):
    inputs = snakemake.input
    measure_base_features(
        model_dir=inputs.model,
        prompts_path=inputs.prompts,
        text_paths={"in_domain": inputs.in_domain, "general": inputs.general},
        config=snakemake.params.settings,
        features_path=snakemake.output.features,
        forgetting_path=snakemake.output.forgetting,
    )
