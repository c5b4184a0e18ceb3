"""Rules train_adapter and train_full: train one variant from a freshly loaded base."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.grid import VariantSpec
from lora_study.core.logs import logged_job
from lora_study.stages.adapters.finetune import train_variant

with logged_job(snakemake.log[0]):
    settings = snakemake.params.settings
    spec = VariantSpec.from_dict(settings["spec"])
    train_variant(
        spec=spec,
        model_dir=snakemake.input.model,
        train_path=snakemake.input.train,
        config=settings,
        weights_out=snakemake.output.adapter,
        train_json=snakemake.output.info,
        loss_csv=snakemake.output.loss,
    )
