"""Rule make_general_text: general text from another domain, for the forgetting measure."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.data import general_texts
from lora_study.core.io import write_jsonl
from lora_study.core.logs import logged_job

with logged_job(snakemake.log[0]):
    general = snakemake.params.general
    rows = general_texts(source=general["source"], size=general["examples"], seed=general["seed"])
    write_jsonl(snakemake.output[0], rows)
