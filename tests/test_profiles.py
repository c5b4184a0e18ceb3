"""Model jobs, lanes and the GPU: every model rule takes the one GPU slot; on one machine a
model job that times nothing runs on one thread (a lane) and a timing job on every core; the
GPU profile allows one model job at a time, each with every core; no rule asks SLURM for a
GPU by itself."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from test_envs import rule_blocks

from conftest import REPO, run_snakemake

SLURM_PROFILE = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
GPU_PROFILE = REPO / "profiles" / "gpu"


def declares(block: str, pattern: str) -> bool:
    return re.search(pattern, block, flags=re.MULTILINE) is not None


# The rules whose figures are times: they take every core, so nothing runs beside them.
TIMING_RULES = {"measure_latency", "serve_base", "serve_variant", "serve_multi_adapter"}


def test_model_rules_take_the_gpu_slot_and_a_lane_or_every_core() -> None:
    blocks = rule_blocks()
    slotted = {rule for rule, block in blocks.items() if declares(block, r"^        gpu_slot=1,")}
    # The rules the SLURM profile gives a GPU are exactly the model rules.
    on_gpu = {rule for rule, resources in SLURM_PROFILE["set-resources"].items() if resources.get("gpu", 0) >= 1}
    assert slotted == on_gpu and "generate_quant_predictions" in slotted and slotted >= TIMING_RULES
    for rule in slotted:
        threads = "TIMING_THREADS" if rule in TIMING_RULES else "LANE_THREADS"
        assert declares(blocks[rule], rf"^    threads: {threads}$"), f"{rule} does not declare {threads}"


def planned_threads(dry_run: str) -> dict[str, set[int]]:
    """Rule -> the threads of its planned jobs (a dry run prints `threads:` only above 1)."""
    threads: dict[str, set[int]] = {}
    for rule, block in re.findall(
        r"^(?:local)?(?:rule|checkpoint) (\w+):\n((?:    .*\n)*)", dry_run, flags=re.MULTILINE
    ):
        found = re.search(r"^    threads: (\d+)$", block, flags=re.MULTILINE)
        threads.setdefault(rule, set()).add(int(found.group(1)) if found else 1)
    return threads


def test_lanes_on_one_machine_and_every_core_under_the_gpu_profile(tmp_path: Path) -> None:
    """At --cores 2 a training or generation job takes one core (two run at once) and a timing
    job both (it runs alone); under the GPU profile every model job takes every core."""
    plain = run_snakemake(tmp_path, "-n", "--cores", "2", "report.html")
    lanes = planned_threads(plain)
    assert lanes["train_full"] == lanes["generate_predictions"] == lanes["train_adapter"] == {1}
    assert lanes["measure_latency"] == lanes["serve_variant"] == {2}
    assert "Lanes: a model job that times nothing runs on one thread" in plain
    assert re.search(r"at most [\d,]+ MB of declared memory \(mem_mb\) at once", plain)
    capped = run_snakemake(tmp_path, "-n", "--cores", "2", "--resources=mem_mb=9000", "report.html")
    assert "at most 9,000 MB of declared memory (mem_mb) at once" in capped
    gpu_run = run_snakemake(tmp_path, "-n", "--workflow-profile", str(GPU_PROFILE), "report.html")
    gpu = planned_threads(gpu_run)
    every = {os.cpu_count() or 1}
    assert gpu["train_full"] == gpu["generate_predictions"] == gpu["measure_latency"] == every
    assert "Lanes:" not in gpu_run


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
