"""Rule make_drift_prompts: texts outside every training subset, for the drift measures."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # `snakemake` is set by Snakemake

from lora_study.core.data import drift_texts, read_examples
from lora_study.core.io import write_jsonl
from lora_study.core.logs import logged_job

with logged_job(snakemake.log[0]):
    # The training sets are nested: the largest holds every training example.
    trained = read_examples(snakemake.input.largest_train)
    drift = snakemake.params.drift
    rows = drift_texts(
        data=snakemake.params.data,
        trained=trained,
        validation=[e for path in snakemake.input.validation for e in read_examples(path)],
        size=drift["examples"],
        seed=drift["seed"],
    )
    write_jsonl(snakemake.output[0], rows)
