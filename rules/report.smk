# The aggregated report: one self-contained HTML page built from the result files.


rule build_report:
    input:
        model=f"resources/models/{MODEL}",
        subsets=f"results/data/{DATASET}/subsets.json",
        eval=f"results/data/{DATASET}/eval.jsonl",
        rouge=[f"{eval_dir(v)}/rouge.json" for v in VARIANTS],
        predictions=[f"{eval_dir(v)}/predictions.jsonl" for v in VARIANTS],
        generation=[f"{eval_dir(v)}/generation.json" for v in VARIANTS],
    output:
        "report.html",
    params:
        config=config,
        variants=VARIANTS,
    log:
        "logs/build_report.log",
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/build_report.py"
