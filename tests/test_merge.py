"""Merge and export: merged logits equal unmerged ones, and the export is a plain model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from conftest import REPO, record_training
from lora_study.core.checksums import ChecksumError, verify_merged
from lora_study.core.config import load_config
from lora_study.core.data import Example
from lora_study.core.grid import VariantSpec, target_modules
from lora_study.core.io import write_jsonl
from lora_study.core.results import read_result
from lora_study.model.loading import dequantise_linear4bit, load_base_for, load_tokenizer
from lora_study.model.prompts import PromptBuilder
from lora_study.stages.serving.merge import MergeError, max_logit_difference, merge_variant, model_logits

KINDS = ["lora", "rslora", "dora", "qlora"]


def spec_of(kind: str) -> VariantSpec:
    return VariantSpec(
        kind=kind, train_size=4, seed=1, learning_rate=1e-3, rank=4, alpha=8.0, dropout=0.0, targets="attn"
    )


def random_adapter(*, spec: VariantSpec, model_dir: Path, out: Path, seed: int = 0) -> Path:
    """An adapter with random, non-zero A and B (a freshly initialised one has B = 0 and would
    merge to the base itself, which proves nothing), saved with its train.json."""
    torch.manual_seed(seed)
    base = load_base_for(spec=spec, model_dir=model_dir, device="cpu", dtype=torch.float32)
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        target_modules=target_modules(spec.targets),
        use_dora=spec.kind == "dora",
        use_rslora=spec.kind == "rslora",
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)  # large updates, so a wrong merge shows
    model.save_pretrained(out)
    record_training(out)
    return out


def merge_settings(config: dict) -> dict:
    """The blocks rule merge_adapter passes, from a whole config."""
    return {**{key: config[key] for key in ("model", "prompt")}, "merge": config["serving"]["merge"]}


def merge_into(folder: Path, *, spec: VariantSpec, adapter: Path, model_dir: Path, eval_path: Path, config: dict):
    """merge_variant writing `folder`/model and `folder`/merge.json, as rule merge_adapter lays them out."""
    return merge_variant(
        spec=spec,
        model_dir=model_dir,
        adapter=adapter,
        eval_path=eval_path,
        config=config,
        out_dir=folder / "model",
        merge_json=folder / "merge.json",
    )


@pytest.fixture()
def merge_config() -> dict:
    config = load_config(REPO / "config.yaml", REPO / "configs" / "tiny.yaml")
    return {**{key: config[key] for key in ("model", "prompt")}, "merge": config["serving"]["merge"]}


@pytest.fixture()
def eval_file(tmp_path: Path) -> Path:
    rows = [
        Example(id=str(i), input=f"Abstract {i} on adapters." + " Low rank." * (3 * i), reference="x") for i in range(5)
    ]
    write_jsonl(tmp_path / "eval.jsonl", [vars(row) for row in rows])
    return tmp_path / "eval.jsonl"


@pytest.mark.parametrize("kind", KINDS)
def test_merged_logits_equal_unmerged(
    kind: str, tiny_model_dir: Path, tmp_path: Path, merge_config: dict, eval_file: Path
) -> None:
    spec = spec_of(kind)
    adapter = random_adapter(spec=spec, model_dir=tiny_model_dir, out=tmp_path / "adapter" / "adapter")
    out = tmp_path / "merged" / "model"
    result = merge_into(
        tmp_path / "merged",
        spec=spec,
        adapter=adapter,
        model_dir=tiny_model_dir,
        eval_path=eval_file,
        config=merge_config,
    )
    metrics = result["metrics"]
    assert metrics["max_abs_logit_difference"] <= metrics["tolerance"] == 1e-2
    # The check means something: the adapter moves the logits far more than the tolerance.
    assert metrics["adapter_max_abs_logit_effect"] > 10 * metrics["tolerance"]
    assert metrics["tolerance_below_adapter_effect"] is True
    assert metrics["top_token_agreement"] == 1.0
    assert metrics["dequantised_layers"] == (14 if kind == "qlora" else 0)  # 7 Linear layers x 2 blocks
    verify_merged(out)

    # The export, loaded by plain transformers, gives the unmerged adapter's logits on the
    # base it was merged into (QLoRA: the de-quantised 4-bit base, not the original weights).
    tokenizer = load_tokenizer(tiny_model_dir)
    builder = PromptBuilder.from_config(tokenizer=tokenizer, prompt=merge_config["prompt"])
    prompts = [builder.build(f"Some text {i} " * (i + 1)) for i in range(3)]
    base = load_base_for(spec=spec, model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    if kind == "qlora":
        dequantise_linear4bit(base, dtype=torch.float32)
    unmerged = PeftModel.from_pretrained(base, adapter).eval()
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    compare = {"prompts": prompts, "pad_id": 0, "batch_size": 2, "device": "cpu"}
    check = max_logit_difference(first=model_logits(unmerged), second=model_logits(exported), **compare)
    assert check["max_abs_logit_difference"] < 1e-3
    # ... and the adapter really changed the model it was merged into (a no-op merge would
    # pass the checks above); for QLoRA that is the de-quantised base, whose NF4 rounding
    # alone moves the logits away from the original weights'.
    base = load_base_for(spec=spec, model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    if kind == "qlora":
        dequantise_linear4bit(base, dtype=torch.float32)
    moved = max_logit_difference(first=model_logits(base), second=model_logits(exported), **compare)
    assert moved["max_abs_logit_difference"] > 0.1


def test_qlora_merges_into_the_dequantised_base_not_the_original(tiny_model_dir: Path) -> None:
    spec = spec_of("qlora")
    quantised = load_base_for(spec=spec, model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    assert dequantise_linear4bit(quantised, dtype=torch.float32) == 14
    assert not hasattr(quantised.config, "quantization_config")
    original = load_base_for(spec=spec_of("lora"), model_dir=tiny_model_dir, device="cpu", dtype=torch.float32)
    q = quantised.model.layers[0].self_attn.q_proj.weight.detach()
    o = original.model.layers[0].self_attn.q_proj.weight.detach()
    assert type(quantised.model.layers[0].self_attn.q_proj) is torch.nn.Linear
    # NF4 rounding: close to the original weights but not equal to them.
    assert 0 < float((q - o).abs().max()) < 0.5 * float(o.abs().max().detach())


@pytest.mark.parametrize("kind", ["lora", "qlora"])
def test_merged_folder_loads_without_peft(
    kind: str, tiny_model_dir: Path, tmp_path: Path, merge_config: dict, eval_file: Path
) -> None:
    spec = spec_of(kind)
    adapter = random_adapter(spec=spec, model_dir=tiny_model_dir, out=tmp_path / "a" / "adapter")
    out = tmp_path / "m" / "model"
    merge_into(
        tmp_path / "m",
        spec=spec,
        adapter=adapter,
        model_dir=tiny_model_dir,
        eval_path=eval_file,
        config=merge_config,
    )
    script = textwrap.dedent(
        f"""
        import importlib.abc, importlib.machinery, sys
        # transformers asks whether peft is installed (find_spec) at import: it may look,
        # but importing it, or this project, or bitsandbytes fails.
        class Refuse(importlib.abc.Loader):
            def create_module(self, spec):
                raise ImportError(spec.name + " is blocked")
            def exec_module(self, module):
                pass
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("peft", "lora_study", "bitsandbytes"):
                    return importlib.machinery.ModuleSpec(name, Refuse())
        sys.meta_path.insert(0, Block())
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(out)!r})
        tokenizer = AutoTokenizer.from_pretrained({str(out)!r})
        assert getattr(model.config, "quantization_config", None) is None
        assert not any(name.split(".")[0] in ("peft", "bitsandbytes") for name in sys.modules)
        print(type(model).__name__, len(tokenizer))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("LlamaForCausalLM ")
    # A QLoRA export is a plain full-precision model: nothing of the 4-bit load is left.
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"


def test_a_merge_outside_the_tolerance_fails_and_exports_nothing(
    tiny_model_dir: Path, tmp_path: Path, merge_config: dict, eval_file: Path
) -> None:
    spec = spec_of("lora")
    adapter = random_adapter(spec=spec, model_dir=tiny_model_dir, out=tmp_path / "a" / "adapter")
    merge_config["merge"] = {"tolerance": {**merge_config["merge"]["tolerance"], "float32": 0.0}}
    out = tmp_path / "m" / "model"
    with pytest.raises(MergeError, match=r"above the tolerance 0 for float32 \(merge.tolerance.float32"):
        merge_into(
            tmp_path / "m",
            spec=spec,
            adapter=adapter,
            model_dir=tiny_model_dir,
            eval_path=eval_file,
            config=merge_config,
        )
    assert not out.exists() and not (tmp_path / "m" / "merge.json").exists()


def test_a_tolerance_the_adapter_itself_does_not_reach_is_flagged(
    tiny_model_dir: Path, tmp_path: Path, merge_config: dict, eval_file: Path
) -> None:
    """A check that cannot fail: before, a tolerance of 1e9 was recorded as a plain pass."""
    spec = spec_of("lora")
    adapter = random_adapter(spec=spec, model_dir=tiny_model_dir, out=tmp_path / "a" / "adapter")
    merge_config["merge"] = {"tolerance": {**merge_config["merge"]["tolerance"], "float32": 1e9}}
    args = {"spec": spec, "adapter": adapter, "model_dir": tiny_model_dir, "eval_path": eval_file}
    metrics = merge_into(tmp_path / "m", config=merge_config, **args)["metrics"]
    assert metrics["tolerance"] >= metrics["adapter_max_abs_logit_effect"] > 0
    assert read_result(tmp_path / "m" / "merge.json")["metrics"]["tolerance_below_adapter_effect"] is False


def test_a_changed_merged_file_is_refused(tiny_model_dir: Path, tmp_path: Path, merge_config: dict, eval_file: Path):
    spec = spec_of("lora")
    adapter = random_adapter(spec=spec, model_dir=tiny_model_dir, out=tmp_path / "a" / "adapter")
    out = tmp_path / "m" / "model"
    merge_into(
        tmp_path / "m",
        spec=spec,
        adapter=adapter,
        model_dir=tiny_model_dir,
        eval_path=eval_file,
        config=merge_config,
    )
    assert read_result(tmp_path / "m" / "merge.json")["metrics"]["merged_bytes"] > 0
    (out / "config.json").write_text((out / "config.json").read_text().replace("silu", "gelu"))
    with pytest.raises(ChecksumError, match=r"config.json does not match the sha256 recorded in .*merge.json"):
        verify_merged(out)
