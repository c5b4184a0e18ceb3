# Included first: config validation (before any job runs), names and paths for all stages.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from lora_study.config import ConfigError, canonical, dataset_name, model_name, validate_config

try:
    # Keys sorted so that rule params (and so reruns) do not depend on key order in the file.
    config = canonical(
        validate_config(config, source=", ".join(map(str, workflow.configfiles)) or "the configuration")
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None

MODEL = model_name(config["model"])
DATASET = dataset_name(config["data"])
TRAIN_SIZES = config["data"]["train"]["sizes"]
# Variants evaluated so far; adapters and quantised models join this list as they are added.
VARIANTS = ["base"]
# Names that appear in paths (model, dataset, variant): no slashes, no spaces.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"



def model_dir(wildcards):
    return f"resources/models/{wildcards.model}"


def eval_dir(variant):
    return f"results/eval/{MODEL}/{DATASET}/{variant}"
