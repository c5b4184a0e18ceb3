"""Rule build_report: report.html from the result files, one registered stage at a time."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.logs import logged_job
from lora_study.report.inputs import check_inputs, named_inputs, write_index
from lora_study.report.page import write_page
from lora_study.report.stages import STAGES

with logged_job(snakemake.log[0]):
    files = named_inputs(snakemake.input)
    check_inputs(rule_inputs=files, stages=STAGES)
    sections = [section for stage in STAGES for section in stage.build(files=files, config=snakemake.params.config)]
    write_page(sections=sections, out_path=snakemake.output.report)
    write_index(files=files, out_path=snakemake.output.index)
