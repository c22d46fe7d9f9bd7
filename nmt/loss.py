"""Token-level cross-entropy with label smoothing (Szegedy et al. 2016, sec. 7), padding ignored.

With smoothing eps over V classes, the target distribution of a token y is
    q(k) = (1 - eps) [k == y] + eps / V
and the loss is -sum_k q(k) log p(k), summed over the real (non-PAD) target tokens; per token
that is logsumexp(z) - (1 - eps) z_y - eps mean_k z_k for the logits z, with the gradient
softmax(z) - q.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt import padcols, padrows
from nmt.decoder import Decoder
from nmt.vocab import PAD


def sequence_loss(
    decoder: Decoder, hidden: Tensor, tgt_out: Tensor, label_smoothing: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Output layer + cross-entropy over attentional vectors hidden (B, T, H), targets (B, T).

    Returns:
        (loss summed over real tokens, number of real tokens), both 0-dim tensors on the
        device of `hidden`; nothing here waits for the device.
    """
    # The vocabulary projection is the model's largest multiply: on the CPU skip the padding
    # rows. On a GPU boolean indexing has a data-dependent shape, i.e. a host sync: keep the
    # fixed shape there and let ignore_index drop the padding.
    return _loss(decoder, hidden, tgt_out, label_smoothing, hidden.device.type == "cpu")


def _loss(
    decoder: Decoder, hidden: Tensor, tgt_out: Tensor, label_smoothing: float, select_rows: bool
) -> tuple[Tensor, Tensor]:
    mask = tgt_out != PAD  # (B, T)
    if select_rows:
        out = decoder.out_proj
        rows = hidden[mask]  # (M, H)
        loss = _OutputCrossEntropy.apply(rows, out.weight, out.bias, tgt_out[mask], label_smoothing)
        return loss, mask.sum()
    logits = decoder.output(hidden).flatten(0, -2)  # (B*T, V)
    targets = tgt_out.flatten()  # (B*T,)
    loss = F.cross_entropy(
        logits, targets, ignore_index=PAD, label_smoothing=label_smoothing, reduction="sum"
    )
    return loss, mask.sum()


class _OutputCrossEntropy(torch.autograd.Function):
    """Output layer + summed cross-entropy of the real rows, in one autograd node.

    Same value and gradients as F.cross_entropy(F.linear(...)), but the (M, V) logits buffer is
    turned into the logits' gradient in place during the forward pass: F.cross_entropy allocates
    and sweeps three more (M, V) tensors (log-probabilities, the loss gradient, the log-softmax
    gradient), a visible share of a CPU training step at the reference size.
    No double backward.
    """

    @staticmethod
    def forward(
        ctx: Any, hidden: Tensor, weight: Tensor, bias: Tensor, targets: Tensor, smoothing: float
    ) -> Tensor:
        # Under autocast the three multiplies run in its dtype (bf16: AMX on recent x86 CPUs),
        # the softmax and loss in float32; rows padded as padrows.py explains.
        device = hidden.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        rows, vocab = hidden.size(0), weight.size(0)
        if dtype is not None:
            hidden, weight, bias = hidden.to(dtype), weight.to(dtype), bias.to(dtype)
            if padrows.needs_padding(hidden, dtype):
                hidden = padrows.pad_rows(hidden)  # (M', H), zero rows added
        weight, bias = padcols.pad_output(weight, bias)  # (V', H), (V',): see padcols.py
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


class BatchLoss(nn.Module):
    """The teacher-forced loss of one batch as a single forward().

    DistributedDataParallel only sees what happens inside forward(); the output layer and loss run
    after the decoder, so they belong in the same forward for their gradients to be reduced.
    """

    def __init__(self, model: nn.Module, label_smoothing: float = 0.0):
        super().__init__()
        self.model = model
        self.label_smoothing = label_smoothing

    def forward(
        self, src_tokens: Tensor, src_lengths: Tensor, tgt_in: Tensor, tgt_out: Tensor, task: str
    ) -> tuple[Tensor, Tensor]:
        hidden, _ = self.model(src_tokens, src_lengths, tgt_in, task)  # (B, T, H)
        return sequence_loss(self.model.decoders[task], hidden, tgt_out, self.label_smoothing)
