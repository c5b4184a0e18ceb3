"""The report-side jobs run with only the report environment's packages.

compare_variants, summarise_drift and build_report run in envs/report.yaml under
`--software-deployment-method conda`, which has no torch. Importing their modules is not
enough (test_envs.py does that): a code path can still import torch late, as
`provenance.device_description` once did, so compare_variants failed under conda. Here the
three jobs run for real on the tiny run's files, with every model package blocked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_envs import rule_blocks, rule_directive

from conftest import snakemake_command

# In envs/torch.yaml, not in envs/report.yaml.
MODEL_PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "bitsandbytes",
    "datasets",
    "gguf",
    "safetensors",
)
# Every rule that runs in the report environment (a new one is covered without editing this file).
REPORT_RULES = tuple(
    sorted(name for name, block in rule_blocks().items() if rule_directive(block, "conda") == "../envs/report.yaml")
)
# Rules of a learning-rate sweep only: not in the tiny run, whose jobs the slow tests rerun
# blocked (tests/test_sweep.py runs them; test_startup.py checks their imports).
SWEEP_ONLY_RULES = ("make_validation_subset", "select_learning_rate")

BLOCKER = f"""
import importlib.abc, sys

class _ReportEnvOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {set(MODEL_PACKAGES)!r}:
            raise ImportError(f"{{name}} is not in envs/report.yaml")
        return None

sys.meta_path.insert(0, _ReportEnvOnly())
"""


def blocker_path(tmp_path: Path) -> dict[str, str]:
    """The environment of a Python whose every process loads the model-package blocker."""
    folder = tmp_path / "blocker"
    folder.mkdir(parents=True)
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


def run_blocked(workdir: Path, tmp_path: Path, *, rules: tuple[str, ...], targets: list[Path]) -> str:
    """Run `rules` for real on `targets` (their outputs) with the model packages blocked.
    Explicit targets, not `--until` (snakemake 9 stops with "BUG: Out of jobs ready" when a
    forced job updates another one's input under --until): only those files' jobs are planned."""
    result = subprocess.run(
        snakemake_command(
            workdir, "--cores", "1", "--forcerun", *rules, "--", *(str(t.relative_to(workdir)) for t in targets)
        ),
        capture_output=True,
        text=True,
        env=blocker_path(tmp_path),
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    for rule in rules:
        assert f"rule {rule}:" in output or f"localrule {rule}:" in output, f"{rule} did not run"
    for name in ("generate_predictions", "train_adapter", "measure_latency", "generate_quant_predictions"):
        assert f"rule {name}:" not in output, f"{name} ran: a model job was planned"
    return output


@pytest.mark.slow
def test_report_jobs_run_without_model_packages(workflow_dir: Path, tmp_path: Path) -> None:
    # A hard-linked copy: the forced jobs replace their outputs (new files), the tiny run's stay.
    workdir = tmp_path / "work"
    shutil.copytree(workflow_dir, workdir, copy_function=os.link, symlinks=True)
    rules = tuple(rule for rule in REPORT_RULES if rule not in SWEEP_ONLY_RULES)
    output = run_blocked(workdir, tmp_path, rules=rules, targets=[workdir / "report.html"])
    assert (
        "Finished job" in output
        and (workdir / "report.html").stat().st_ino != (workflow_dir / "report.html").stat().st_ino
    )
