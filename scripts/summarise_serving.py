"""Rule summarise_serving: overhead intervals and verdicts, the multi-adapter table and
Study 4's success criteria in one file."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.logs import logged_job
from lora_study.core.provenance import meta_info
from lora_study.core.results import write_result
from lora_study.stages.serving.summary import summarise_serving

with logged_job(snakemake.log[0]):
    inputs = snakemake.input
    result = summarise_serving(
        serving_files=list(inputs.serving),
        multi_adapter_file=next(iter(inputs.multi_adapter), None),
        merge_files=list(inputs.merges),
        drift_summary_file=next(iter(inputs.drift_summary), None),
        comparisons_file=inputs.comparisons,
        settings=snakemake.params.settings,
    )
    write_result(snakemake.output[0], **result, meta=meta_info())
