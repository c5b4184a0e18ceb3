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
    wildcard_constraints:
        variant=LORA_VARIANT_PATTERN,
    params:
        settings=variant_params,
    threads: MODEL_THREADS
    log:
        "logs/train_adapter/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/train_adapter/{model}/{dataset}/{variant}.tsv"
    resources:
        mem_mb=8000,
        runtime=240,
    conda:
        "../envs/torch.yaml"
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
    wildcard_constraints:
        variant=FFT_VARIANT_PATTERN,
    params:
        settings=variant_params,
    threads: MODEL_THREADS
    log:
        "logs/train_full/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/train_full/{model}/{dataset}/{variant}.tsv"
    resources:
        mem_mb=12000,
        runtime=240,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_variant.py"


rule generate_variant_predictions:
    input:
        model=model_dir,
        eval="results/data/{dataset}/eval.jsonl",
        weights=variant_weights,
    output:
        predictions="results/eval/{model}/{dataset}/{variant}/predictions.jsonl",
        info="results/eval/{model}/{dataset}/{variant}/generation.json",
    wildcard_constraints:
        variant=TRAINED_VARIANT_PATTERN,
    params:
        settings={key: config[key] for key in ("model", "prompt", "generation", "evaluation")},
        spec=lambda wildcards: TRAINED[wildcards.variant].to_dict(),
    threads: MODEL_THREADS
    log:
        "logs/generate_predictions/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/generate_predictions/{model}/{dataset}/{variant}.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/generate_predictions.py"


rule count_adapter_parameters:
    input:
        model=model_dir,
    output:
        "results/adapters/{model}/parameter_counts.json",
    params:
        ranks=PARAMETER_TABLE_RANKS,
        presets=PARAMETER_TABLE_PRESETS,
    log:
        "logs/count_adapter_parameters/{model}.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/count_adapter_parameters.py"
