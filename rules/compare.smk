# Comparisons between variants on the same examples: intervals, paired tests (Holm-
# corrected, docs/STATISTICS.md), seed spread, failure modes, the verdict on the primary
# question, and each quantised precision against `full`.


rule compare_variants:
    input:
        eval="results/data/{dataset}/eval.jsonl",
        rouge=lambda wildcards: [f"results/eval/{wildcards.model}/{wildcards.dataset}/{v}/rouge.json" for v in VARIANTS],
        predictions=lambda wildcards: [
            f"results/eval/{wildcards.model}/{wildcards.dataset}/{v}/predictions.jsonl" for v in VARIANTS
        ],
        # The quality runs of quantisation.precisions (none configured: no inputs).
        quant_rouge=lambda wildcards: [
            f"results/quant/{wildcards.model}/{wildcards.dataset}/{p}/rouge.json" for p in QUANT_PRECISIONS
        ],
        quant_predictions=lambda wildcards: [
            f"results/quant/{wildcards.model}/{wildcards.dataset}/{p}/predictions.jsonl" for p in QUANT_PRECISIONS
        ],
    output:
        "results/compare/{model}/{dataset}/comparisons.json",
    params:
        variants=VARIANTS,
        precisions=QUANT_PRECISIONS,
        statistics=config["statistics"],
        instruction=config["prompt"]["instruction"],
    log:
        "logs/compare_variants/{model}/{dataset}.log",
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/compare_variants.py"
