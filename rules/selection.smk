# Learning-rate sweeps: a method (LoRA at one rank, kind and targets; full fine-tuning)
# listed at several rates in training.*.learning_rate trains every candidate, measures each
# on the validation split, and the checkpoint keeps the rate with the lowest validation loss.
# Only the chosen rate's variants reach the test-set stages (rules/common.smk: studied()).
# Adding a candidate trains and validates only that candidate, then chooses again.


rule validate_variant:
    input:
        model=model_dir,
        validation="results/data/{dataset}/validation.jsonl",
        weights=variant_weights,
        record=variant_record,
    output:
        "results/adapters/{model}/{dataset}/{variant}/validation.json",
    log:
        "logs/validate_variant/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/validate_variant/{model}/{dataset}/{variant}.tsv"
    wildcard_constraints:
        variant=TRAINED_VARIANT_PATTERN,
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        mem_mb=4000,
        runtime=30,
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
    params:
        settings=canonical(
            {
                "model": {key: config["model"][key] for key in ("device", "dtype")},
                "prompt": config["prompt"],
                "task": config["task"],
                "training": {"max_target_tokens": config["training"]["max_target_tokens"]},
            }
        ),
        spec=variant_spec,
    script:
        "../scripts/validate_variant.py"


checkpoint select_learning_rate:
    input:
        validation=lambda wildcards: [
            f"results/adapters/{MODEL}/{DATASET}/{v}/validation.json" for v in method_candidates(wildcards)
        ],
    output:
        "results/selection/{model}/{dataset}/{method}/selection.json",
    log:
        "logs/select_learning_rate/{model}/{dataset}/{method}.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        specs=lambda wildcards: [TRAINED[v].to_dict() for v in method_candidates(wildcards)],
        statistics={key: config["statistics"][key] for key in ("resamples", "seed", "confidence")},
    script:
        "../scripts/select_learning_rate.py"


# What the report shows of this stage: build_report's named inputs (rules/report.smk), read by
# the report module that declares the same names (src/lora_study/report/).
REPORT_INPUTS |= {
    "selection": [selection_file(method) for method in SWEPT],
}
