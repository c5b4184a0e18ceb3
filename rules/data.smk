# Dataset subsets: seeded, deterministic, train and eval disjoint (checked). One job per file,
# each given only the settings that change it, so a change reruns exactly what depends on it:
# adding a training size makes one more train file and leaves eval.jsonl (and every job that
# reads only it) alone.


rule make_eval_subset:
    input:
        # The user's data files the eval split is read from (none for a packaged dataset).
        source=EVAL_SPLIT_FILES,
    output:
        eval="results/data/{dataset}/eval.jsonl",
        info="results/data/{dataset}/parts/eval.json",
    log:
        "logs/make_eval_subset/{dataset}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=subset_settings(config["data"], part="eval"),
    script:
        "../scripts/make_eval_subset.py"


rule make_train_subset:
    input:
        # Training examples that overlap the eval set are dropped before the draw.
        eval="results/data/{dataset}/eval.jsonl",
        source=TRAIN_SPLIT_FILES,
    output:
        train="results/data/{dataset}/train-n{size}.jsonl",
        info="results/data/{dataset}/parts/train-n{size}.json",
    log:
        "logs/make_train_subset/{dataset}/n{size}.log",
    wildcard_constraints:
        size=TRAIN_SIZE_PATTERN,
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=subset_settings(config["data"], part="train"),
    script:
        "../scripts/make_train_subset.py"


# The rows a learning-rate sweep chooses its rate on, drawn only when a method is swept: outside
# the evaluation and training subsets; the drift and forgetting texts then leave them out.
VALIDATION_FILES = ["results/data/{dataset}/validation.jsonl"] if SWEPT else []


rule make_validation_subset:
    input:
        eval="results/data/{dataset}/eval.jsonl",
        largest_train=f"results/data/{{dataset}}/train-n{LARGEST_TRAIN_SIZE}.jsonl",
        source=VALIDATION_SPLIT_FILES,
    output:
        validation="results/data/{dataset}/validation.jsonl",
        info="results/data/{dataset}/parts/validation.json",
    log:
        "logs/make_validation_subset/{dataset}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        # The validation split's rows and draw, and which splits the subsets it avoids come from.
        data=VALIDATION_DATA,
    script:
        "../scripts/make_validation_subset.py"


rule record_subsets:
    # subsets.json, which the report reads: how each subset was drawn, and its files' hashes.
    input:
        eval="results/data/{dataset}/eval.jsonl",
        eval_info="results/data/{dataset}/parts/eval.json",
        train=expand("results/data/{{dataset}}/train-n{size}.jsonl", size=sorted(TRAIN_SIZES)),
        train_info=expand("results/data/{{dataset}}/parts/train-n{size}.json", size=sorted(TRAIN_SIZES)),
    output:
        "results/data/{dataset}/subsets.json",
    log:
        "logs/record_subsets/{dataset}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        subsets={"dataset": config["data"]["dataset"], "name": config["data"]["name"], "sizes": TRAIN_SIZES},
    script:
        "../scripts/record_subsets.py"


rule make_heldout_text:
    # Perplexity texts for the forgetting measure: never trained on, never evaluated.
    input:
        eval="results/data/{dataset}/eval.jsonl",
        largest_train=f"results/data/{{dataset}}/train-n{LARGEST_TRAIN_SIZE}.jsonl",
        # A sweep's validation rows, which a rate was chosen on (none without a sweep).
        validation=VALIDATION_FILES,
        source=EVAL_SPLIT_FILES,
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
        data=split_settings(config["data"], part="eval"),
        forgetting={key: config["drift"]["forgetting"][key] for key in ("examples", "seed")},
    script:
        "../scripts/make_heldout_text.py"


rule make_drift_prompts:
    # Texts for the drift measures: every row outside the training subsets (the evaluation
    # split and the splits no subset uses), seeded; drift needs no generation, so it uses many.
    input:
        largest_train=f"results/data/{{dataset}}/train-n{LARGEST_TRAIN_SIZE}.jsonl",
        validation=VALIDATION_FILES,
        source=EVAL_SPLIT_FILES,
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
        data=DRIFT_PROMPT_DATA,
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
        # Strings inside a dict: Snakemake formats a plain string param as a wildcard pattern.
        general={
            "source": GENERAL_TEXT_SOURCE,
            **{key: config["drift"]["forgetting"]["general"][key] for key in ("examples", "seed")},
        },
    script:
        "../scripts/make_general_text.py"


# What the report shows of this stage: build_report's named inputs (rules/report.smk), read by
# the report module that declares the same names (src/lora_study/report/).
REPORT_INPUTS |= {
    "subsets": f"results/data/{DATASET}/subsets.json",
    "eval": f"results/data/{DATASET}/eval.jsonl",
}
