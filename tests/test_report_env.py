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
import sys
from pathlib import Path

import pytest
from test_envs import rule_blocks, rule_directive

from conftest import REPO

# In envs/torch.yaml, not in envs/report.yaml.
MODEL_PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "bitsandbytes",
    "datasets",
    "trl",
    "gguf",
    "safetensors",
)
# Every rule that runs in the report environment (a new one is covered without editing this file).
REPORT_RULES = tuple(
    sorted(name for name, block in rule_blocks().items() if rule_directive(block, "conda") == "../envs/report.yaml")
)

BLOCKER = f"""
import importlib.abc, sys

class _ReportEnvOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {set(MODEL_PACKAGES)!r}:
            raise ImportError(f"{{name}} is not in envs/report.yaml")
        return None

sys.meta_path.insert(0, _ReportEnvOnly())
"""


@pytest.mark.slow
def test_report_jobs_run_without_model_packages(workflow_dir: Path, tmp_path: Path) -> None:
    # A hard-linked copy: the forced jobs replace their outputs (new files), the tiny run's stay.
    workdir = tmp_path / "work"
    shutil.copytree(workflow_dir, workdir, copy_function=os.link, symlinks=True)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)  # every Python process of the run loads it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--cores",
            "1",
            "--configfile",
            str(REPO / "configs" / "tiny.yaml"),
            "--forcerun",
            *REPORT_RULES,
            "--",
            "report.html",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    for rule in REPORT_RULES:
        assert f"rule {rule}:" in output or f"localrule {rule}:" in output, f"{rule} did not run"
    assert (
        "Finished job" in output
        and (workdir / "report.html").stat().st_ino != (workflow_dir / "report.html").stat().st_ino
    )
