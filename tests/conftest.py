"""Shared fixtures: the real SmolLM2 tokenizer and a tiny random Llama in a prepared folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from lora_study.checksums import MANIFEST_KEY, TRAIN_JSON, TRAIN_KEY, folder_hashes
from lora_study.io import MANIFEST, write_json
from lora_study.prepare import embedded_gguf_path
from lora_study.results import write_result

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


def run_snakemake(
    workdir: Path, *args: str, configfile: Path = REPO / "configs" / "tiny.yaml", timeout: int = 900
) -> str:
    """Run the real workflow (this repository's Snakefile) in `workdir`; return its output."""
    command = [
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
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{output[-6000:]}")
    return output


@pytest.fixture(scope="session")
def workflow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole workflow, run once on the tiny config with the real SmolLM2 model."""
    workdir = tmp_path_factory.mktemp("workflow")
    # 12 min on a 2-core machine with a default run beside it (commit 334b309); the limit leaves room.
    run_snakemake(workdir, "--cores", "2", "report.html", timeout=2400)
    return workdir
