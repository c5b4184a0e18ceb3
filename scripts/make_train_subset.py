"""Rule make_train_subset: one seeded training subset, disjoint from the evaluation subset."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.data import draw_train, read_examples, write_draw
from lora_study.core.logs import logged_job

with logged_job(snakemake.log[0]):
    data = snakemake.params.data
    draw = draw_train(data=data, evals=read_examples(snakemake.input.eval), size=int(snakemake.wildcards.size))
    write_draw(draw=draw, dataset=data["dataset"], path=snakemake.output.train, info_path=snakemake.output.info)
