# Weight-space drift (Study 4): update norm, effective rank and intruder dimensions of every
# trained variant's weights against the base; intruder mitigation of LoRA adapters as a curve.

# PEFT's mitigation handles plain LoRA (rsLoRA and QLoRA are LoRA with another scaling or
# base); it would drop a DoRA adapter's trained magnitude (src/lora_study/stages/weights/mitigation.py).
MITIGATION_KINDS = ("lora", "rslora", "qlora")
MITIGATION_VARIANT_PATTERN = lora_variant_pattern(MITIGATION_KINDS)


rule measure_weight_drift:
    input:
        model=model_dir,
        weights=variant_weights,
        record=variant_record,
    output:
        weights="results/drift/{model}/{dataset}/{variant}/weights.json",
    log:
        "logs/measure_weight_drift/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/measure_weight_drift/{model}/{dataset}/{variant}.tsv"
    wildcard_constraints:
        variant=TRAINED_VARIANT_PATTERN,
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        mem_mb=12000,  # the float32 base and the tuned model side by side (two 1.1B models: 9 GB)
        runtime=60,
    params:
        settings=config["drift"]["weights"],
        spec=variant_spec,
    script:
        "../scripts/measure_weight_drift.py"


rule mitigate_intruders:
    input:
        model=model_dir,
        weights=variant_weights,
        record=variant_record,
        eval="results/data/{dataset}/eval.jsonl",
        general="results/data/{dataset}/general.jsonl",
    output:
        mitigation="results/drift/{model}/{dataset}/{variant}/mitigation.json",
    log:
        "logs/mitigate_intruders/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/mitigate_intruders/{model}/{dataset}/{variant}.tsv"
    wildcard_constraints:
        variant=MITIGATION_VARIANT_PATTERN,
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        mem_mb=6000,
        runtime=60,
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
    params:
        # The evaluation's own settings (same prompts and decoding), the mitigation block,
        # and the forgetting measure's truncation so its numbers match drift.json's.
        settings=canonical(
            {
                **{key: config[key] for key in ("model", "prompt", "generation", "evaluation", "task")},
                "mitigation": config["drift"]["mitigation"],
                "forgetting": {
                    "max_tokens": config["drift"]["forgetting"]["max_tokens"],
                    "batch_size": config["drift"]["batch_size"],
                },
            }
        ),
        spec=variant_spec,
    script:
        "../scripts/mitigate_intruders.py"


# What the report shows of this stage: build_report's named inputs (rules/report.smk), read by
# the report module that declares the same names (src/lora_study/report/).
REPORT_INPUTS |= {
    "weights": lambda wildcards: [f"{drift_dir(v)}/weights.json" for v in studied()],
    "mitigation": lambda wildcards: (
        [f"{drift_dir(v)}/mitigation.json" for v in mitigated()] if config["drift"]["mitigation"]["enabled"] else []
    ),
}
