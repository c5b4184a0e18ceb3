"""Rule record_subsets: subsets.json, how every subset was drawn and its files' hashes."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.data import read_draw, subsets_meta, write_subsets_info
from lora_study.core.logs import logged_job

with logged_job(snakemake.log[0]):
    inputs, subsets = snakemake.input, snakemake.params.subsets
    # The rule lists the train files in sorted size order.
    trains = {
        size: read_draw(path=path, info_path=info)
        for size, path, info in zip(sorted(subsets["sizes"]), inputs.train, inputs.train_info, strict=True)
    }
    meta = subsets_meta(
        dataset=subsets["dataset"],
        name=subsets["name"],
        sizes=subsets["sizes"],
        evals=read_draw(path=inputs.eval, info_path=inputs.eval_info),
        trains=trains,
    )
    files = {Path(path).name: path for path in [inputs.eval, *inputs.train]}
    write_subsets_info(meta=meta, files=files, out_path=snakemake.output[0])
