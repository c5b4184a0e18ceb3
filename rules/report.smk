# The aggregated report: one self-contained HTML page built from the result files. Every named
# input is declared by a stage of src/lora_study/report/ (stages.STAGES): the job fails on an
# input no stage reads or a stage input missing here. Per-variant files are matched to their
# variants by what each file records (loss.csv, which records none, pairs with the train.json
# beside it), so a missing or extra file fails the job instead of shifting the others.


rule build_report:
    input:
        model=f"resources/models/{MODEL}",
        subsets=f"results/data/{DATASET}/subsets.json",
        eval=f"results/data/{DATASET}/eval.jsonl",
        scores=lambda wildcards: [f"{eval_dir(v)}/scores.json" for v in evaluated_names()],
        predictions=lambda wildcards: [f"{eval_dir(v)}/predictions.jsonl" for v in evaluated_names()],
        generation=lambda wildcards: [f"{eval_dir(v)}/generation.json" for v in evaluated_names()],
        train=lambda wildcards: [f"{adapter_dir(v)}/train.json" for v in studied()],
        loss=lambda wildcards: [f"{adapter_dir(v)}/loss.csv" for v in studied()],
        # Each swept method's validation curve and chosen rate (none without a sweep).
        selection=[selection_file(method) for method in SWEPT],
        parameter_counts=f"results/adapters/{MODEL}/parameter_counts.json",
        comparisons=f"results/compare/{MODEL}/{DATASET}/comparisons.json",
        quant_latency=[f"{quant_dir(p)}/latency.json" for p in QUANT_PRECISIONS],
        quant_scores=[f"{quant_dir(p)}/scores.json" for p in QUANT_PRECISIONS],
        quant_generation=[f"{quant_dir(p)}/generation.json" for p in QUANT_PRECISIONS],
        drift=lambda wildcards: [f"{drift_dir(v)}/drift.json" for v in studied()],
        weights=lambda wildcards: [f"{drift_dir(v)}/weights.json" for v in studied()],
        mitigation=lambda wildcards: (
            [f"{drift_dir(v)}/mitigation.json" for v in mitigated()]
            if config["drift"]["mitigation"]["enabled"]
            else []
        ),
        drift_summary=[f"results/drift/{MODEL}/{DATASET}/summary.json"] if TRAINED else [],
        serving=serving_files,
        multi_adapter=multi_adapter_files,
        serving_summary=[f"{SERVING_DIR}/summary.json"] if SERVES else [],
        tables=list(TABLE_FILES.values()),
    output:
        # Also a result of `snakemake --report` (the page, its caption and the workflow's runtimes).
        report("report.html", caption="../report/study.rst", category="Study"),
    log:
        "logs/build_report.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=config,
    script:
        "../scripts/build_report.py"
