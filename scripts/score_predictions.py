"""Rule score_predictions: one variant's predictions scored by the configured task (ROUGE,
accuracy and F1, SQuAD v2 exact match and F1), per example and mean. No torch here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.io import read_jsonl
from lora_study.core.logs import logged_job
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.tasks.scores import predictions_result

with logged_job(snakemake.log[0]):
    predictions = snakemake.input.predictions
    result = predictions_result(
        rows=read_jsonl(predictions),
        task=snakemake.params.task,
        variant=snakemake.wildcards.variant,
        spec=snakemake.params.spec,  # None: the base model or a precision
        predictions_file=str(predictions),
    )
    write_result(snakemake.output.scores, **result, meta=meta_info(device="cpu"))
