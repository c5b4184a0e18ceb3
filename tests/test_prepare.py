"""Model preparation: the embedded GGUF becomes a normal folder with the same logits;
local folders and hub ids (from an offline cache in the hub's layout) pass through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import REPO
from lora_study.core.io import MANIFEST, read_json
from lora_study.model.loading import weights_dir
from lora_study.stages.model.prepare import (
    PreparationError,
    _write_atomically,
    embedded_gguf_path,
    load_gguf,
    prepare_model,
    probe_logits,
)


@pytest.mark.slow
def test_prepared_embedded_model_matches_the_gguf_model(workflow_dir: Path) -> None:
    folder = workflow_dir / "resources/models/smollm2-135m-instruct"
    manifest = read_json(folder / MANIFEST)
    assert manifest["checks"]["rope_theta"] == manifest["checks"]["rope_theta_gguf"] == 100000.0
    assert manifest["parameters"] == 134_515_008
    assert (folder / "model.safetensors").is_file()
    # A plain AutoModelForCausalLM load, no GGUF code, on a probe the preparation never saw.
    prepared = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prepared_tokenizer = AutoTokenizer.from_pretrained(folder)
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert prepared.config.num_hidden_layers == 30 and prepared.config.hidden_size == 576
    gguf_model, gguf_tokenizer = load_gguf(embedded_gguf_path())
    probe = "Low-rank adaptation trains two small matrices per layer. Does it forget?"
    assert prepared_tokenizer(probe).input_ids == gguf_tokenizer(probe).input_ids
    torch.testing.assert_close(
        probe_logits(prepared, prepared_tokenizer, probe),
        probe_logits(gguf_model, gguf_tokenizer, probe),
        atol=1e-4,
        rtol=0,
    )
    assert prepared_tokenizer.chat_template


def test_local_folder_is_used_in_place(tiny_model_dir: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in tiny_model_dir.iterdir())
    manifest = prepare_model(model={"source": str(tiny_model_dir)}, out_dir=tmp_path / "prepared")
    assert manifest["kind"] == "local"
    assert weights_dir(tmp_path / "prepared") == tiny_model_dir
    assert sorted(p.name for p in tiny_model_dir.iterdir()) == before  # nothing written into the user's folder


def test_local_folder_without_config_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PreparationError, match="config.json missing"):
        prepare_model(model={"source": str(tmp_path / "empty")}, out_dir=tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


def test_failed_preparation_leaves_no_folder(tmp_path: Path) -> None:
    def fail(folder: Path) -> dict:
        (folder / "model.safetensors").write_text("half")
        raise RuntimeError("killed mid-way")

    with pytest.raises(RuntimeError):
        _write_atomically(tmp_path / "model", fail)
    assert list(tmp_path.iterdir()) == []


def test_hub_id_resolves_through_the_hub_client_offline(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A hub cache laid out as huggingface_hub writes it; HF_HUB_OFFLINE makes the real
    snapshot_download call resolve `org/name@main` from it without a network."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--test-org--tiny-llama"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in tiny_model_dir.iterdir():
        if file.name != MANIFEST:
            (snapshot / file.name).symlink_to(file)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    script = (
        "import json, sys; from lora_study.stages.model.prepare import prepare_model; "
        "print(json.dumps(prepare_model(model={'source': 'test-org/tiny-llama', 'revision': 'main'}, out_dir=sys.argv[1])))"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "prepared")], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads(result.stdout.strip().splitlines()[-1])
    assert manifest["kind"] == "hub" and Path(manifest["weights"]) == snapshot
    model = AutoModelForCausalLM.from_pretrained(weights_dir(tmp_path / "prepared"))
    assert model.config.num_hidden_layers == 2

    missing = subprocess.run(
        [sys.executable, "-c", script.replace("tiny-llama", "not-cached"), str(tmp_path / "other")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert missing.returncode != 0 and "could not get 'test-org/not-cached'" in missing.stderr
