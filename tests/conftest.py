"""Shared fixtures: the real SmolLM2 tokenizer and a tiny random Llama in a prepared folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from lora_study.core.checksums import MANIFEST_KEY, TRAIN_JSON, TRAIN_KEY, folder_hashes
from lora_study.core.config import load_config, overlay
from lora_study.core.io import MANIFEST, write_json
from lora_study.core.results import write_result
from lora_study.stages.model.prepare import embedded_gguf_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2's real tokenizer (with its chat template), read from the embedded GGUF once."""
    gguf = embedded_gguf_path()
    folder = tmp_path_factory.mktemp("tokenizer")
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    return folder


@pytest.fixture()
def tokenizer(tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared-model folder (manifest + weights + tokenizer) holding a 2-layer random Llama
    with SmolLM2's vocabulary: the real code paths at a fraction of the cost."""
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,  # multiples of 64: bitsandbytes 4-bit blocks (its avx512-bf16 CPU path needs whole blocks)
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-model")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_manifest(folder)
    return folder


def write_manifest(folder: Path) -> None:
    """A prepared-model manifest for a test folder holding its own weights, with their hashes."""
    write_json(
        folder / MANIFEST, {"source": "test", "kind": "local", "weights": ".", MANIFEST_KEY: folder_hashes(folder)}
    )


def record_training(weights: Path) -> Path:
    """The train.json a training job writes beside `weights`, reduced to the hashes that
    loaders check (checksums.verify_trained): for adapters that tests save themselves."""
    record = weights.parent / TRAIN_JSON
    meta = {"created_at": "test", "code_version": "test"}
    write_result(record, run={}, metrics={TRAIN_KEY: folder_hashes(weights)}, meta=meta)
    return record


def snakemake_command(workdir: Path, *args: str, configfile: Path = REPO / "configs" / "tiny.yaml") -> list[str]:
    """The command line running the real workflow (this repository's Snakefile) in `workdir`
    with `configfile`, then `args` (options first: --configfile takes several values)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]


def run_snakemake(
    workdir: Path, *args: str, configfile: Path = REPO / "configs" / "tiny.yaml", timeout: int = 900
) -> str:
    """Run the real workflow (this repository's Snakefile) in `workdir`; return its output."""
    command = snakemake_command(workdir, *args, configfile=configfile)
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{output[-6000:]}")
    return output


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> count from the dry run's 'Job stats' table."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.MULTILINE)}


def data_block() -> dict[str, Any]:
    """config.yaml's `data:` block as the data module receives it (schema defaults filled)."""
    return load_config(REPO / "config.yaml")["data"]


def tiny_config() -> dict[str, Any]:
    """config.yaml with the tiny overlay, as one full config to edit and write out."""
    return overlay(
        yaml.safe_load((REPO / "config.yaml").read_text()), yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    )


def mark_plan_done(workdir: Path, configfile: Path, target: str = "report.html") -> None:
    """Make `workdir` look as if the workflow had built `target`, in seconds and without
    running a job: an empty file (or folder) for every output of the plan, then Snakemake's
    `--touch --forceall` records each job as run, with its params, in the plan's order.
    Dry runs after a config change then show exactly what that change reruns."""
    plan = run_snakemake(workdir, "-n", target, configfile=configfile)
    for line in re.findall(r"^\s+output: (.*)$", plan, flags=re.MULTILINE):
        for name in line.split(", "):
            path = workdir / name
            # The workflow's folder outputs (prepared model, adapter/, model/) are the only
            # outputs without a file extension.
            if "." in path.name:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            else:
                path.mkdir(parents=True, exist_ok=True)
    run_snakemake(workdir, "--cores", "1", "--touch", "--forceall", target, configfile=configfile)
    assert planned_jobs(run_snakemake(workdir, "-n", target, configfile=configfile)) == {}, "not marked done"


@pytest.fixture(scope="session")
def workflow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole workflow, run once on the tiny config with the real SmolLM2 model."""
    workdir = tmp_path_factory.mktemp("workflow")
    # 12 min on a 2-core machine with a default run beside it (commit 334b309); the limit leaves room.
    run_snakemake(workdir, "--cores", "2", "report.html", timeout=2400)
    return workdir


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`datasets` reads strictly offline, with a cache of the test's own: hub loaders are
    tested on local folders in the hub's layout, never on a download."""
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # `datasets` reads these at import time, which may already have happened.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
