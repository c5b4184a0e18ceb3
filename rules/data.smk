# Dataset subsets: seeded, deterministic, train and eval disjoint (checked).


rule make_subsets:
    output:
        eval="results/data/{dataset}/eval.jsonl",
        train=expand("results/data/{{dataset}}/train-n{size}.jsonl", size=TRAIN_SIZES),
        info="results/data/{dataset}/subsets.json",
    params:
        data=config["data"],
    log:
        "logs/make_subsets/{dataset}.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/make_subsets.py"


rule make_heldout_text:
    # Perplexity texts for the forgetting measure: never trained on, never evaluated.
    input:
        eval="results/data/{dataset}/eval.jsonl",
        train=expand("results/data/{{dataset}}/train-n{size}.jsonl", size=TRAIN_SIZES),
    output:
        "results/data/{dataset}/heldout.jsonl",
    params:
        data=config["data"],
        forgetting={key: config["drift"]["forgetting"][key] for key in ("examples", "seed")},
    log:
        "logs/make_heldout_text/{dataset}.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/make_heldout_text.py"
