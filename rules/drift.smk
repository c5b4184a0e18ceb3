# Representational drift (Study 4): base against each trained variant, layer by layer, and
# forgetting as perplexity on held-out text.


rule measure_drift:
    input:
        model=model_dir,
        eval="results/data/{dataset}/eval.jsonl",
        heldout="results/data/{dataset}/heldout.jsonl",
        weights=variant_weights,
    output:
        drift="results/drift/{model}/{dataset}/{variant}/drift.json",
        matrix="results/drift/{model}/{dataset}/{variant}/cka_matrix.npz",
    wildcard_constraints:
        variant=TRAINED_VARIANT_PATTERN,
    params:
        settings=DRIFT_SETTINGS,
        spec=lambda wildcards: TRAINED[wildcards.variant].to_dict(),
    threads: MODEL_THREADS
    log:
        "logs/measure_drift/{model}/{dataset}/{variant}.log",
    benchmark:
        "benchmarks/measure_drift/{model}/{dataset}/{variant}.tsv"
    resources:
        mem_mb=6000,
        runtime=60,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/measure_drift.py"
