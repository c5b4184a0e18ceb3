"""Rule build_report: report.html from the result files."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.io import read_json, read_jsonl
from lora_study.logs import logged_job
from lora_study.modeling import MANIFEST
from lora_study.report import build_report, foundation_sections, load_variant

with logged_job(snakemake.log[0]):  # noqa: F821
    inputs = snakemake.input  # noqa: F821
    variants = [
        load_variant(name=name, rouge_path=rouge, predictions_path=predictions, info_path=info)
        for name, rouge, predictions, info in zip(
            snakemake.params.variants, inputs.rouge, inputs.predictions, inputs.generation  # noqa: F821
        )
    ]
    sections = foundation_sections(
        config=snakemake.params.config,  # noqa: F821
        manifest=read_json(Path(inputs.model) / MANIFEST),
        subsets=read_json(inputs.subsets),
        variants=variants,
        eval_examples=read_jsonl(inputs.eval),
    )
    build_report(sections=sections, variants=variants, out_path=snakemake.output[0])  # noqa: F821
