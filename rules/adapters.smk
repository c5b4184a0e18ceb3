# Trained variants: LoRA family adapters at every rank, and full fine-tuning.
# One job per variant x training size x seed; each starts from a freshly loaded base.


rule train_adapter:
    input:
        model=model_dir,
        train=train_file,
    output:
        adapter=directory("results/adapters/{model}/{dataset}/{variant}/adapter"),
        info="results/adapters/{model}/{dataset}/{variant}/train.json",
        loss="results/adapters/{model}/{dataset}/{variant}/loss.csv",
    log:
        "logs/train_adapter/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/train_adapter/{model}/{dataset}/{variant}.tsv"
    wildcard_constraints:
        variant=LORA_VARIANT_PATTERN,
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        mem_mb=8000,
        runtime=240,
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
    params:
        settings=variant_params,
    script:
        "../scripts/train_variant.py"


rule train_full:
    input:
        model=model_dir,
        train=train_file,
    output:
        adapter=directory("results/adapters/{model}/{dataset}/{variant}/model"),
        info="results/adapters/{model}/{dataset}/{variant}/train.json",
        loss="results/adapters/{model}/{dataset}/{variant}/loss.csv",
    log:
        "logs/train_full/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/train_full/{model}/{dataset}/{variant}.tsv"
    wildcard_constraints:
        variant=FFT_VARIANT_PATTERN,
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        mem_mb=12000,
        runtime=240,
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
    params:
        settings=variant_params,
    script:
        "../scripts/train_variant.py"


rule generate_variant_predictions:
    input:
        model=model_dir,
        eval="results/data/{dataset}/eval.jsonl",
        weights=variant_weights,
        record=variant_record,
    output:
        predictions="results/eval/{model}/{dataset}/{variant}/predictions.jsonl",
        info="results/eval/{model}/{dataset}/{variant}/generation.json",
    log:
        "logs/generate_predictions/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/generate_predictions/{model}/{dataset}/{variant}.tsv"
    wildcard_constraints:
        variant=TRAINED_VARIANT_PATTERN,
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        mem_mb=4000,
        runtime=60,
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
    params:
        settings={key: config[key] for key in ("model", "prompt", "generation", "evaluation", "task")},
        spec=variant_spec,
    script:
        "../scripts/generate_predictions.py"


rule count_adapter_parameters:
    input:
        model=model_dir,
    output:
        "results/adapters/{model}/parameter_counts.json",
    log:
        "logs/count_adapter_parameters/{model}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        ranks=PARAMETER_TABLE_RANKS,
        presets=PARAMETER_TABLE_PRESETS,
    script:
        "../scripts/count_adapter_parameters.py"


# What the report shows of this stage: build_report's named inputs (rules/report.smk), read by
# the report module that declares the same names (src/lora_study/report/).
REPORT_INPUTS |= {
    "train": lambda wildcards: [f"{adapter_dir(v)}/train.json" for v in studied()],
    "loss": lambda wildcards: [f"{adapter_dir(v)}/loss.csv" for v in studied()],
    # Each swept method's validation curve and chosen rate (none without a sweep).,
    "parameter_counts": f"results/adapters/{MODEL}/parameter_counts.json",
}
