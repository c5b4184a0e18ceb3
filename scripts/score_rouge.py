"""Rule score_rouge: ROUGE of one variant's predictions, per example and mean."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.evaluate import score
from lora_study.logs import logged_job

with logged_job(snakemake.log[0]):  # noqa: F821
    score(
        predictions_path=snakemake.input.predictions,  # noqa: F821
        rouge_path=snakemake.output.rouge,  # noqa: F821
        variant=snakemake.wildcards.variant,  # noqa: F821
    )
