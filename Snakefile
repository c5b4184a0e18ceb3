# lora-study: the LoRA research study as a Snakemake workflow.
#   snakemake --cores 1 report.html      build the whole study on the default config
#   snakemake -n                         list what is not built yet
#   snakemake --cores 2 report.html --configfile configs/tiny.yaml    an overlay on config.yaml

import sys
from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from lora_study.core.config import ConfigError, read_yaml

# Snakemake's message for a YAML syntax error names neither the file nor the line: read the
# base config ourselves first. An overlay given with --configfile is read by Snakemake before
# this file runs, and where it refuses one (empty, not UTF-8, a YAML syntax error) no code of
# ours has run yet: `python -m lora_study.core.config config.yaml OVERLAY` names the file and line.
# Every overlay it accepts is read again by rules/common.smk, with the checker's messages.
try:
    read_yaml(os.path.join(workflow.basedir, "config.yaml"))
except ConfigError as error:
    raise WorkflowError(str(error)) from None


# The workflow's own config.yaml is the base wherever it runs (`--directory` included);
# `--configfile` files are overlays on it, holding only what differs.
configfile: os.path.join(workflow.basedir, "config.yaml")


# `snakemake --report`: this description, and report.html as the study's page.
report: "report/workflow.rst"


include: "rules/common.smk"


wildcard_constraints:
    model=NAME_PATTERN,
    dataset=NAME_PATTERN,
    variant=NAME_PATTERN,


include: "rules/model.smk"
include: "rules/data.smk"
include: "rules/evaluate.smk"
include: "rules/adapters.smk"
include: "rules/selection.smk"
include: "rules/compare.smk"
include: "rules/quantise.smk"
include: "rules/drift.smk"
include: "rules/weights.smk"
include: "rules/serving.smk"
include: "rules/tables.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        "report.html",
