"""Snakemake alone parses the workflow: the rules layer needs none of the study's heavy packages.

docs/RUNNING.md promises that Snakemake itself only needs snakemake and the SLURM executor plugin
(jobs get their own envs, envs/*.yaml). A dry run here blocks every package such an
environment lacks; rules/common.smk once imported lora_study.stages.compare.compare, and with it numpy and
rouge-score, so a plain `snakemake -n` failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO, tiny_config

# Installed by the job environments, not by `pip install snakemake snakemake-executor-plugin-slurm`
# (numpy and pandas are: the SLURM plugin depends on them).
NOT_IN_A_SNAKEMAKE_ENV = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "bitsandbytes",
    "datasets",
    "rouge_score",
    "nltk",
    "matplotlib",
    "seaborn",
    "scipy",
    "statsmodels",
    "safetensors",
    "gguf",
)

DRY_RUN = """
import importlib.abc, sys
blocked = set(sys.argv[1].split(","))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not in a Snakemake-only environment")
        return None

sys.meta_path.insert(0, Block())
from snakemake.cli import main
sys.argv = ["snakemake", *sys.argv[2:]]
try:
    main()
except SystemExit as done:
    loaded = sorted(name for name in sys.modules if name.startswith("lora_study"))
    print("LOADED", ",".join(loaded))
    raise
"""


def dry_run_loads(workdir: Path, configfile: Path) -> set[str]:
    """The lora_study modules a dry run in a Snakemake-only environment loads (it must succeed)."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            DRY_RUN,
            ",".join(NOT_IN_A_SNAKEMAKE_ENV),
            "-n",
            "--cores",
            "1",
            "--directory",
            str(workdir),
            "-s",
            str(REPO / "Snakefile"),
            "report.html",
            "--configfile",
            str(configfile),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "This was a dry-run" in output
    loaded = next(line for line in result.stdout.splitlines() if line.startswith("LOADED")).split()[1]
    return set(loaded.split(","))


def test_dry_run_needs_only_snakemake(tmp_path: Path) -> None:
    # The rules layer loads the grid, the config module, the datasets it reads and the free-memory
    # reading of the lanes' guard (core.conditions, standard library only): no stage code.
    assert dry_run_loads(tmp_path, REPO / "configs" / "tiny.yaml") == {
        "lora_study",
        "lora_study.core",
        "lora_study.core.grid",
        "lora_study.core.config",
        "lora_study.core.conditions",
        "lora_study.core.datasets",
    }


def test_a_local_datasets_rows_are_checked_at_the_dry_run_with_snakemake_alone(tmp_path: Path) -> None:
    """The dry run reads a local dataset's files as the data jobs do (lora_study.core.data, with
    numpy, which a Snakemake environment has), and nothing that needs a job environment."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(json.dumps({"id": f"r{i}", "input": f"text {i}", "reference": f"s {i}"}) + "\n" for i in range(30))
    )
    config = tiny_config()
    config["data"].update(dataset="local", local={"train_file": str(rows), "eval_file": str(rows), "id_field": "id"})
    configfile = tmp_path / "local.yaml"
    configfile.write_text(yaml.safe_dump(config))
    (tmp_path / "work").mkdir()
    assert "lora_study.core.data" in dry_run_loads(tmp_path / "work", configfile)
