# Dataset subsets: seeded, deterministic, train and eval disjoint (checked).


rule make_subsets:
    output:
        eval="results/data/{dataset}/eval.jsonl",
        train=expand("results/data/{{dataset}}/train-n{size}.jsonl", size=TRAIN_SIZES),
        info="results/data/{dataset}/subsets.json",
    log:
        "logs/make_subsets/{dataset}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=config["data"],
    script:
        "../scripts/make_subsets.py"


rule make_heldout_text:
    # Perplexity texts for the forgetting measure: never trained on, never evaluated.
    input:
        eval="results/data/{dataset}/eval.jsonl",
        train=expand("results/data/{{dataset}}/train-n{size}.jsonl", size=TRAIN_SIZES),
    output:
        "results/data/{dataset}/heldout.jsonl",
    log:
        "logs/make_heldout_text/{dataset}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=config["data"],
        forgetting={key: config["drift"]["forgetting"][key] for key in ("examples", "seed")},
    script:
        "../scripts/make_heldout_text.py"


rule make_drift_prompts:
    # Texts for the drift measures: every row outside the training subsets (the evaluation
    # split and the splits no subset uses), seeded; drift needs no generation, so it uses many.
    input:
        train=expand("results/data/{{dataset}}/train-n{size}.jsonl", size=TRAIN_SIZES),
    output:
        "results/data/{dataset}/drift.jsonl",
    log:
        "logs/make_drift_prompts/{dataset}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=config["data"],
        drift={key: config["drift"][key] for key in ("examples", "seed")},
    script:
        "../scripts/make_drift_prompts.py"


rule make_general_text:
    # General text from outside the task's domain, for forgetting (news for aclsum and the
    # other way round, or a file of the user's).
    input:
        GENERAL_TEXT_FILE,
    output:
        "results/data/{dataset}/general.jsonl",
    log:
        "logs/make_general_text/{dataset}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        source=GENERAL_TEXT_SOURCE,
        general={key: config["drift"]["forgetting"]["general"][key] for key in ("examples", "seed")},
    script:
        "../scripts/make_general_text.py"
