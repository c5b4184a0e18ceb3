"""Jobs that need no model never import torch, transformers or PEFT.

Importing the model stack costs a job seconds before its first real work (bench/startup.py
measures it), and a ROUGE score, a comparison, a data subset, a parameter count or the
report needs none of it. Two checks, with the blocker of test_report_env.py (every model
package raises ImportError): each such rule's script imports and runs its writer's code
path in a subprocess (fast), and on the tiny run's files every such job runs for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_envs import rule_blocks, rule_directive, script_imports
from test_report_env import MODEL_PACKAGES, REPORT_RULES, SWEEP_ONLY_RULES, blocker_path, run_blocked

from conftest import REPO

# The rules whose jobs must start without the model stack: the report environment's rules
# (compare_variants, summarise_drift, build_report) and those of the torch environment that
# need no model (data subsets and texts read the packaged data files; ROUGE; shape counts).
TORCH_ENV_RULES = (
    "make_eval_subset",
    "make_train_subset",
    "make_validation_subset",
    "record_subsets",
    "make_drift_prompts",
    "make_general_text",
    "make_heldout_text",
    "score_predictions",
    "count_adapter_parameters",
)
TORCH_FREE_RULES = tuple(sorted({*REPORT_RULES, *TORCH_ENV_RULES}))

PROBE = """
import importlib, importlib.abc, sys

attempted = []

class Tripwire(importlib.abc.MetaPathFinder):
    # Before the blocker: code that catches the blocker's ImportError (and carries on without
    # torch) still tried to import it, which costs seconds wherever torch is installed.
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {packages!r}:
            attempted.append(name)
        return None

sys.meta_path.insert(0, Tripwire())
for module in sys.argv[1].split(","):
    importlib.import_module(module)
from lora_study.core.provenance import meta_info
meta_info(device="cpu")  # what every such job writes last; it once imported torch to name the CPU
print("ATTEMPTED", ",".join(sorted(set(attempted))))
"""


def rule_script(rule: str) -> Path:
    return (REPO / "rules" / rule_directive(rule_blocks()[rule], "script")).resolve()


def test_torch_free_rules_exist() -> None:
    blocks = rule_blocks()
    assert set(TORCH_FREE_RULES) <= set(blocks)
    assert {"score_predictions", "compare_variants", "build_report", "summarise_drift"} <= set(TORCH_FREE_RULES)


def model_packages_attempted(modules: list[str], tmp_path: Path) -> str:
    """Import `modules` in a fresh interpreter with every model package blocked (it must
    succeed); the model packages any of them tried to import, after "ATTEMPTED"."""
    env = blocker_path(tmp_path)
    env["PYTHONPATH"] += os.pathsep + str(REPO / "src")
    code = PROBE.format(packages=set(MODEL_PACKAGES))
    result = subprocess.run(
        [sys.executable, "-c", code, ",".join(modules)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [attempted] = [line for line in result.stdout.splitlines() if line.startswith("ATTEMPTED")]
    return attempted.strip()


@pytest.mark.parametrize("rule", TORCH_FREE_RULES)
def test_script_imports_no_model_package(rule: str, tmp_path: Path) -> None:
    modules = [m for m in script_imports(rule_script(rule)) if m.startswith("lora_study")]
    assert modules, f"{rule}'s script imports nothing from lora_study"
    attempted = model_packages_attempted(modules, tmp_path)
    assert attempted == "ATTEMPTED", f"{rule}: {attempted}"


@pytest.mark.slow
def test_torch_free_jobs_run_without_model_packages(workflow_dir: Path, tmp_path: Path) -> None:
    """Every torch-free job of the torch environment runs for real on the tiny run's files
    with the model packages blocked (the report environment's: test_report_env.py). ROUGE
    first: the data jobs rewrite eval.jsonl, which the predictions that ROUGE reads depend on."""
    workdir = tmp_path / "work"
    shutil.copytree(workflow_dir, workdir, copy_function=os.link, symlinks=True)
    run_blocked(
        workdir, tmp_path, rules=("score_predictions",), targets=sorted(workdir.glob("results/*/*/*/*/scores.json"))
    )
    data = sorted(
        {
            *workdir.glob("results/data/*/*.json*"),
            *workdir.glob("results/data/*/parts/*.json"),
            *workdir.glob("results/adapters/*/parameter_counts.json"),
        }
    )
    rules = tuple(rule for rule in TORCH_ENV_RULES if rule not in ("score_predictions", *SWEEP_ONLY_RULES))
    run_blocked(workdir, tmp_path / "data", rules=rules, targets=data)
