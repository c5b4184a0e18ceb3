# Comparisons between variants on the same examples: intervals, paired tests, seed
# spread, failure modes and the verdict on the rank question.


rule compare_variants:
    input:
        eval="results/data/{dataset}/eval.jsonl",
        rouge=lambda wildcards: [f"results/eval/{wildcards.model}/{wildcards.dataset}/{v}/rouge.json" for v in VARIANTS],
        predictions=lambda wildcards: [
            f"results/eval/{wildcards.model}/{wildcards.dataset}/{v}/predictions.jsonl" for v in VARIANTS
        ],
    output:
        "results/compare/{model}/{dataset}/comparisons.json",
    params:
        variants=VARIANTS,
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
