"""Rule build_report: report.html from the result files."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.io import MANIFEST, read_json, read_jsonl
from lora_study.logs import logged_job
from lora_study.report import build_report, foundation_sections, load_variant
from lora_study.report_quant import load_precision, quantisation_sections
from lora_study.report_compare import comparison_sections
from lora_study.report_drift import drift_sections, load_drift
from lora_study.report_training import load_trained, training_sections

with logged_job(snakemake.log[0]):  # noqa: F821
    inputs = snakemake.input  # noqa: F821
    comparisons = read_json(inputs.comparisons)
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
        intervals={name: v["rouge"] for name, v in comparisons["variants"].items()},
    )
    sections += comparison_sections(comparisons)
    trained = [
        load_trained(name=name, train_json=train, loss_csv=loss)
        for name, train, loss in zip(snakemake.params.trained, inputs.train, inputs.loss)  # noqa: F821
    ]
    sections += training_sections(trained=trained, variants=variants, parameter_counts=read_json(inputs.parameter_counts))
    precisions = [
        load_precision(name=name, latency_path=latency, rouge_path=rouge, generation_path=generation)
        for name, latency, rouge, generation in zip(
            snakemake.params.precisions, inputs.quant_latency, inputs.quant_rouge, inputs.quant_generation  # noqa: F821
        )
    ]
    sections += quantisation_sections(
        precisions, comparisons=comparisons.get("precisions", []), metric=comparisons["run"]["metric"]
    )
    drift = [load_drift(name=name, drift_path=path) for name, path in zip(snakemake.params.trained, inputs.drift)]  # noqa: F821
    summary = read_json(inputs.drift_summary[0]) if inputs.drift_summary else None
    sections += drift_sections(results=drift, summary=summary, comparisons=comparisons)
    # Weight-space drift, and the intruder-mitigation curve where it ran (rules/weights.smk).
    from lora_study.report_weights import load_weights, weight_sections

    mitigation = {Path(path).parent.name: path for path in inputs.mitigation}
    weights = [
        load_weights(name=name, weights_path=path, mitigation_path=mitigation.get(name))
        for name, path in zip(snakemake.params.trained, inputs.weights)  # noqa: F821
    ]
    sections += weight_sections(results=weights)
    build_report(sections=sections, variants=variants, out_path=snakemake.output[0])  # noqa: F821
