# Evaluation shared by every variant: predictions from one prompt builder, then the task's scores.


rule generate_predictions:
    input:
        model=model_dir,
        eval="results/data/{dataset}/eval.jsonl",
    output:
        predictions="results/eval/{model}/{dataset}/base/predictions.jsonl",
        info="results/eval/{model}/{dataset}/base/generation.json",
    log:
        "logs/generate_predictions/{model}/{dataset}/base.log",
    benchmark:
        "benchmarks/generate_predictions/{model}/{dataset}/base.tsv"
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        mem_mb=4000,
        runtime=60,
        gpu_slot=1,  # profiles/gpu: one model job on the GPU at a time
    params:
        # Everything that changes a prediction; a change reruns this rule.
        settings={key: config[key] for key in ("model", "prompt", "generation", "evaluation", "task")},
    script:
        "../scripts/generate_predictions.py"


rule score_predictions:
    # Every stage's predictions: results/eval/... (base, trained variants) and
    # results/quant/... (one per precision), scored by the same code.
    input:
        predictions="results/{stage}/{model}/{dataset}/{variant}/predictions.jsonl",
    output:
        scores="results/{stage}/{model}/{dataset}/{variant}/scores.json",
    log:
        "logs/score_predictions/{stage}/{model}/{dataset}/{variant}.log",
    wildcard_constraints:
        stage="eval|quant",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=scored_spec,
        task=config["task"],
    script:
        "../scripts/score_predictions.py"


# What the report shows of this stage: build_report's named inputs (rules/report.smk), read by
# the report module that declares the same names (src/lora_study/report/).
REPORT_INPUTS |= {
    "scores": lambda wildcards: [f"{eval_dir(v)}/scores.json" for v in evaluated_names()],
    "predictions": lambda wildcards: [f"{eval_dir(v)}/predictions.jsonl" for v in evaluated_names()],
    "generation": lambda wildcards: [f"{eval_dir(v)}/generation.json" for v in evaluated_names()],
}
