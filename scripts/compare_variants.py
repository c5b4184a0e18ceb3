"""Rule compare_variants: intervals, paired comparisons (variants, and quantised
precisions against full), failure modes, verdicts."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.compare import VariantScores, compare_variants
from lora_study.io import read_json, read_jsonl, write_json
from lora_study.logs import logged_job
from lora_study.provenance import meta_info


def scores(names, rouge_paths, prediction_paths):
    return [
        VariantScores(name=name, per_example=read_json(rouge)["per_example"], predictions=read_jsonl(predictions))
        for name, rouge, predictions in zip(names, rouge_paths, prediction_paths)
    ]


with logged_job(snakemake.log[0]):  # noqa: F821
    inputs, params = snakemake.input, snakemake.params  # noqa: F821
    result = compare_variants(
        variants=scores(params.variants, inputs.rouge, inputs.predictions),
        precisions=scores(params.precisions, inputs.quant_rouge, inputs.quant_predictions),
        eval_inputs={row["id"]: row["input"] for row in read_jsonl(inputs.eval)},
        instruction=params.instruction,
        statistics=params.statistics,
    )
    write_json(snakemake.output[0], {**result, "meta": meta_info(device="cpu")})  # noqa: F821
