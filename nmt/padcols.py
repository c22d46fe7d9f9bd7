"""Output columns padded to a multiple of 8: the vocabulary projection at full speed on the CPU.

MKL's float32 multiply slows down when the result has a column count that is not a multiple of
8, and the vocabulary size, the column count of the model's largest multiply (the output layer),
comes from the data.

So the output layer multiplies with zero rows appended to its weight (and zeros to its bias) and
the extra logits are dropped as a view, without a copy: the values are the same. The parameter
itself keeps its shape, so checkpoints and tied embeddings are unchanged. Training pads once per
batch (loss.py); translation swaps the output layers for `PaddedLinear` once, at load.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

ALIGN = 8


def padded(size: int) -> int:
    """`size` rounded up to a multiple of ALIGN."""
    return -(-size // ALIGN) * ALIGN


def pad_output(weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """weight (V, H), bias (V,) with zero rows (entries) appended up to padded(V)."""
    extra = padded(weight.size(0)) - weight.size(0)
    if not extra:
        return weight, bias
    return F.pad(weight, (0, 0, 0, extra)), None if bias is None else F.pad(bias, (0, extra))


class PaddedLinear(nn.Module):
    """A Linear layer for inference whose multiply runs on padded output columns; the result is a
    view of the first `out_features` columns. `linear` holds the padded weights, so low-precision
    decoding (quantize.py) swaps it like any other Linear."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.out_features = linear.out_features
        bias = None if linear.bias is None else linear.bias.detach()
        weight, bias = pad_output(linear.weight.detach(), bias)
        # Built on the meta device: its random initialisation is replaced at once.
        self.linear = nn.Linear(linear.in_features, weight.size(0), bias=bias is not None,
                                device="meta")
        self.linear.weight = nn.Parameter(weight, requires_grad=False)
        if bias is not None:
            self.linear.bias = nn.Parameter(bias, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)[..., : self.out_features]  # (..., V), a view


def pad_output_layers(model: nn.Module) -> nn.Module:
    """Swap each decoder's output layer (where V is not a multiple of ALIGN) for a PaddedLinear,
    in place; decoders that share one output layer share its padded form."""
    swapped: dict[int, PaddedLinear] = {}
    for decoder in model.decoders.values():
        out = decoder.out_proj
        if isinstance(out, nn.Linear) and padded(out.out_features) != out.out_features:
            decoder.out_proj = swapped.setdefault(id(out), PaddedLinear(out))
    return model
