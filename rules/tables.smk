# Tidy tables: every result of the study as rows of CSV files that pandas reads in one line
# (src/lora_study/stages/tables/tables.py says what each holds). The inputs are the current config's results,
# the same files the report reads; the job also gathers every complete result already on disk
# under results/, so a variant that a changed setting left behind stays in the tables, marked
# `in_config` false. Every row carries the config's hash, so `params` is the whole config.

TABLE_FILES = {
    name: f"results/tables/{name}.csv"
    for name in (
        "scores",
        "comparisons",
        "quantisation",
        "training",
        "validation",
        "drift",
        "serving",
        "serving_overhead",
        "config",
    )
}


rule build_tables:
    input:
        scores=lambda wildcards: [f"{eval_dir(v)}/scores.json" for v in evaluated_names()],
        quant_scores=[f"{quant_dir(p)}/scores.json" for p in QUANT_PRECISIONS],
        quant_latency=[f"{quant_dir(p)}/latency.json" for p in QUANT_PRECISIONS],
        # Every trained variant, each candidate rate of a sweep included.
        train=[f"{adapter_dir(v)}/train.json" for v in TRAINED],
        # A sweep's candidates: their validation losses and each method's choice.
        validation=[f"{adapter_dir(v)}/validation.json" for v in TRAINED if TRAINED[v].method in SWEPT],
        selection=[selection_file(method) for method in SWEPT],
        comparisons=f"results/compare/{MODEL}/{DATASET}/comparisons.json",
        drift=lambda wildcards: [f"{drift_dir(v)}/drift.json" for v in studied()],
        drift_summary=[f"results/drift/{MODEL}/{DATASET}/summary.json"] if TRAINED else [],
        serving=serving_files,
        multi_adapter=multi_adapter_files,
        serving_summary=[f"{SERVING_DIR}/summary.json"] if SERVES else [],
    output:
        **TABLE_FILES,
    log:
        "logs/build_tables.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=config,
    script:
        "../scripts/build_tables.py"


# What the report shows of this stage: build_report's named inputs (rules/report.smk), read by
# the report module that declares the same names (src/lora_study/report/).
REPORT_INPUTS |= {
    "tables": list(TABLE_FILES.values()),
}
