"""Rule make_subsets: seeded train/eval subsets of the configured dataset."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.data import make_subsets, write_subsets
from lora_study.logs import logged_job

with logged_job(snakemake.log[0]):
    subsets = make_subsets(data=snakemake.params.data)
    write_subsets(subsets=subsets, out_dir=Path(snakemake.output.info).parent)
