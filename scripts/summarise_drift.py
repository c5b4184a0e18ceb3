"""Rule summarise_drift: intervals for drift and forgetting per variant group, and Study 4's
criterion judged on them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.logs import logged_job
from lora_study.core.provenance import meta_info
from lora_study.core.results import read_result, write_result
from lora_study.stages.drift.summary import summarise_drift
from lora_study.stats.drift import read_features


def variants(drift_paths, feature_paths):
    """Variant name -> (spec, drift metrics, tuned features), named by what each drift.json
    records; both inputs come from one comprehension over the variants (strict pairing)."""
    found = {}
    for drift_path, features_path in zip(drift_paths, feature_paths, strict=True):
        drift = read_result(drift_path)
        found[drift["run"]["variant"]] = (drift["run"]["spec"], drift["metrics"], read_features(features_path))
    return found


with logged_job(snakemake.log[0]):
    inputs, params = snakemake.input, snakemake.params
    result = summarise_drift(
        base_features=read_features(inputs.base_features),
        base_forgetting=read_result(inputs.base_forgetting)["metrics"],
        variants=variants(inputs.drift, inputs.features),
        comparisons=read_result(inputs.comparisons),
        settings=params.settings,
    )
    write_result(snakemake.output[0], **result, meta=meta_info(device="cpu"))
