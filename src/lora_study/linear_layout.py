"""Linear weights stored column-major while a CPU decodes a batch.

nn.Linear multiplies its input by the weight transposed. A decoding step multiplies only a
few rows (one per prompt still generating), and at that shape the CPU's float32 matrix
product runs faster when the transposed weight is the contiguous one: the product gets a
plain, not a transposed, operand. Same values, another memory order, so nothing about the
model changes but the speed (bench/generation_speed.py measures it, with and without).
For the prompts' prefill, hundreds of rows at a time, the order makes no difference. Other
devices' matrix libraries handle both orders alike, so it is done on the CPU only.

The output embedding stays as it is: it is usually tied to the input embedding, whose row
lookups want the rows contiguous.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from transformers import PreTrainedModel


def decoding_linears(model: PreTrainedModel) -> list[nn.Parameter]:
    """The float32 weights of the model's plain nn.Linear layers (a quantised layer is a
    subclass, with its own kernel, and is left alone), without the output embedding."""
    output = model.get_output_embeddings()
    skip = {id(output.weight)} if output is not None else set()
    return [
        module.weight
        for module in model.modules()
        if type(module) is nn.Linear and module.weight.dtype == torch.float32 and id(module.weight) not in skip
    ]


@contextmanager
def column_major_linears(model: PreTrainedModel) -> Iterator[None]:
    """Within the block, every decoding_linears weight is stored column-major; afterwards it is
    contiguous again (safetensors, and code that views the weight, expect that)."""
    weights = decoding_linears(model) if model.device.type == "cpu" else []
    with torch.no_grad():
        for weight in weights:
            weight.data = weight.data.t().contiguous().t()
    try:
        yield
    finally:
        with torch.no_grad():
            for weight in weights:
                weight.data = weight.data.contiguous()
