"""Floating-point operations a training step executes, to compare against the CPU's peak.

Counted as executed by this project's training loop (model FLOPs, as in MFU figures),
per non-padding token of each sequence:
- every linear layer: 2 x d_in x d_out forward;
- attention scores and the weighted sum: 2 x 2 x seq x (heads x head_dim) per layer
  forward (the whole causal square is computed on CPU kernels);
- the output head: 2 x hidden x vocab, only at target positions (the loop skips it elsewhere);
- backward: the gradient with respect to the input of every layer that lies behind a
  trainable parameter (equal to its forward cost), plus the gradient of each trainable
  weight (again equal to its forward cost); frozen weights get no weight gradient.
Element-wise work (norms, activations, softmax, the optimizer) is not counted: it is a few
percent of the total and not what a matrix-product peak measures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class LinearCosts:
    """Forward FLOPs per token, split by whether the weights train."""

    frozen: float
    trainable: float
    attention_per_seq_token: float  # multiply by the sequence length
    head: float  # per target token
    head_trainable: bool


def linear_costs(model: Any) -> LinearCosts:
    """Per-token forward costs of a (PEFT-wrapped or plain) causal LM's layers."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    frozen = trainable = 0.0
    for module in base.get_decoder().modules():
        if isinstance(module, torch.nn.Linear):
            cost = 2.0 * module.in_features * module.out_features
            if module.weight.requires_grad:
                trainable += cost
            else:
                frozen += cost
    config = base.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention = 4.0 * config.num_hidden_layers * config.num_attention_heads * head_dim
    return LinearCosts(
        frozen=frozen,
        trainable=trainable,
        attention_per_seq_token=attention,
        head=2.0 * head.in_features * head.out_features,
        head_trainable=head.weight.requires_grad,
    )


def step_flops(*, costs: LinearCosts, sequence_lengths: Sequence[int], target_tokens: int) -> float:
    """FLOPs of forward + backward over sequences of these (unpadded) lengths."""
    tokens = sum(sequence_lengths)
    attention = costs.attention_per_seq_token * sum(n * n for n in sequence_lengths)
    forward = (costs.frozen + costs.trainable) * tokens + attention + costs.head * target_tokens
    # Input gradients flow back through every layer; weight gradients only for trainable ones.
    backward_inputs = (costs.frozen + costs.trainable) * tokens + attention + costs.head * target_tokens
    backward_weights = costs.trainable * tokens + (costs.head * target_tokens if costs.head_trainable else 0.0)
    attention_backward_extra = attention  # scores and values both need gradients
    return forward + backward_inputs + backward_weights + attention_backward_extra


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
