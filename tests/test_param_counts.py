"""LoRA parameter counts from safetensors headers equal PEFT's own count, without torch."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from conftest import write_manifest
from lora_study.stages.adapters.param_counts import parameter_table, parameter_table_peft, safetensors_shapes

PRESETS = ["qv", "attn", "all-linear", "k_proj+down_proj"]
RANKS = [2, 8]


def rows(table: dict) -> dict:
    return {(row["targets"], row["rank"]): row for row in table["metrics"]["rows"]}


def tiny_llama(folder: Path, tokenizer_dir: Path, *, tied: bool) -> Path:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(AutoTokenizer.from_pretrained(tokenizer_dir)),
        hidden_size=64,
        intermediate_size=96,  # not a multiple of hidden: in and out differ on the MLP
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
    )
    config.architectures = ["LlamaForCausalLM"]
    LlamaForCausalLM(config).save_pretrained(folder)
    write_manifest(folder)
    return folder


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_counts_equal_peft(tied: bool, tokenizer_dir: Path, tmp_path: Path) -> None:
    folder = tiny_llama(tmp_path, tokenizer_dir, tied=tied)
    ours = rows(parameter_table(model_dir=folder, ranks=RANKS, presets=PRESETS))
    peft = rows(parameter_table_peft(model_dir=folder, ranks=RANKS, presets=PRESETS))
    assert ours.keys() == peft.keys()
    for key, row in ours.items():
        assert row["trainable_parameters"] == peft[key]["trainable_parameters"] > 0, key
        assert row["total_parameters"] == peft[key]["total_parameters"], key
    # The tied head is one tensor: the untied model has vocab x hidden parameters more.
    vocab_hidden = LlamaConfig.from_pretrained(folder).vocab_size * 64
    assert (
        ours[("qv", 2)]["total_parameters"] - ours[("qv", 2)]["trainable_parameters"]
        == sum(p.numel() for p in LlamaForCausalLM.from_pretrained(folder).parameters())
        == (0 if tied else vocab_hidden)
        + sum(p.numel() for n, p in LlamaForCausalLM.from_pretrained(folder).named_parameters() if "lm_head" not in n)
    )


def test_shapes_come_from_the_header_alone(tmp_path: Path) -> None:
    """A file that holds only a header (no tensor data) still gives every shape."""
    header = {"__metadata__": {"format": "pt"}, "a.weight": {"dtype": "F32", "shape": [3, 5], "data_offsets": [0, 60]}}
    raw = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert safetensors_shapes(tmp_path / "model.safetensors") == {"a.weight": [3, 5]}


def write_header_only_model(folder: Path, config: LlamaConfig) -> None:
    """SmolLM2-135M's tensor shapes as a header-only safetensors file (no weights needed)."""
    h, kv, inter = config.hidden_size, config.num_key_value_heads * (h_head := config.hidden_size // 9), 1536
    assert h_head == 64
    shapes = {"model.embed_tokens.weight": [config.vocab_size, h], "model.norm.weight": [h]}
    for layer in range(config.num_hidden_layers):
        prefix = f"model.layers.{layer}"
        shapes |= {
            f"{prefix}.self_attn.q_proj.weight": [h, h],
            f"{prefix}.self_attn.k_proj.weight": [kv, h],
            f"{prefix}.self_attn.v_proj.weight": [kv, h],
            f"{prefix}.self_attn.o_proj.weight": [h, h],
            f"{prefix}.mlp.gate_proj.weight": [inter, h],
            f"{prefix}.mlp.up_proj.weight": [inter, h],
            f"{prefix}.mlp.down_proj.weight": [h, inter],
            f"{prefix}.input_layernorm.weight": [h],
            f"{prefix}.post_attention_layernorm.weight": [h],
        }
    header = {name: {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]} for name, shape in shapes.items()}
    raw = json.dumps(header).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw)
    config.save_pretrained(folder)


def test_smollm2_counts_match_known_values(tmp_path: Path) -> None:
    """SmolLM2-135M: r=8 on q,v is 460,800 parameters (FACTS), 134,515,008 in the base."""
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        tie_word_embeddings=True,
    )
    config.architectures = ["LlamaForCausalLM"]
    write_header_only_model(tmp_path, config)
    write_manifest(tmp_path)
    table = parameter_table(model_dir=tmp_path, ranks=[4, 8], presets=["qv", "all-linear"])
    counts = {key: row["trainable_parameters"] for key, row in rows(table).items()}
    assert counts[("qv", 8)] == 460_800 == 30 * 8 * ((576 + 576) + (576 + 192))
    assert counts[("qv", 4)] * 2 == counts[("qv", 8)]
    per_layer_all = (576 + 576) + 2 * (576 + 192) + (576 + 576) + 2 * (576 + 1536) + (1536 + 576)
    assert counts[("all-linear", 8)] == 30 * 8 * per_layer_all
    assert rows(table)[("qv", 8)]["total_parameters"] == 134_515_008 + 460_800
    assert table["run"]["architecture"] == "LlamaForCausalLM"
