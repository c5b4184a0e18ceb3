"""Rule score_predictions: ROUGE of one variant's predictions, per example and mean, with the
Porter stemmer (headline) and without (Hugging Face evaluate's default). No torch here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.io import read_jsonl
from lora_study.logs import logged_job
from lora_study.provenance import meta_info
from lora_study.results import write_result
from lora_study.rouge import rouge_result

with logged_job(snakemake.log[0]):
    predictions = snakemake.input.predictions
    result = rouge_result(
        rows=read_jsonl(predictions),
        variant=snakemake.wildcards.variant,
        spec=snakemake.params.spec,  # None: the base model or a precision
        predictions_file=str(predictions),
    )
    write_result(snakemake.output.rouge, **result, meta=meta_info(device="cpu"))
