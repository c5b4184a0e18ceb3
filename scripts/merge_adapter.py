"""Rule merge_adapter: merge a LoRA-family adapter into its base, check it, export it."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.grid import VariantSpec
from lora_study.core.logs import logged_job
from lora_study.stages.serving.merge import merge_variant

with logged_job(snakemake.log[0]):
    merge_variant(
        spec=VariantSpec.from_dict(snakemake.params.spec),
        model_dir=snakemake.input.model,
        adapter=snakemake.input.weights,
        eval_path=snakemake.input.eval,
        config=snakemake.params.settings,
        out_dir=snakemake.output.model,
        merge_json=snakemake.output.info,
    )
