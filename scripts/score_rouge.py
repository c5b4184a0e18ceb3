"""Rule score_rouge: ROUGE of one variant's predictions, per example and mean, with the
Porter stemmer (headline) and without (Hugging Face evaluate's default). No torch here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.io import read_jsonl, write_json
from lora_study.logs import logged_job
from lora_study.provenance import meta_info
from lora_study.rouge import rouge_result

with logged_job(snakemake.log[0]):  # noqa: F821
    predictions = snakemake.input.predictions  # noqa: F821
    result = rouge_result(rows=read_jsonl(predictions), variant=snakemake.wildcards.variant, predictions_file=str(predictions))  # noqa: F821
    write_json(snakemake.output.rouge, {**result, "meta": meta_info(device="cpu")})  # noqa: F821
