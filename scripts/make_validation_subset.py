"""Rule make_validation_subset: the seeded validation subset a learning-rate sweep chooses on,
disjoint from the evaluation subset and every training subset."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.data import draw_validation, read_examples, write_draw
from lora_study.core.logs import logged_job

with logged_job(snakemake.log[0]):
    data = snakemake.params.data
    # The training sets are nested: the largest holds every training example.
    draw = draw_validation(
        data=data, evals=read_examples(snakemake.input.eval), trained=read_examples(snakemake.input.largest_train)
    )
    write_draw(draw=draw, dataset=data["dataset"], path=snakemake.output.validation, info_path=snakemake.output.info)
