# lora-study: the LoRA research study as a Snakemake workflow.
#   snakemake --cores 1 report.html      build the whole study on the default config
#   snakemake -n                         list what is not built yet
#   snakemake --configfile configs/tiny.yaml --cores 2    a different config

configfile: "config.yaml"


include: "rules/common.smk"


wildcard_constraints:
    model=NAME_PATTERN,
    dataset=NAME_PATTERN,
    variant=NAME_PATTERN,


include: "rules/model.smk"
include: "rules/data.smk"
include: "rules/evaluate.smk"
include: "rules/adapters.smk"
include: "rules/compare.smk"
include: "rules/quantise.smk"
include: "rules/drift.smk"
include: "rules/weights.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        "report.html",
