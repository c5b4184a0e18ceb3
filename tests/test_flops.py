"""flops.py against PyTorch's own FLOP counter, on what the training loop runs: forward and
backward through `target_loss_sum`, for LoRA and full fine-tuning."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

from lora_study.core.grid import VariantSpec
from lora_study.model.adapters import attach_adapter
from lora_study.model.flops import gradient_flow, linear_costs, step_flops
from lora_study.model.training import IGNORE, TrainItem, collate, target_loss_sum


def tiny_llama(*, layers: int = 4) -> LlamaForCausalLM:
    """A random Llama with SmolLM2's proportions scaled down (grouped-query attention, tied
    head). Eager attention: CPU SDPA kernels are invisible to FlopCounterMode, plain matrix
    products are not, and both do the same products."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=3000,
        hidden_size=128,
        intermediate_size=320,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    config._attn_implementation = "eager"
    return LlamaForCausalLM(config)


def batch_items(lengths: list[int], targets: list[int]) -> list[TrainItem]:
    generator = torch.Generator().manual_seed(0)
    items = []
    for n, t in zip(lengths, targets, strict=True):
        ids = torch.randint(3, 3000, (n,), generator=generator).tolist()
        items.append(TrainItem(input_ids=ids, labels=[IGNORE] * (n - t) + ids[n - t :]))
    return items


def counted(model, items: list[TrainItem]) -> int:
    batch = collate(items, pad_id=0, device="cpu")
    with FlopCounterMode(display=False) as counter:
        target_loss_sum(model, batch).backward()
    return counter.get_total_flops()


def lora(targets: str, kind: str = "lora") -> object:
    spec = VariantSpec(
        kind=kind, train_size=1, seed=1, learning_rate=1e-3, rank=8, alpha=16.0, dropout=0.05, targets=targets
    )
    return attach_adapter(model=tiny_llama(), spec=spec).train()


@pytest.mark.parametrize(
    "name, build",
    [
        ("lora-qv", lambda: lora("qv")),
        ("lora-all-linear", lambda: lora("all-linear")),
        ("lora-mlp-only", lambda: lora("up_proj+down_proj")),
        ("fft", lambda: tiny_llama().train()),
        ("fft-2-layers", lambda: tiny_llama(layers=2).train()),
    ],
)
def test_step_flops_match_torch_flop_counter(name: str, build) -> None:
    model = build()
    items = batch_items([48, 48, 48], [10, 20, 5])  # equal lengths: no padding, all positions are real
    ours = step_flops(costs=linear_costs(model), sequence_lengths=[48, 48, 48], target_tokens=35)
    reference = counted(model, items)
    assert ours == pytest.approx(reference, rel=0.02), name


def test_padded_positions_are_executed_but_not_counted() -> None:
    """The loop counts real tokens only: the padded batch costs the counter what full-width
    sequences cost, and step_flops gives that when told the padded widths."""
    model = lora("qv")
    items = batch_items([40, 25], [10, 8])
    costs = linear_costs(model)
    reference = counted(model, items)
    assert step_flops(costs=costs, sequence_lengths=[40, 40], target_tokens=18) == pytest.approx(reference, rel=0.02)
    assert step_flops(costs=costs, sequence_lengths=[40, 25], target_tokens=18) < 0.9 * reference


def test_lora_gets_no_input_gradient_below_its_first_adapter() -> None:
    """The former count charged an input gradient to every layer; in a LoRA model nothing
    below layer 0's adapters trains, so their inputs need none (and full fine-tuning's do)."""
    flow = gradient_flow(lora("qv"))
    assert not flow.input_needs_grad["layers.0.self_attn.k_proj"]
    assert not flow.input_needs_grad["layers.0.self_attn.q_proj.lora_A.default"]
    assert flow.input_needs_grad["layers.0.self_attn.o_proj"] and flow.input_needs_grad["layers.1.self_attn.k_proj"]
    assert flow.attention["layers.0.self_attn"] == (True, False, True)
    full = gradient_flow(tiny_llama())
    assert all(full.input_needs_grad.values())


def test_the_probe_leaves_mode_and_random_stream_alone() -> None:
    model = lora("qv")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    linear_costs(model)
    assert model.training and torch.equal(torch.rand(3), expected)
