"""Rule make_heldout_text: held-out general text (unused rows' inputs) for the forgetting measure."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.data import heldout_texts, read_examples
from lora_study.core.io import write_jsonl
from lora_study.core.logs import logged_job

with logged_job(snakemake.log[0]):
    # The training sets are nested: the largest holds every training example.
    used = [
        *read_examples(snakemake.input.eval),
        *read_examples(snakemake.input.largest_train),
        *[e for path in snakemake.input.validation for e in read_examples(path)],
    ]
    forgetting = snakemake.params.forgetting
    rows = heldout_texts(data=snakemake.params.data, used=used, size=forgetting["examples"], seed=forgetting["seed"])
    write_jsonl(snakemake.output[0], rows)
