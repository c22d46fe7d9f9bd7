"""The output layer and cross-entropy in one autograd node, on the rows of real tokens only.

Plain twin: F.cross_entropy(output(hidden), ..., ignore_index=PAD) in loss.sequence_loss. Tests:
tests/test_loss.py::test_fast_kernel_equals_the_plain_loss (value and every gradient, smoothing
or not, a tied model) and ::test_autocast_bf16_multiplies_with_float32_softmax.

The (M, V) logits buffer is turned into the logits' gradient in place during the forward pass:
F.cross_entropy allocates and sweeps three more (M, V) tensors (log-probabilities, the loss
gradient, the log-softmax gradient), a visible share of a CPU training step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from nmt.kernels import shapes


def output_cross_entropy(hidden: Tensor, weight: Tensor, bias: Tensor, targets: Tensor,
                         smoothing: float) -> Tensor:
    """Summed label-smoothed cross-entropy of the logits hidden (M, H) W^T + b against targets
    (M,); no double backward."""
    return _OutputCrossEntropy.apply(hidden, weight, bias, targets, smoothing)


class _OutputCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, hidden: Tensor, weight: Tensor, bias: Tensor, targets: Tensor, smoothing: float
    ) -> Tensor:
        # Under autocast the three multiplies run in its dtype (bf16: AMX on recent x86 CPUs),
        # the softmax and loss in float32; rows padded as shapes.py explains.
        device = hidden.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        rows, vocab = hidden.size(0), weight.size(0)
        if dtype is not None:
            hidden, weight, bias = hidden.to(dtype), weight.to(dtype), bias.to(dtype)
            if shapes.needs_padding(hidden, dtype):
                hidden = shapes.pad_rows(hidden)  # (M', H), zero rows added
        weight, bias = shapes.pad_output(weight, bias)  # (V', H), (V',): see shapes.py
        with torch.autocast(device, enabled=False):
            padded = torch.addmm(bias, hidden, weight.t()).float()  # (M', V')
        logits = padded[:rows, :vocab]  # (M, V), a view
        picked = logits.gather(1, targets[:, None])  # (M, 1)
        loss = picked.sum() * (smoothing - 1.0)
        if smoothing:
            loss = loss - logits.sum() * (smoothing / vocab)
        top = logits.amax(1, keepdim=True)  # (M, 1)
        grad = logits.sub_(top).exp_()  # (M, V), in place from here on
        total = grad.sum(1, keepdim=True)  # (M, 1)
        loss = loss + total.log().add_(top).sum()  # + logsumexp of every row
        grad.div_(total)  # softmax
        if smoothing:
            grad.sub_(smoothing / vocab)
        grad.scatter_add_(1, targets[:, None], picked.new_full(picked.shape, smoothing - 1.0))
        ctx.grad_bias = grad.sum(0)  # (V,) in float32, before any rounding of grad
        # The padding columns are 0 (zero weight rows and bias); they meet zero weight rows in
        # the backward multiplies, and their weight-gradient rows are dropped.
        padded[rows:] = 0.0  # the padding rows get no gradient
        ctx.rows, ctx.vocab = rows, vocab
        ctx.save_for_backward(hidden, weight, padded.to(hidden.dtype))
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        hidden, weight, grad = ctx.saved_tensors
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        # Scale the small products, not the (M, V) matrix, by the incoming scalar gradient.
        scale = grad_loss.to(grad.dtype)
        grad_hidden = (grad @ weight)[: ctx.rows].mul_(scale) if need_hidden else None  # (M, H)
        grad_weight = None
        if need_weight:
            grad_weight = (grad.t() @ hidden)[: ctx.vocab].mul_(scale)  # (V, H)
        grad_bias = ctx.grad_bias.mul_(grad_loss) if need_bias else None  # (V,)
        return grad_hidden, grad_weight, grad_bias, None, None
