"""Model jobs and the GPU: every model rule takes the one GPU slot and every core; the GPU
profile allows one such job at a time; no rule asks SLURM for a GPU by itself."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from test_envs import rule_blocks

from conftest import REPO, run_snakemake

SLURM_PROFILE = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
GPU_PROFILE = REPO / "profiles" / "gpu"


def declares(block: str, pattern: str) -> bool:
    return re.search(pattern, block, flags=re.MULTILINE) is not None


def test_model_rules_take_the_gpu_slot_and_every_core() -> None:
    blocks = rule_blocks()
    slotted = {rule for rule, block in blocks.items() if declares(block, r"^        gpu_slot=1,")}
    # The rules the SLURM profile gives a GPU are exactly the model rules.
    on_gpu = {rule for rule, resources in SLURM_PROFILE["set-resources"].items() if resources.get("gpu", 0) >= 1}
    assert slotted == on_gpu and "generate_quant_predictions" in slotted
    for rule in slotted:
        assert declares(blocks[rule], r"^    threads: MODEL_THREADS$"), f"{rule} does not take the workflow's cores"


def test_no_rule_asks_slurm_for_a_gpu() -> None:
    """The SLURM plugin turns a `gpu` resource into `sbatch --gpus`: only profiles/slurm asks."""
    for rule, block in rule_blocks().items():
        assert not declares(block, r"^        (gpu|gpus|gres|gpu_model)="), rule


def test_gpu_profile_allows_one_model_job_at_a_time(tmp_path: Path) -> None:
    profile = yaml.safe_load((GPU_PROFILE / "config.yaml").read_text())
    assert profile["resources"] == {"gpu_slot": 1}
    dry = run_snakemake(tmp_path, "-n", "--workflow-profile", str(GPU_PROFILE), "report.html")
    plan = {
        rule: line
        for rule, line in re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", dry, flags=re.MULTILINE)
    }
    assert "gpu_slot=1" in plan["generate_quant_predictions"] and "gpu_slot=1" in plan["train_adapter"]
    assert "gpu_slot" not in plan["make_eval_subset"]
