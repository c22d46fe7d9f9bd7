"""Additive attention through the sigmoid, and its training loop with a hand-written backward.

Plain twin: AdditiveAttention.attend (nmt/attention.py), score_j = v^T tanh(W_h h_j + W_s s_t).
Tests: tests/test_attention.py::test_sigmoid_form_equals_the_plain_equation and
::test_loop_form_equals_plain_autograd.

tanh(y) = 2 sigmoid(2y) - 1, and a softmax does not change when the same constant (here -sum(v))
is added to every score, so

    a_j = softmax_j(2 v^T sigmoid(2 W_h h_j + 2 W_s s_t))

exactly. The keys are kept as 2 W_h h_j; a step adds 2 W_s s_t and takes the sigmoid in place:
on the CPU PyTorch's float32 tanh is several times slower than its sigmoid.

Training (`loop`) runs the same equations with a hand-written backward per step: autograd would
spend most of it on two outer products computed as multiplies of inner size 1, and on adding whole
(N, S, A) / (N, S, H) gradients of the keys and values at every step. Here the keys' gradient is
summed in place with 2v factored out (v is the same at every step), and the values' and v's
gradients are taken once for all steps, as steplinear.py does for the decoder's Linear layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from nmt.kernels import shapes
from nmt.kernels.steplinear import new_cast


def sigmoid_keys(key_proj: nn.Linear, states: Tensor) -> Tensor:
    """The keys of the sigmoid form, 2 W_h h_j (B, S, A), for encoder states (B, S, H)."""
    return 2.0 * shapes.linear(key_proj, states)


def sigmoid_attend(projected_query: Tensor, keys: Tensor, values: Tensor, mask: Tensor,
                   energy: Tensor) -> tuple[Tensor, Tensor]:
    """AdditiveAttention.attend for keys from `sigmoid_keys` and v = energy (A,)."""
    batch, src_len, size = keys.shape
    query = projected_query.view(batch, -1, 1, size)  # (B, K, 1, A), K = N / B
    hidden = torch.add(keys.unsqueeze(1), query, alpha=2.0).sigmoid_()  # (B, K, S, A)
    scores = 2.0 * (hidden @ energy)  # (B, K, S); half a 1-output Linear's time
    scores = scores.masked_fill(~mask.unsqueeze(1), torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)  # (B, K, S)
    context = shapes.bmm(weights, values)  # (B, K, H): one product per sentence, not per row
    return context.view(-1, values.size(2)), weights.view(-1, src_len)  # (N, H), (N, S)


def loop(keys: Tensor, values: Tensor, mask: Tensor,
         energy: Tensor) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """`sigmoid_attend` for every step of one decoder pass, with the hand-written backward; the
    keys have one row per query row (teacher forcing)."""
    records = _Records()
    keys, values, energy = _Tap.apply(keys, values, 2.0 * energy, records)
    return lambda query: _Step.apply(query, keys, values, energy, mask, records)


class _Records:
    """One forward pass of the loop: what the steps share and what the tap's backward gathers.

    The per-step lists are filled in backward only (steplinear.py says why: a reference cycle).
    """

    def __init__(self) -> None:
        self.weights: list[Tensor] = []  # per step reached by backward (N, S)
        self.context_grads: list[Tensor] = []  # and its context gradient (N, H)
        self.scratch: Tensor | None = None  # (N, S, A) sigmoid(keys + 2 query), one step at a time
        # Sums over the steps, made on the first backward step: dkeys / 2v and d(2v).
        self.keys_grad: Tensor | None = None  # (N, S, A)
        self.energy_grad: Tensor | None = None  # (A,)

    def hidden(self, keys: Tensor, query: Tensor) -> Tensor:
        """sigmoid(keys + 2 query) (N, S, A), written over the previous step's."""
        if self.scratch is None:
            self.scratch = torch.empty_like(keys)
        return torch.add(keys, query.unsqueeze(1), alpha=2.0, out=self.scratch).sigmoid_()


class _Tap(torch.autograd.Function):
    """keys, values, 2v -> float32 copies for the steps; backward: their summed gradients."""

    @staticmethod
    def forward(ctx: Any, keys: Tensor, values: Tensor, energy: Tensor,
                records: _Records) -> tuple[Tensor, Tensor, Tensor]:
        ctx.records = records
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(energy)
        return (new_cast(keys, torch.float32), new_cast(values, torch.float32),
                new_cast(energy, torch.float32))

    @staticmethod
    def backward(ctx: Any, *_: Tensor | None) -> tuple[Tensor | None, ...]:
        (energy,) = ctx.saved_tensors
        rec = ctx.records
        if rec.keys_grad is None:
            return None, None, None, None
        grad_values = None
        if rec.weights:
            # dvalues = sum_t a_t^T dcontext_t: one (S, T) x (T, H) product per sentence.
            weights = torch.stack(rec.weights, dim=2)  # (N, S, T)
            grads = torch.stack(rec.context_grads, dim=1)  # (N, T, H)
            grad_values = torch.bmm(weights, grads)  # (N, S, H)
        grad_keys = rec.keys_grad.mul_(energy.float())  # (N, S, A)
        grad_energy = rec.energy_grad
        rec.weights, rec.context_grads, rec.keys_grad, rec.energy_grad = [], [], None, None
        rec.scratch = None
        return grad_keys, grad_values, grad_energy, None


class _Step(torch.autograd.Function):
    """One step of `sigmoid_attend` in float32 (autocast or not: on the CPU a bf16 sigmoid is
    slower than a float32 one). Nothing of size (N, S, A) is kept per step: backward recomputes
    sigmoid(keys + 2 query) in the shared scratch buffer, which stays in cache."""

    @staticmethod
    def forward(ctx: Any, query: Tensor, keys: Tensor, values: Tensor, energy: Tensor,
                mask: Tensor, records: _Records) -> tuple[Tensor, Tensor]:
        with torch.autocast(query.device.type, enabled=False):
            query = query.float()
            hidden = records.hidden(keys, query)  # (N, S, A)
            scores = hidden @ energy  # (N, S)
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=-1)  # (N, S)
            context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (N, H)
        ctx.records = records
        ctx.save_for_backward(query, keys, weights, values, energy)
        return context, weights

    @staticmethod
    def backward(ctx: Any, grad_context: Tensor | None,
                 grad_weights: Tensor | None) -> tuple[Tensor | None, ...]:
        query, keys, weights, values, energy = ctx.saved_tensors
        rec = ctx.records
        grad_a = torch.zeros_like(weights)  # (N, S)
        if grad_context is not None:
            grad_context = grad_context.float()
            rec.weights.append(weights)
            rec.context_grads.append(grad_context)
            grad_a = torch.bmm(values, grad_context.unsqueeze(2)).squeeze(2)
        if grad_weights is not None:
            grad_a = grad_a + grad_weights
        # Softmax backward; padding has weight 0, so its score gradient is 0 too.
        grad_scores = weights * (grad_a - (weights * grad_a).sum(1, keepdim=True))  # (N, S)
        hidden = rec.hidden(keys, query)  # (N, S, A), recomputed
        grad_energy = grad_scores.view(1, -1).mm(hidden.flatten(0, 1)).squeeze(0)  # (A,)
        # d(pre-sigmoid) = grad_scores (x) 2v * hidden (1 - hidden), in place; 2v is factored
        # out until the tap. The query enters the pre-sigmoid twice over.
        grad_pre = _sigmoid_backward_(grad_scores.unsqueeze(2).expand_as(hidden), hidden)
        grad_query = grad_pre.sum(1).mul_(2.0 * energy)  # (N, A)
        if rec.keys_grad is None:
            rec.keys_grad, rec.energy_grad = grad_pre.clone(), grad_energy
        else:
            rec.keys_grad.add_(grad_pre)
            rec.energy_grad.add_(grad_energy)
        return grad_query, None, None, None, None, None


def _sigmoid_backward_(grad: Tensor, sigmoid: Tensor) -> Tensor:
    """grad * (1 - sigmoid) * sigmoid, written over `sigmoid` and returned.

    ATen's own sigmoid derivative (no public API exposes it): one pass in place, where public ops
    (rsub, mul_, mul_) take three passes over (N, S, A) and a buffer of that size.
    """
    return torch.ops.aten.sigmoid_backward.grad_input(
        grad_output=grad, output=sigmoid, grad_input=sigmoid
    )
