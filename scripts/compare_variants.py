"""Rule compare_variants: intervals, paired comparisons (variants, and quantised
precisions against full), failure modes, verdicts."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))

from lora_study.core.grid import as_spec
from lora_study.core.io import read_jsonl
from lora_study.core.logs import logged_job
from lora_study.core.provenance import meta_info
from lora_study.core.results import read_result, write_result
from lora_study.stages.compare.compare import VariantScores, compare_variants


def scores(rouge_paths, prediction_paths):
    """Each variant's scores, named and specified by what its scores.json records; the two
    inputs come from one comprehension over the same names, so they pair up (strict)."""
    found = []
    for rouge_path, predictions in zip(rouge_paths, prediction_paths, strict=True):
        rouge = read_result(rouge_path)
        found.append(
            VariantScores(
                name=rouge["run"]["variant"],
                spec=as_spec(rouge["run"]["spec"]),
                per_example=rouge["metrics"]["per_example"],
                predictions=read_jsonl(predictions),
            )
        )
    return found


with logged_job(snakemake.log[0]):
    inputs, params = snakemake.input, snakemake.params
    result = compare_variants(
        variants=scores(inputs.rouge, inputs.predictions),
        precisions=scores(inputs.quant_scores, inputs.quant_predictions),
        eval_inputs={row["id"]: row["input"] for row in read_jsonl(inputs.eval)},
        instruction=params.prompt["instruction"],
        statistics=params.statistics,
        task=params.task,
        available_examples=read_result(inputs.eval_info)["metrics"]["pool_size"],
    )
    write_result(snakemake.output[0], **result, meta=meta_info(device="cpu"))
