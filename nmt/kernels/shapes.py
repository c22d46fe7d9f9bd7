"""Matrix shapes padded to those the CPU's multiply libraries run fast; the values are unchanged.

Rows (bf16 on the CPU): oneDNN, which runs PyTorch's bf16 multiplies there, compiles a kernel for
every new shape, several times the cost of the multiply, and keeps each in a cache that only
grows. The rows of a multiply come from the data (target tokens in a batch, live hypotheses in a
search), so they are padded with zero rows up to the next multiple of 64 (256 above 512 rows): a
few dozen shapes in all. float32 multiplies (MKL) compile nothing and keep their rows.

Columns (the output layer): MKL's float32 multiply slows down when the result's column count is
not a multiple of 8, and the vocabulary size comes from the data. The output layer multiplies with
zero rows appended to its weight (zeros to its bias) and the extra logits are dropped as a view.
The parameter keeps its shape, so checkpoints and tied embeddings are unchanged. Training pads
once per batch (kernels/loss.py); translation swaps the output layers for `PaddedLinear` at load.

A batch of one is multiplied as a batch of two (`bmm`), so that a sentence's attention context
does not depend on how many sentences share its batch.

Plain twin: the bare multiply. Tests: tests/test_shapes.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt import kernels

ALIGN = 8  # output columns


def bucket(rows: int) -> int:
    """The padded row count for `rows`."""
    block = 64 if rows <= 512 else 256
    return -(-rows // block) * block


def needs_padding(x: Tensor, dtype: torch.dtype | None) -> bool:
    """Whether a multiply of x in `dtype` (None: autocast's, if on) runs as bf16 on the CPU."""
    if x.device.type != "cpu":
        return False
    if dtype is None:
        if not torch.is_autocast_enabled("cpu"):
            return False
        dtype = torch.get_autocast_dtype("cpu")
    return dtype == torch.bfloat16


def pad_rows(x: Tensor) -> Tensor:
    """x (M, K) with zero rows appended up to bucket(M) (x itself if none are needed)."""
    extra = bucket(x.size(0)) - x.size(0)
    return F.pad(x, (0, 0, 0, extra)) if extra else x


def linear(layer: Callable[[Tensor], Tensor], x: Tensor,
           dtype: torch.dtype | None = None) -> Tensor:
    """layer(x) for x (..., in), the leading dimensions flattened into padded rows when the
    multiply runs in bf16 on the CPU (autocast on, or `dtype` the layer's weight dtype)."""
    if not needs_padding(x, dtype):
        return layer(x)
    rows = x.reshape(-1, x.size(-1))  # (M, in)
    out = layer(pad_rows(rows))[: rows.size(0)]  # (M, out)
    return out.view(*x.shape[:-1], out.size(-1))


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """torch.bmm(a, b) for a (B, M, K) and b (B, K, N), each item's product the same whatever B.

    PyTorch runs a batch of one as a single multiply, which MKL may split between threads in
    another summation order than the per-item products of a larger batch: on the CPU a batch of
    one goes through as two, the second all zeros.
    """
    if a.size(0) != 1 or a.device.type != "cpu":
        return torch.bmm(a, b)
    return torch.bmm(torch.cat([a, torch.zeros_like(a)]), torch.cat([b, torch.zeros_like(b)]))[:1]


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
    decoding (precision.py) swaps it like any other Linear."""

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
    in place, when the fast kernels are on; decoders that share one output layer share its padded
    form."""
    if not kernels.enabled():
        return model
    swapped: dict[int, PaddedLinear] = {}
    for decoder in model.decoders.values():
        out = decoder.out_proj
        if isinstance(out, nn.Linear) and padded(out.out_features) != out.out_features:
            decoder.out_proj = swapped.setdefault(id(out), PaddedLinear(out))
    return model
