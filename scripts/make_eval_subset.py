"""Rule make_eval_subset: the seeded evaluation subset of the configured dataset."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.data import draw_eval, write_draw
from lora_study.core.logs import logged_job

with logged_job(snakemake.log[0]):
    data = snakemake.params.data
    draw = draw_eval(data=data)
    write_draw(draw=draw, dataset=data["dataset"], path=snakemake.output.eval, info_path=snakemake.output.info)
