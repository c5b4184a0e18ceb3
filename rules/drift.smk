# Representational drift (Study 4): the base model's features once, each trained variant
# against them layer by layer, forgetting as cross-entropy on held-out and general text,
# and a summary with intervals and the criterion's verdicts.


rule measure_base_features:
    input:
        model=model_dir,
        prompts="results/data/{dataset}/drift.jsonl",
        in_domain="results/data/{dataset}/heldout.jsonl",
        general="results/data/{dataset}/general.jsonl",
    output:
        features="results/drift/{model}/{dataset}/base/features.npz",
        forgetting="results/drift/{model}/{dataset}/base/forgetting.json",
    log:
        "logs/measure_base_features/{model}/{dataset}.log",
    benchmark:
        "benchmarks/measure_base_features/{model}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        mem_mb=6000,
        runtime=60,
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
    params:
        settings=DRIFT_SETTINGS,
    script:
        "../scripts/measure_base_features.py"


rule measure_drift:
    input:
        model=model_dir,
        prompts="results/data/{dataset}/drift.jsonl",
        in_domain="results/data/{dataset}/heldout.jsonl",
        general="results/data/{dataset}/general.jsonl",
        base_features="results/drift/{model}/{dataset}/base/features.npz",
        base_forgetting="results/drift/{model}/{dataset}/base/forgetting.json",
        weights=variant_weights,
        record=variant_record,
    output:
        drift="results/drift/{model}/{dataset}/{variant}/drift.json",
        matrix="results/drift/{model}/{dataset}/{variant}/cka_matrix.npz",
        features="results/drift/{model}/{dataset}/{variant}/features.npz",
    log:
        "logs/measure_drift/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/measure_drift/{model}/{dataset}/{variant}.tsv"
    wildcard_constraints:
        variant=TRAINED_VARIANT_PATTERN,
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        mem_mb=6000,
        runtime=60,
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
    params:
        settings=DRIFT_SETTINGS,
        spec=variant_spec,
    script:
        "../scripts/measure_drift.py"


rule summarise_drift:
    input:
        base_features="results/drift/{model}/{dataset}/base/features.npz",
        base_forgetting="results/drift/{model}/{dataset}/base/forgetting.json",
        drift=result_files("drift", "drift.json", studied_names),
        features=result_files("drift", "features.npz", studied_names),
        comparisons="results/compare/{model}/{dataset}/comparisons.json",
    output:
        "results/drift/{model}/{dataset}/summary.json",
    log:
        "logs/summarise_drift/{model}/{dataset}.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        settings=DRIFT_SUMMARY_SETTINGS,
    script:
        "../scripts/summarise_drift.py"


# What the report shows of this stage: build_report's named inputs (rules/report.smk), read by
# the report module that declares the same names (src/lora_study/report/).
REPORT_INPUTS |= {
    "drift": lambda wildcards: [f"{drift_dir(v)}/drift.json" for v in studied()],
    "drift_summary": [f"results/drift/{MODEL}/{DATASET}/summary.json"] if TRAINED else [],
}
