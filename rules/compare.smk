# Comparisons between variants on the same examples: intervals, paired tests (Holm-
# corrected, docs/STATISTICS.md), seed spread, failure modes, the verdict on the primary
# question, and each quantised precision against `full`.


rule compare_variants:
    input:
        eval="results/data/{dataset}/eval.jsonl",
        # How the evaluation subset was drawn: the size of its split, the most examples a run can use.
        eval_info="results/data/{dataset}/parts/eval.json",
        rouge=result_files("eval", "scores.json", evaluated_names),
        predictions=result_files("eval", "predictions.jsonl", evaluated_names),
        # The quality runs of quantisation.precisions (none configured: no inputs).
        quant_scores=result_files("quant", "scores.json", QUANT_PRECISIONS),
        quant_predictions=result_files("quant", "predictions.jsonl", QUANT_PRECISIONS),
    output:
        "results/compare/{model}/{dataset}/comparisons.json",
    log:
        "logs/compare_variants/{model}/{dataset}.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        statistics=config["statistics"],
        task=config["task"],
        # Inside a dict: Snakemake formats a plain string param as a wildcard pattern, so
        # braces in the instruction would fail the workflow or be replaced.
        prompt={"instruction": config["prompt"]["instruction"]},
    script:
        "../scripts/compare_variants.py"


# What the report shows of this stage: build_report's named inputs (rules/report.smk), read by
# the report module that declares the same names (src/lora_study/report/).
REPORT_INPUTS |= {
    "comparisons": f"results/compare/{MODEL}/{DATASET}/comparisons.json",
}
