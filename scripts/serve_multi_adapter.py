"""Rule serve_multi_adapter: every LoRA adapter of the base served together, three ways."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.grid import VariantSpec
from lora_study.core.logs import logged_job
from lora_study.stages.serving.multi_adapter import serve_multi_adapter

with logged_job(snakemake.log[0]):
    specs = [VariantSpec.from_dict(fields) for fields in snakemake.params.specs]
    # The inputs hold the mixable variants only; each folder sits in its variant's folder.
    serve_multi_adapter(
        specs=specs,
        adapters={Path(path).parent.name: path for path in snakemake.input.adapters},
        merged={Path(path).parent.name: path for path in snakemake.input.merged},
        model_dir=snakemake.input.model,
        eval_path=snakemake.input.eval,
        config=snakemake.params.settings,
        out_path=snakemake.output[0],
    )
