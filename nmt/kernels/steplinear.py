"""Linear layers applied at every step of the decoder loop, with weight gradients taken once.

Plain twin: the nn.Linear module called at each step (Decoder._ops with kernels "plain"). Tests:
tests/test_steplinear.py, and tests/test_decoder.py::test_fast_kernels_equal_the_plain_decoder.

Autograd differentiates `F.linear(x_t, W)` at each of the T steps on its own: a (out, B) x (B, in)
multiply for dW per step, T - 1 additions of the whole (out, in) gradient, a sum for db. But the
weight gradient does not feed the recurrence: dW = sum_t dy_t^T x_t = dY^T X over all steps at
once, one multiply of inner size T*B instead of T multiplies of inner size B, and no additions.
cuDNN's RNN backward does the same.

`step_linear(linear)` returns a callable for one forward pass of the loop:
    _Tap(W, b) -> W', b'   once before the loop; its backward computes dW and db
    _Step(x_t, W', b')     per step; its backward computes only dx_t and records dy_t
Autograd runs a node only after every node that takes its outputs, so the tap's backward sees the
dy_t of every step that received a gradient. The inputs x_t are saved as autograd would save them.

Under autocast the weights are cast to the autocast dtype once per forward pass (the tap), not at
every step (autocast caches casts of leaf tensors only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.kernels import shapes


class _Records:
    """Per forward pass: the input and output gradient of each step that backward reached.

    Filled in backward only: tensors held here during the forward pass would close a reference
    cycle through the graph (records -> tensor -> its graph -> the tap -> records), and a forward
    pass not followed by backward would never be freed.
    """

    def __init__(self) -> None:
        self.inputs: list[Tensor] = []
        self.grads: list[Tensor] = []


class _Tap(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, weight: Tensor, bias: Tensor | None, records: _Records,
                dtype: torch.dtype) -> tuple[Tensor, Tensor | None]:
        ctx.records = records
        ctx.set_materialize_grads(False)  # the steps give no gradient here; none is made
        return new_cast(weight, dtype), None if bias is None else new_cast(bias, dtype)

    @staticmethod
    def backward(ctx: Any, *_: Tensor | None) -> tuple[Tensor | None, ...]:
        records = ctx.records
        inputs, grads = records.inputs, records.grads
        records.inputs, records.grads = [], []  # free them as soon as they are used
        if not inputs:
            return None, None, None, None
        x = torch.cat(inputs)  # (T*B, in)
        grad = torch.cat(grads).to(x.dtype)  # (T*B, out)
        if shapes.needs_padding(x, x.dtype):  # zero rows add nothing to the sums below
            x, grad = shapes.pad_rows(x), shapes.pad_rows(grad)
        grad_weight = grad.t() @ x if ctx.needs_input_grad[0] else None  # (out, in)
        grad_bias = grad.sum(0, dtype=torch.float32) if ctx.needs_input_grad[1] else None  # (out,)
        return grad_weight, grad_bias, None, None


def new_cast(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    """`tensor` in `dtype` as a new tensor (a view if no cast is needed): an autograd Function
    must not return its input."""
    return tensor.view_as(tensor) if tensor.dtype == dtype else tensor.to(dtype)


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None,
                records: _Records) -> Tensor:
        x = x.to(weight.dtype)
        ctx.records = records
        ctx.save_for_backward(x, weight)
        return F.linear(x, weight, bias)  # (B, out)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        ctx.records.inputs.append(x)
        ctx.records.grads.append(grad)
        return grad.to(weight.dtype) @ weight, None, None, None  # (B, in)


def step_linear(linear: nn.Module) -> Callable[[Tensor], Tensor]:
    """`linear` itself, or (when its weight will get a gradient) its loop form for one forward
    pass: the same values, with dW and db computed once over all the steps it is called on."""
    if not torch.is_grad_enabled() or not isinstance(linear, nn.Linear):
        return linear
    weight = linear.weight
    if not weight.requires_grad:
        return linear
    dtype = weight.dtype
    if torch.is_autocast_enabled(weight.device.type):
        dtype = torch.get_autocast_dtype(weight.device.type)
    records = _Records()
    cast_weight, cast_bias = _Tap.apply(weight, linear.bias, records, dtype)

    def apply(x: Tensor) -> Tensor:
        return _Step.apply(x, cast_weight, cast_bias, records)

    return apply
