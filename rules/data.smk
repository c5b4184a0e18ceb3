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
