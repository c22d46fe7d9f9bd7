"""Token-level cross-entropy with label smoothing (Szegedy et al. 2016, sec. 7), padding ignored.

With smoothing eps over V classes, the target distribution of a token y is
    q(k) = (1 - eps) [k == y] + eps / V
and the loss is -sum_k q(k) log p(k), summed over the real (non-PAD) target tokens; per token
that is logsumexp(z) - (1 - eps) z_y - eps mean_k z_k for the logits z, with the gradient
softmax(z) - q.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from nmt import kernels
from nmt.kernels import Kernels
from nmt.kernels.loss import output_cross_entropy
from nmt.vocab import PAD


def sequence_loss(
    output: nn.Linear, hidden: Tensor, tgt_out: Tensor, label_smoothing: float = 0.0
) -> tuple[Tensor, Tensor]:
    """The output layer `output` (H -> V) and cross-entropy over attentional vectors hidden
    (B, T, H) and targets (B, T).

    Returns:
        (loss summed over real tokens, number of real tokens), both 0-dim tensors on the
        device of `hidden`; nothing here waits for the device.
    """
    mask = tgt_out != PAD  # (B, T)
    # On a GPU selecting the real rows has a data-dependent shape, i.e. a host sync.
    if kernels.enabled() and hidden.device.type == "cpu":
        rows = hidden[mask]  # (M, H)
        loss = output_cross_entropy(rows, output.weight, output.bias, tgt_out[mask],
                                    label_smoothing)
        return loss, mask.sum()
    logits = output(hidden).flatten(0, -2)  # (B*T, V)
    loss = F.cross_entropy(
        logits, tgt_out.flatten(), ignore_index=PAD, label_smoothing=label_smoothing,
        reduction="sum",
    )
    return loss, mask.sum()


class BatchLoss(nn.Module):
    """The teacher-forced loss of one batch as a single forward().

    DistributedDataParallel only sees what happens inside forward(); the output layer and loss run
    after the decoder, so they belong in the same forward for their gradients to be reduced.
    """

    def __init__(self, model: nn.Module, label_smoothing: float = 0.0, kernels: Kernels = "auto"):
        """`kernels`: "auto" takes the fast kernels where they are faster, "plain" runs the
        plain model (nmt/kernels)."""
        super().__init__()
        self.model = model
        self.label_smoothing = label_smoothing
        self.kernels = kernels

    def forward(
        self, src_tokens: Tensor, src_lengths: Tensor, tgt_in: Tensor, tgt_out: Tensor, task: str,
        sampling: float = 0.0,
    ) -> tuple[Tensor, Tensor]:
        """`sampling`: the scheduled sampling rate of this batch (decoder.py)."""
        with kernels.use(self.kernels):
            hidden, _ = self.model(src_tokens, src_lengths, tgt_in, task, sampling)  # (B, T, H)
            output = self.model.decoders[task].out_proj
            return sequence_loss(output, hidden, tgt_out, self.label_smoothing)
