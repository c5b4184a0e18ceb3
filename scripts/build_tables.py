"""Rule build_tables: results/tables/*.csv from the study's result files and every older
result still on disk (lora_study.stages.tables.tables). No torch here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.logs import logged_job
from lora_study.core.provenance import code_version
from lora_study.stages.tables.tables import build_tables, collect, write_tables

with logged_job(snakemake.log[0]):
    current = {name: [files] if isinstance(files, str) else list(files) for name, files in snakemake.input.items()}
    found = collect(root=Path("."), current=current)
    tables = build_tables(found=found, config=snakemake.params.config, code_version=code_version())
    write_tables(tables=tables, out=dict(snakemake.output.items()))
