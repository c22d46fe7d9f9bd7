"""Row padding for bf16 multiplies on the CPU: keep the matrix shapes to a few.

oneDNN (which runs PyTorch's bf16 matmuls on the CPU) compiles a kernel for every new matrix
shape, several times the cost of the multiply, and its cache of kernels keeps growing. The rows
of a multiply depend on the data (target tokens in a batch, live hypotheses in a search), so
without padding a training run compiled several kernels per batch and grew with every batch.

`pad_rows` appends zero rows up to the next multiple of 64 (256 above 512 rows): a few dozen
shapes in all, at the price of at most 64 (or 256) rows of work. float32 multiplies (MKL) compile
nothing and are never padded.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


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
