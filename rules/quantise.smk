# Study 1, Part 1: the base model at each precision of quantisation.precisions.
# Per precision: latency.json (forced-length generation, timed) and the quality run
# (predictions through the evaluation's own code, then score_predictions), in
# results/quant/{model}/{dataset}/{precision}/.

# `full` loads the model as the base evaluation does, so its quality run is that evaluation
# (reuse_base_predictions); the other precisions generate their own.
GENERATED_PRECISION_PATTERN = "|".join(re.escape(p) for p in QUANT_PRECISIONS if p != "full") or "(?!)"


rule measure_latency:
    input:
        model=model_dir,
        eval="results/data/{dataset}/eval.jsonl",
    output:
        latency="results/quant/{model}/{dataset}/{precision}/latency.json",
    log:
        "logs/measure_latency/{model}/{dataset}/{precision}.log",
    benchmark:
        "benchmarks/measure_latency/{model}/{dataset}/{precision}.tsv"
    wildcard_constraints:
        precision=PRECISION_PATTERN,
    conda:
        "../envs/torch.yaml"
    # A timing job: every core, so no other job runs beside it (rules/common.smk, lanes).
    threads: TIMING_THREADS
    resources:
        mem_mb=6000,
        runtime=60,
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
    params:
        # Not the precision list: adding or dropping a precision reruns no other one.
        settings={
            "model": config["model"],
            "prompt": config["prompt"],
            "latency": config["quantisation"]["latency"],
        },
        options=quant_options,
    script:
        "../scripts/measure_latency.py"


rule generate_quant_predictions:
    input:
        model=model_dir,
        eval="results/data/{dataset}/eval.jsonl",
    output:
        predictions="results/quant/{model}/{dataset}/{precision}/predictions.jsonl",
        info="results/quant/{model}/{dataset}/{precision}/generation.json",
    log:
        "logs/generate_quant_predictions/{model}/{dataset}/{precision}.log",
    benchmark:
        "benchmarks/generate_quant_predictions/{model}/{dataset}/{precision}.tsv"
    wildcard_constraints:
        precision=GENERATED_PRECISION_PATTERN,
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        mem_mb=6000,
        runtime=60,
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
    params:
        # The same settings as the base model's predictions, plus this precision's own.
        settings={key: config[key] for key in ("model", "prompt", "generation", "evaluation", "task")},
        options=quant_options,
    script:
        "../scripts/generate_quant_predictions.py"


rule reuse_base_predictions:
    # The `full` precision is the base model loaded as the base evaluation loads it (model.dtype
    # on model.device; same prompts, decoding and batches): its quality run would repeat that
    # evaluation exactly, so it takes the base's predictions (tests/test_workflow.py checks the
    # ROUGE is the same). Nothing is loaded: a copy and a record.
    input:
        predictions="results/eval/{model}/{dataset}/base/predictions.jsonl",
        info="results/eval/{model}/{dataset}/base/generation.json",
    output:
        predictions="results/quant/{model}/{dataset}/full/predictions.jsonl",
        info="results/quant/{model}/{dataset}/full/generation.json",
    log:
        "logs/reuse_base_predictions/{model}/{dataset}.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/reuse_base_predictions.py"


# What the report shows of this stage: build_report's named inputs (rules/report.smk), read by
# the report module that declares the same names (src/lora_study/report/).
REPORT_INPUTS |= {
    "quant_latency": [f"{quant_dir(p)}/latency.json" for p in QUANT_PRECISIONS],
    "quant_scores": [f"{quant_dir(p)}/scores.json" for p in QUANT_PRECISIONS],
    "quant_generation": [f"{quant_dir(p)}/generation.json" for p in QUANT_PRECISIONS],
}
