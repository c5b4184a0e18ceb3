"""Rule summarise_drift: intervals for drift and forgetting per variant group, and Study 4's
criterion judged on them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.drift_stats import read_features
from lora_study.drift_summary import summarise_drift
from lora_study.io import read_json, write_json
from lora_study.logs import logged_job
from lora_study.provenance import meta_info

with logged_job(snakemake.log[0]):  # noqa: F821
    inputs, params = snakemake.input, snakemake.params  # noqa: F821
    names, drift_files, feature_files = list(params.variants), list(inputs.drift), list(inputs.features)
    if not len(names) == len(drift_files) == len(feature_files):
        raise ValueError(f"{len(names)} variants but {len(drift_files)} drift and {len(feature_files)} feature files")
    variants = {
        name: (read_json(drift)["metrics"], read_features(features))
        for name, drift, features in zip(names, drift_files, feature_files)
    }
    result = summarise_drift(
        base_features=read_features(inputs.base_features),
        base_forgetting=read_json(inputs.base_forgetting)["metrics"],
        variants=variants,
        comparisons=read_json(inputs.comparisons),
        settings=params.settings,
    )
    write_json(snakemake.output[0], {**result, "meta": meta_info(device="cpu")})  # noqa: F821
