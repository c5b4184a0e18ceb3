"""Rule measure_drift: layer-by-layer CKA and cosine of base vs one trained variant, and
perplexity of both on held-out text."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821 (set by Snakemake)

from lora_study.grid import VariantSpec
from lora_study.drift_stage import measure_drift
from lora_study.logs import logged_job

with logged_job(snakemake.log[0]):  # noqa: F821
    measure_drift(
        spec=VariantSpec.from_dict(snakemake.params.spec),  # noqa: F821
        model_dir=snakemake.input.model,  # noqa: F821
        weights=snakemake.input.weights,  # noqa: F821
        eval_path=snakemake.input.eval,  # noqa: F821
        heldout_path=snakemake.input.heldout,  # noqa: F821
        config=snakemake.params.settings,  # noqa: F821
        drift_path=snakemake.output.drift,  # noqa: F821
        matrix_path=snakemake.output.matrix,  # noqa: F821
    )
