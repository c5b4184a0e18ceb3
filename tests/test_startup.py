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
from test_report_env import BLOCKER, MODEL_PACKAGES, REPORT_RULES

from conftest import REPO

# The rules whose jobs must start without the model stack: the report environment's rules
# (compare_variants, summarise_drift, build_report) and those of the torch environment that
# need no model (data subsets and texts read the packaged data files; ROUGE; shape counts).
TORCH_ENV_RULES = (
    "make_eval_subset",
    "make_train_subset",
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
from lora_study.provenance import meta_info
meta_info(device="cpu")  # what every such job writes last; it once imported torch to name the CPU
print("ATTEMPTED", ",".join(sorted(set(attempted))))
"""


def rule_script(rule: str) -> Path:
    return (REPO / "rules" / rule_directive(rule_blocks()[rule], "script")).resolve()


def blocker_path(tmp_path: Path) -> dict[str, str]:
    """The environment of a Python whose every process loads the model-package blocker."""
    folder = tmp_path / "blocker"
    folder.mkdir(parents=True)
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


def test_torch_free_rules_exist() -> None:
    blocks = rule_blocks()
    assert set(TORCH_FREE_RULES) <= set(blocks)
    assert {"score_predictions", "compare_variants", "build_report", "summarise_drift"} <= set(TORCH_FREE_RULES)


@pytest.mark.parametrize("rule", TORCH_FREE_RULES)
def test_script_imports_no_model_package(rule: str, tmp_path: Path) -> None:
    modules = [m for m in script_imports(rule_script(rule)) if m.startswith("lora_study")]
    assert modules, f"{rule}'s script imports nothing from lora_study"
    env = blocker_path(tmp_path)
    env["PYTHONPATH"] += os.pathsep + str(REPO / "src")
    code = PROBE.format(packages=set(MODEL_PACKAGES))
    result = subprocess.run(
        [sys.executable, "-c", code, ",".join(modules)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [attempted] = [line for line in result.stdout.splitlines() if line.startswith("ATTEMPTED")]
    assert attempted.strip() == "ATTEMPTED", f"{rule}: {attempted}"


def run_blocked(workdir: Path, tmp_path: Path, *, rules: tuple[str, ...], targets: list[Path]) -> str:
    """Run `rules` for real on `targets` (their outputs) with the model packages blocked.
    Explicit targets, not `--until` (snakemake 9 stops with "BUG: Out of jobs ready" when a
    forced job updates another one's input under --until): only those files' jobs are planned."""
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
            *rules,
            "--",
            *(str(target.relative_to(workdir)) for target in targets),
        ],
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
    rules = tuple(rule for rule in TORCH_ENV_RULES if rule != "score_predictions")
    run_blocked(workdir, tmp_path / "data", rules=rules, targets=data)
