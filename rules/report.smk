# The aggregated report: one self-contained HTML page built from the result files. Its named
# inputs are what each stage's rules file adds to REPORT_INPUTS (rules/common.smk), and each is
# read by the report module that declares it (src/lora_study/report/, stages.PAGE_ORDER): the
# job fails on an input no module reads or a module's input missing here. Per-variant files are
# matched to their variants by what each file records (loss.csv, which records none, pairs with
# the train.json beside it), so a missing or extra file fails the job instead of shifting the others.


rule build_report:
    input:
        **REPORT_INPUTS,
    output:
        # Also a result of `snakemake --report` (the page, its caption and the workflow's runtimes).
        report=report("report.html", caption="../report/study.rst", category="Study"),
        # The files the page was built from, by input name: the run's own list of its results,
        # which bench/record_run.py reads (src/lora_study/report/inputs.py, write_index).
        index="results/index.json",
    log:
        "logs/build_report.log",
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=config,
    script:
        "../scripts/build_report.py"
