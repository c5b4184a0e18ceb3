# Included first: config validation (before any job runs), names and paths for all stages.
import json
import re
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

# Only the standard library, PyYAML and jsonschema below (grid, config): Snakemake alone must
# be able to parse the workflow (tests/test_rules_imports.py).
from lora_study.core.grid import (
    BASE_VARIANT,
    FFT_VARIANT_PATTERN,
    LORA_VARIANT_PATTERN,
    MIXED_BATCH_EXCLUDED,
    NAME_PATTERN,
    TARGET_PRESETS,
    TRAINED_VARIANT_PATTERN,
    expand_grid,
    lora_variant_pattern,
    shared_training,
    studied_variants,
    swept_methods,
)
from lora_study.core.conditions import free_memory_bytes
from lora_study.core.datasets import GENERAL_SOURCES, general_source, resolved_split
from lora_study.core.config import (
    ConfigError,
    canonical,
    dataset_name,
    model_files,
    model_name,
    precision_options,
    split_files,
    split_settings,
    subset_settings,
    workflow_config,
)

try:
    # The config as our code reads it, not as Snakemake merged it: config.yaml, each
    # --configfile overlay (read again here: a key written twice, which Snakemake's reader lets
    # the second block win, is refused naming its line) and the --config entries (Snakemake
    # reads a mapping's values there as text), stacked as config.yaml documents per key, each
    # problem naming the file or --config that set it. Then spelt one way, the settings it
    # ignores dropped and keys sorted, so that rule params (and so reruns) follow what a setting
    # does. Cluster jobs parse this again: the local data files are read by the main process only.
    config = workflow_config(
        os.path.join(workflow.basedir, "config.yaml"),
        *map(str, workflow.overwrite_configfiles),
        config_args=workflow.config_settings.config_args or (),
        read_data=workflow.is_main_process,
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None


MODEL = model_name(config["model"])
DATASET = dataset_name(config["data"])
TRAIN_SIZES = config["data"]["train"]["sizes"]
# Only the configured sizes can be built (a train file is made per size).
TRAIN_SIZE_PATTERN = "|".join(str(size) for size in TRAIN_SIZES)
# Training sets are nested (each smaller one a prefix of the next), so the largest holds every
# training text: a job that must avoid them all reads only it, and adding a smaller size
# reruns no such job.
LARGEST_TRAIN_SIZE = max(TRAIN_SIZES)
# The user's own files the data jobs read (a local data file, a local copy of the hub
# dataset) and the local model folder: declared inputs, so that editing one reruns what
# depends on it.
EVAL_SPLIT_FILES = split_files(config["data"], part="eval")
TRAIN_SPLIT_FILES = split_files(config["data"], part="train")
VALIDATION_SPLIT_FILES = split_files(config["data"], part="validation")
MODEL_SOURCE_FILES = model_files(config["model"])
# Trained variants by name (lora-r8-qv-n100-lr2e-4-0a2037-s1, ...), from the config's grid:
# every candidate learning rate of a sweep included.
TRAINED = expand_grid(training=config["training"], train_sizes=TRAIN_SIZES)
# Methods (lora-r8-qv-n100, fft-n100, ...) trained at several learning rates: each is
# validated, and only the rate the validation split prefers goes on to the test-set stages.
SWEPT = swept_methods(TRAINED.values())
# What changes the drift prompts: the rows of the eval split and the other splits, and which
# split the training sets come from (it is left out).
DRIFT_PROMPT_DATA = canonical(
    {
        **split_settings(config["data"], part="eval"),
        "train": {"split": resolved_split(config["data"], part="train")},
        # A sweep's validation rows are left out: which split they come from.
        **({"validation": {"split": resolved_split(config["data"], part="validation")}} if SWEPT else {}),
    }
)
# What changes the validation subset: its split's rows and draw, and which splits the
# evaluation and training subsets it avoids come from.
VALIDATION_DATA = canonical(
    {
        **subset_settings(config["data"], part="validation"),
        **{part: {"split": resolved_split(config["data"], part=part)} for part in ("train", "eval")},
    }
)
# Training settings shared by every variant (the grid lists are not: adding a rank must
# not retrain the others); part of every variant's spec, and so of its name.
TRAINING_SHARED = shared_training(config["training"])
# The parameter-count table (Study 2): cheap, so always the full set.
# Filled by each stage's rules file with the files the report reads of it (rules/report.smk).
REPORT_INPUTS = {}
PARAMETER_TABLE_RANKS = [4, 8, 16, 32, 64]
PARAMETER_TABLE_PRESETS = list(TARGET_PRESETS)


def selection_file(method):
    return f"results/selection/{MODEL}/{DATASET}/{method}/selection.json"


def studied():
    """The trained variants the test-set stages use (evaluation, comparisons, drift, serving,
    report), by name: every variant of a method trained at one rate; of a swept method, the
    seeds of the rate its selection chose. A swept method's choice is read from its
    select_learning_rate checkpoint, so nothing downstream is planned before it is made."""
    chosen = set()
    for method in SWEPT:
        path = checkpoints.select_learning_rate.get(model=MODEL, dataset=DATASET, method=method).output[0]
        with open(path) as handle:
            chosen |= set(json.load(handle)["metrics"]["chosen"]["variants"])
    return studied_variants(TRAINED, chosen=chosen)


def studied_names(wildcards=None):
    return list(studied())


def evaluated_names(wildcards=None):
    """Every variant evaluated on the test set: the base model, then the studied trained ones."""
    return [BASE_VARIANT, *studied()]


# What changes a drift file: which tokens are pooled and how, and the cross-entropy's text
# length; the choice of prompts and texts reaches the jobs as input files, and the summary's
# settings (intervals, criterion) rerun only the summary.
DRIFT_SETTINGS = canonical(
    {
        "model": config["model"],
        "prompt": config["prompt"],
        "drift": {
            **{
                key: config["drift"][key]
                for key in ("tokens", "pooling", "include_embeddings", "token_level", "batch_size", "shuffle_seed")
            },
            "forgetting": {"max_tokens": config["drift"]["forgetting"]["max_tokens"]},
        },
    }
)
DRIFT_SUMMARY_SETTINGS = canonical(
    {
        **{key: config["drift"][key] for key in ("criterion", "resamples", "include_embeddings")},
        "seed": config["statistics"]["seed"],
        "confidence": config["statistics"]["confidence"],
        "max_quality_gap": config["statistics"]["max_quality_gap"],
    }
)
# General text for forgetting: `auto` is the offline corpus of the other domain; a file of the
# user's is an input, so editing it reruns what depends on it.
GENERAL_TEXT_SOURCE = general_source(
    dataset=config["data"]["dataset"], source=config["drift"]["forgetting"]["general"]["source"]
)
GENERAL_TEXT_FILE = [] if GENERAL_TEXT_SOURCE in GENERAL_SOURCES else [GENERAL_TEXT_SOURCE]


# Threads of a model job. Lanes (docs/PERFORMANCE.md#lanes): on one machine, a model job that
# times nothing runs on one thread, so `--cores N` runs N of them at once (a second thread
# speeds one job up only 1.2-1.9x) and its results are the same at any --cores. A job whose
# figures are times (latency, serving) takes every core, so it runs alone. Model jobs take
# every core themselves where something else already shares the hardware out: a cluster
# (each job its own CPUs; a profile may set threads per rule with set-threads), the GPU
# profile (gpu_slot: one model job on the GPU at a time), a job run inside a cluster job.
def given_cores():
    """--cores; 1 where a command runs no job and gives none (`snakemake --report`)."""
    try:
        return workflow.cores or 1
    except WorkflowError:
        return 1


MODEL_THREADS = max(1, min(given_cores(), os.cpu_count() or 1))
LANES = (
    not workflow.remote_exec
    and workflow.resource_settings.nodes is None
    and "gpu_slot" not in workflow.global_resources
)
LANE_THREADS = 1 if LANES else MODEL_THREADS
TIMING_THREADS = MODEL_THREADS
# The lanes' memory guard: on one machine, the jobs running together never declare (mem_mb)
# more than the memory free when snakemake started; a job declaring more runs alone.
# `--resources mem_mb=N` sets another limit.
if LANES and "mem_mb" not in workflow.global_resources:
    FREE_BYTES = free_memory_bytes()
    if FREE_BYTES is not None:
        workflow.register_resource("mem_mb", FREE_BYTES // 1_000_000)
if LANES:
    MEMORY_LIMIT = workflow.global_resources.get("mem_mb")
    logger.info(
        "Lanes: a model job that times nothing runs on one thread, one per core given; a timing "
        "job takes every core and runs alone"
        + (
            ""
            if MEMORY_LIMIT is None
            else f"; at most {int(getattr(MEMORY_LIMIT, 'value', MEMORY_LIMIT)):,} MB of declared memory (mem_mb) at once"
        )
        + " (docs/PERFORMANCE.md#lanes)."
    )
# Precisions of the quantisation benchmark; only these can be built (`(?!)`: none).
QUANT_PRECISIONS = config["quantisation"]["precisions"]
PRECISION_PATTERN = "|".join(re.escape(p) for p in QUANT_PRECISIONS) or "(?!)"


def model_dir(wildcards):
    return f"resources/models/{wildcards.model}"


def variant_weights(wildcards):
    """The trained artefact a variant is evaluated with: adapter folder or full model."""
    folder = "adapter" if TRAINED[wildcards.variant].is_lora else "model"
    return f"results/adapters/{wildcards.model}/{wildcards.dataset}/{wildcards.variant}/{folder}"


def variant_record(wildcards):
    """The train.json beside the trained artefact: its loaders check the artefact's files
    against the hashes it records (lora_study.core.checksums.verify_trained)."""
    return f"results/adapters/{wildcards.model}/{wildcards.dataset}/{wildcards.variant}/train.json"


def eval_dir(variant):
    return f"results/eval/{MODEL}/{DATASET}/{variant}"


def adapter_dir(variant):
    return f"results/adapters/{MODEL}/{DATASET}/{variant}"


def train_file(wildcards):
    return f"results/data/{wildcards.dataset}/train-n{TRAINED[wildcards.variant].train_size}.jsonl"


def variant_spec(wildcards):
    """The trained variant's spec, as its scripts read it (grid.VariantSpec.from_dict)."""
    return TRAINED[wildcards.variant].to_dict()


def scored_spec(wildcards):
    """The spec scores.json records: a trained variant's; None for the base model and precisions."""
    is_trained = wildcards.stage == "eval" and wildcards.variant in TRAINED
    return TRAINED[wildcards.variant].to_dict() if is_trained else None


def result_files(stage, file_name, names):
    """An input function: `file_name` of each of `names` (a list, or a function of the job's
    wildcards giving one) in `stage`'s results of the job's model and dataset
    (results/<stage>/<model>/<dataset>/<name>/<file_name>)."""

    def files(wildcards):
        listed = names(wildcards) if callable(names) else names
        return [f"results/{stage}/{wildcards.model}/{wildcards.dataset}/{name}/{file_name}" for name in listed]

    return files


def variant_params(wildcards):
    """Exactly what changes this variant's weights: its spec and the shared settings."""
    return canonical(
        {
            "spec": TRAINED[wildcards.variant].to_dict(),
            "model": {key: config["model"][key] for key in ("device", "dtype")},
            "prompt": config["prompt"],
            "task": config["task"],
            "training": TRAINING_SHARED,
        }
    )


def drift_dir(variant):
    return f"results/drift/{MODEL}/{DATASET}/{variant}"


def quant_dir(precision):
    return f"results/quant/{MODEL}/{DATASET}/{precision}"


def quant_options(wildcards):
    """The quantisation settings of this precision only (the int4 block for int4)."""
    return precision_options(wildcards.precision, config["quantisation"])


# Input functions of the sweep, serving and weight-drift rules (Snakemake's lint keeps
# functions here, rules in their own files).
# used in rules/selection.smk
def method_candidates(wildcards):
    """Every variant of the method, at every candidate rate and seed, in grid order."""
    return [name for name, spec in TRAINED.items() if spec.method == wildcards.method]


# used in rules/serving.smk
def served(wildcards=None):
    """Every studied LoRA-family variant is merged and served (all seeds: serving speed does
    not depend on the seed, but the files stay one per trained artefact)."""
    return [name for name, spec in studied().items() if spec.is_lora] if SERVING["enabled"] else []


# used in rules/serving.smk
def mixable(wildcards=None):
    """Served together on one base (multi-adapter): the kinds PEFT can mix in one batch."""
    return [name for name in served() if TRAINED[name].kind not in MIXED_BATCH_EXCLUDED]


# used in rules/serving.smk
def multi_adapter_files(wildcards=None):
    return [f"{SERVING_DIR}/multi_adapter.json"] if SERVING["multi_adapter"] and mixable() else []


# used in rules/serving.smk
def serving_files(wildcards=None):
    """Every single-mode serving file: the base, then merged and unmerged per variant."""
    variants = served()
    if not variants:
        return []
    return [f"{SERVING_DIR}/base/base.json"] + [
        f"{SERVING_DIR}/{v}/{mode}.json" for v in variants for mode in ("merged", "unmerged")
    ]


# used in rules/weights.smk
def mitigated(wildcards=None):
    return [name for name, spec in studied().items() if spec.kind in MITIGATION_KINDS]
