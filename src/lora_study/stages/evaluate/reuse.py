"""The `full` precision's quality run, taken from the base model's evaluation.

`full` loads the prepared model exactly as the base evaluation does (`model.dtype` on
`model.device`, through `modeling.load_model`), and its quality run is the same evaluation
code with the same prompts, decoding and batches (`quantise.predict_at_precision` calls
`evaluate.predict`), so recomputing it gave the same predictions for minutes of generation.
Its files are the base evaluation's predictions, and a generation.json that names the
precision and the files it was taken from. Standard library only: no model is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lora_study.core.io import atomic_write_bytes
from lora_study.core.provenance import meta_info
from lora_study.core.results import read_result, write_result

REUSED_PRECISION = "full"


def reuse_base_predictions(
    *,
    predictions: str | Path,
    info: str | Path,
    predictions_out: str | Path,
    info_out: str | Path,
    precision: str = REUSED_PRECISION,
) -> dict[str, Any]:
    """Copy the base evaluation's predictions (byte for byte) and write the precision's
    generation.json from the base's: its timings and device, the precision's own name."""
    base = read_result(info)
    if base["run"].get("variant") != "base":
        raise ValueError(f"{info} is the generation record of {base['run'].get('variant')!r}, not of the base model")
    atomic_write_bytes(predictions_out, Path(predictions).read_bytes())  # a killed job leaves no half file
    run = {
        **base["run"],
        "variant": precision,
        "reused_from": {"predictions": str(predictions), "generation": str(info)},
    }
    meta = {
        **base["meta"],  # where and how the predictions were computed (device, dtype, versions)
        "model": {**base["meta"].get("model", {}), "precision": precision},
        "reused_by": meta_info(),  # this job: when and by which code the files were taken over
    }
    result = {"run": run, "metrics": base["metrics"], "meta": meta}
    write_result(info_out, **result)
    return result
