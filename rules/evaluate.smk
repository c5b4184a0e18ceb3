# Evaluation shared by every variant: predictions from one prompt builder, then ROUGE.


rule generate_predictions:
    input:
        model=model_dir,
        eval="results/data/{dataset}/eval.jsonl",
    output:
        predictions="results/eval/{model}/{dataset}/base/predictions.jsonl",
        info="results/eval/{model}/{dataset}/base/generation.json",
    params:
        # Everything that changes a prediction; a change reruns this rule.
        settings={key: config[key] for key in ("model", "prompt", "generation", "evaluation")},
    threads: MODEL_THREADS
    log:
        "logs/generate_predictions/{model}/{dataset}/base.log",
    benchmark:
        "benchmarks/generate_predictions/{model}/{dataset}/base.tsv"
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/generate_predictions.py"


rule score_rouge:
    # Every stage's predictions: results/eval/... (base, trained variants) and
    # results/quant/... (one per precision), scored by the same code.
    input:
        predictions="results/{stage}/{model}/{dataset}/{variant}/predictions.jsonl",
    output:
        rouge="results/{stage}/{model}/{dataset}/{variant}/rouge.json",
    wildcard_constraints:
        stage="eval|quant",
    log:
        "logs/score_rouge/{stage}/{model}/{dataset}/{variant}.log",
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/score_rouge.py"
