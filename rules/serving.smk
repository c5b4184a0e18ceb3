# Serving (Study 4's deployment half, Study 2's merge): each LoRA-family adapter merged and
# exported as a plain model, the same requests served by the base, the merged export and
# the unmerged adapter at every batch size, every adapter of the base served together three
# ways, and the overhead verdicts. serving.enabled: false builds none of it.

SERVING = config["serving"]
# Whether anything is served: a LoRA-family variant is trained (the studied ones are known only
# after a sweep's selection, so the lists below are functions).
SERVES = SERVING["enabled"] and any(spec.is_lora for spec in TRAINED.values())


# What changes a merge: how the model is loaded, the prompts its logits are checked on, and
# the tolerance; the serving settings do not, nor the evaluation's speed settings (the logit
# check has its own batch: merge.CHECK_BATCH).
MERGE_SETTINGS = canonical(
    {
        "model": config["model"],
        "prompt": config["prompt"],
        "merge": SERVING["merge"],
    }
)
# What changes a serving file; the verdict's settings rerun only the summary.
SERVING_SETTINGS = canonical(
    {
        "model": config["model"],
        "prompt": config["prompt"],
        "serving": {
            key: SERVING[key] for key in ("batch_sizes", "max_prompt_tokens", "new_tokens", "warmup", "repeats")
        },
    }
)
SERVING_SUMMARY_SETTINGS = canonical(
    {
        "max_overhead": SERVING["max_overhead"],
        **{key: config["statistics"][key] for key in ("resamples", "seed", "confidence")},
    }
)


MERGED_DIR = f"results/merged/{MODEL}/{DATASET}"
SERVING_DIR = f"results/serving/{MODEL}/{DATASET}"


rule merge_adapter:
    input:
        model=model_dir,
        eval="results/data/{dataset}/eval.jsonl",
        weights=variant_weights,
        record=variant_record,
    output:
        model=directory("results/merged/{model}/{dataset}/{variant}/model"),
        info="results/merged/{model}/{dataset}/{variant}/merge.json",
    log:
        "logs/merge_adapter/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/merge_adapter/{model}/{dataset}/{variant}.tsv"
    wildcard_constraints:
        variant=LORA_VARIANT_PATTERN,
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
        mem_mb=8000,
        runtime=30,
    params:
        settings=MERGE_SETTINGS,
        spec=variant_spec,
    script:
        "../scripts/merge_adapter.py"


# Serving jobs are timing runs: like measure_latency they take every core the workflow has,
# so no other job runs beside them (profiles/slurm gives them a GPU node of their own).
rule serve_base:
    input:
        model=model_dir,
        eval="results/data/{dataset}/eval.jsonl",
    output:
        "results/serving/{model}/{dataset}/base/base.json",
    log:
        "logs/serve/{model}/{dataset}/base.log",
    benchmark:
        "benchmarks/serve/{model}/{dataset}/base.tsv"
    conda:
        "../envs/torch.yaml"
    threads: TIMING_THREADS
    resources:
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
        mem_mb=6000,
        runtime=60,
    params:
        settings=SERVING_SETTINGS,
        mode="base",
    script:
        "../scripts/serve.py"


# The merged export and the unmerged adapter of one variant in one job, their timed passes
# alternating: the overhead of the unmerged adapter is then measured pass by pass under the
# same conditions (two jobs would compare two moments of the machine).
rule serve_variant:
    input:
        model=model_dir,
        eval="results/data/{dataset}/eval.jsonl",
        merged="results/merged/{model}/{dataset}/{variant}/model",
        merge_record="results/merged/{model}/{dataset}/{variant}/merge.json",
        adapter=variant_weights,
        record=variant_record,
    output:
        merged="results/serving/{model}/{dataset}/{variant}/merged.json",
        unmerged="results/serving/{model}/{dataset}/{variant}/unmerged.json",
    log:
        "logs/serve/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/serve/{model}/{dataset}/{variant}.tsv"
    wildcard_constraints:
        variant=LORA_VARIANT_PATTERN,
    conda:
        "../envs/torch.yaml"
    threads: TIMING_THREADS
    resources:
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
        mem_mb=8000,
        runtime=60,
    params:
        settings=SERVING_SETTINGS,
        spec=variant_spec,
    script:
        "../scripts/serve.py"


rule serve_multi_adapter:
    input:
        model=model_dir,
        eval="results/data/{dataset}/eval.jsonl",
        adapters=lambda wildcards: [f"{adapter_dir(v)}/adapter" for v in mixable()],
        records=lambda wildcards: [f"{adapter_dir(v)}/train.json" for v in mixable()],
        merged=lambda wildcards: [f"{MERGED_DIR}/{v}/model" for v in mixable()],
        merge_records=lambda wildcards: [f"{MERGED_DIR}/{v}/merge.json" for v in mixable()],
    output:
        "results/serving/{model}/{dataset}/multi_adapter.json",
    log:
        "logs/serve_multi_adapter/{model}/{dataset}.log",
    benchmark:
        "benchmarks/serve_multi_adapter/{model}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: TIMING_THREADS
    resources:
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
        mem_mb=12000,
        runtime=60,
    params:
        settings=SERVING_SETTINGS,
        # Every LoRA-family variant: the file lists the ones left out, with the reason.
        specs=lambda wildcards: [TRAINED[v].to_dict() for v in served()],
    script:
        "../scripts/serve_multi_adapter.py"


rule summarise_serving:
    input:
        serving=serving_files,
        multi_adapter=multi_adapter_files,
        merges=lambda wildcards: [f"{MERGED_DIR}/{v}/merge.json" for v in served()],
        drift_summary=[f"results/drift/{MODEL}/{DATASET}/summary.json"] if TRAINED else [],
        comparisons=f"results/compare/{MODEL}/{DATASET}/comparisons.json",
    output:
        "results/serving/{model}/{dataset}/summary.json",
    log:
        "logs/summarise_serving/{model}/{dataset}.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        settings=SERVING_SUMMARY_SETTINGS,
    script:
        "../scripts/summarise_serving.py"


# What the report shows of this stage: build_report's named inputs (rules/report.smk), read by
# the report module that declares the same names (src/lora_study/report/).
REPORT_INPUTS |= {
    "serving": serving_files,
    "multi_adapter": multi_adapter_files,
    "serving_summary": [f"{SERVING_DIR}/summary.json"] if SERVES else [],
}
