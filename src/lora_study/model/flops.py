"""Floating-point operations a training step executes, to compare against the device's peak.

Counted as this project's training loop executes them (model FLOPs, as in MFU figures),
per non-padding token of each sequence:
- every linear layer of the decoder: 2 x d_in x d_out forward (LoRA's A and B included);
- attention scores and the weighted sum: 2 x 2 x seq x (heads x head_dim) per layer
  forward (the whole square, as the kernels compute it);
- the output head: 2 x hidden x vocab, only at target positions (the loop skips it elsewhere);
- backward, only what autograd runs: the gradient with respect to a linear layer's input
  only where that input needs one (behind a trainable parameter: in a LoRA model the
  first layer's q, k, v projections and adapter A matrices get none), the gradient of each
  trainable weight, and of the attention's queries, keys, values and scores only where
  they need one. Which of these run is read off the model itself (`gradient_flow`), so the
  count follows the targets, the variant and a trainable embedding without a table of cases.
Checked against `torch.utils.flop_counter.FlopCounterMode` (eager attention, so that the
counter sees the attention products) in tests/test_flops.py.
Element-wise work (norms, activations, softmax, the optimizer, DoRA's weight norm) is not
counted: it is a few percent of the total and not what a matrix-product peak measures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

_ATTENTION_INPUTS = ("q_proj", "k_proj", "v_proj")  # Llama-style names (SmolLM2, TinyLlama, Qwen, Mistral)


@dataclass(frozen=True)
class LinearCosts:
    """Per-token FLOPs of one training step's matrix products."""

    forward: float  # every linear layer of the decoder, forward
    input_grad: float  # linear layers whose input needs a gradient, backward
    weight_grad: float  # trainable linear weights, backward
    attention_forward: float  # per token x sequence length, all layers
    attention_backward: float  # per token x sequence length, all layers
    head: float  # per target token, forward (and again for its input gradient)
    head_trainable: bool


@dataclass(frozen=True)
class GradientFlow:
    """What autograd computes backward, read from one probing forward pass."""

    input_needs_grad: dict[str, bool]  # linear layer name -> its input requires a gradient
    attention: dict[str, tuple[bool, bool, bool]]  # attention block -> (queries, keys, values) require one


def gradient_flow(model: Any) -> GradientFlow:
    """Run two tokens through the model (eval mode: dropout draws no random numbers, so the
    training's random stream is untouched) and record which tensors require gradients."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inputs: dict[str, bool] = {}
    outputs: dict[str, bool] = {}
    handles = []
    for name, module in base.get_decoder().named_modules():
        if isinstance(module, torch.nn.Linear):
            handles.append(
                module.register_forward_hook(
                    lambda m, args, out, name=name: inputs.__setitem__(name, args[0].requires_grad)
                )
            )
        if name.rsplit(".", 1)[-1] in _ATTENTION_INPUTS:
            handles.append(
                module.register_forward_hook(
                    lambda m, args, out, name=name: outputs.__setitem__(name, out.requires_grad)
                )
            )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.enable_grad():
            base.get_decoder()(input_ids=torch.zeros((1, 2), dtype=torch.long, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    blocks = {name.rsplit(".", 1)[0] for name in outputs}
    attention = {
        block: tuple(outputs.get(f"{block}.{projection}", True) for projection in _ATTENTION_INPUTS) for block in blocks
    }
    return GradientFlow(input_needs_grad=inputs, attention=attention)  # type: ignore[arg-type]


def linear_costs(model: Any) -> LinearCosts:
    """Per-token costs of a (PEFT-wrapped or plain) causal LM's training step."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    flow = gradient_flow(model)
    forward = input_grad = weight_grad = 0.0
    for name, module in base.get_decoder().named_modules():
        if isinstance(module, torch.nn.Linear):
            cost = 2.0 * module.in_features * module.out_features
            forward += cost
            input_grad += cost if flow.input_needs_grad.get(name, True) else 0.0
            weight_grad += cost if module.weight.requires_grad else 0.0
    config = base.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    product = 2.0 * config.num_attention_heads * head_dim  # one n x n x head_dim product, all heads, per token x n
    # Backward: dV = P^T dO if values need a gradient; dP = dO V^T if queries or keys do;
    # dQ = dS K and dK = dS^T Q each where needed. A block the probe did not recognise
    # (other module names) counts all four.
    flags = list(flow.attention.values()) + [(True, True, True)] * max(
        0, config.num_hidden_layers - len(flow.attention)
    )
    backward = sum(product * (q + k + v + (q or k)) for q, k, v in flags)
    head = base.get_output_embeddings()
    return LinearCosts(
        forward=forward,
        input_grad=input_grad,
        weight_grad=weight_grad,
        attention_forward=2.0 * product * config.num_hidden_layers,
        attention_backward=backward,
        head=2.0 * head.in_features * head.out_features,
        head_trainable=head.weight.requires_grad,
    )


def step_flops(*, costs: LinearCosts, sequence_lengths: Sequence[int], target_tokens: int) -> float:
    """FLOPs of forward + backward over sequences of these (unpadded) lengths."""
    tokens = sum(sequence_lengths)
    square = sum(n * n for n in sequence_lengths)
    linear = (costs.forward + costs.input_grad + costs.weight_grad) * tokens
    attention = (costs.attention_forward + costs.attention_backward) * square
    # The head's input always needs a gradient (something below it trains); its weight only in FFT.
    head = costs.head * target_tokens * (3.0 if costs.head_trainable else 2.0)
    return linear + attention + head


def matmul_peak_gflops(
    *, device: str = "cpu", size: int = 2048, warmup: int = 3, repeats: int = 10, dtype: torch.dtype = torch.float32
) -> float:
    """Median matrix-product throughput of `device` in `dtype`, in GFLOP/s."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        torch.mm(a, b)
    timings = []
    for _ in range(repeats):
        synchronize()
        started = time.perf_counter()
        torch.mm(a, b)
        synchronize()
        timings.append(time.perf_counter() - started)
    timings.sort()
    return 2.0 * size**3 / timings[len(timings) // 2] / 1e9
