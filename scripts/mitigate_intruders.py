"""Rule mitigate_intruders: PEFT's intruder-dimension reduction of one LoRA adapter at
several strengths, each scored for quality (ROUGE) and forgetting (general-text loss)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.grid import VariantSpec
from lora_study.logs import logged_job
from lora_study.mitigation import mitigate_intruders

with logged_job(snakemake.log[0]):  # noqa: F821
    mitigate_intruders(
        spec=VariantSpec.from_dict(snakemake.params.spec),  # noqa: F821
        model_dir=snakemake.input.model,  # noqa: F821
        weights=snakemake.input.weights,  # noqa: F821
        eval_path=snakemake.input.eval,  # noqa: F821
        general_path=snakemake.input.general,  # noqa: F821
        config=snakemake.params.settings,  # noqa: F821
        out_path=snakemake.output.mitigation,  # noqa: F821
    )
