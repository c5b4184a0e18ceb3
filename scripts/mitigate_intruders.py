"""Rule mitigate_intruders: PEFT's intruder-dimension reduction of one LoRA adapter at
several strengths, each scored for quality (ROUGE) and forgetting (general-text loss)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.grid import VariantSpec
from lora_study.core.logs import logged_job
from lora_study.stages.weights.mitigation import mitigate_intruders

with logged_job(snakemake.log[0]):
    mitigate_intruders(
        spec=VariantSpec.from_dict(snakemake.params.spec),
        model_dir=snakemake.input.model,
        weights=snakemake.input.weights,
        eval_path=snakemake.input.eval,
        general_path=snakemake.input.general,
        config=snakemake.params.settings,
        out_path=snakemake.output.mitigation,
    )
