"""Additive (MLP) attention of Bahdanau et al. 2015, https://arxiv.org/abs/1409.0473, section A.1.2.

    score_j = v^T tanh(W_h h_j + W_s s_t)        h_j: encoder state j, s_t: decoder query
    a_j     = exp(score_j) / sum_k exp(score_k)  over real (unpadded) source positions only
    context = sum_j a_j h_j

W_h h_j (the keys) does not depend on t: `project_keys` computes it once per sentence and the
decoder keeps it in its state, so each step costs one (N, H) x (H, A) multiply for the query.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class AdditiveAttention(nn.Module):
    """Bahdanau attention: a one-hidden-layer MLP scores each source state against the query."""

    def __init__(self, key_size: int, query_size: int, attention_size: int):
        super().__init__()
        self.key_proj = nn.Linear(key_size, attention_size, bias=False)  # W_h
        self.query_proj = nn.Linear(query_size, attention_size, bias=False)  # W_s
        self.energy = nn.Linear(attention_size, 1, bias=False)  # v

    def project_keys(self, states: Tensor) -> Tensor:
        """Encoder states (B, S, H) -> keys W_h h_j (B, S, A); once per sentence."""
        return self.key_proj(states)

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Attend from query (N, Hd) over keys (N, S, A) / values (N, S, H) where mask (N, S).

        Returns:
            context (N, H) and weights (N, S); weights are exactly 0 at padding.
        """
        return self.attend(self.query_proj(query), keys, values, mask)

    def attend(
        self, projected_query: Tensor, keys: Tensor, values: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """`forward` for a query already multiplied by W_s (N, A), for callers that fuse it."""
        hidden = torch.tanh(keys + projected_query.unsqueeze(1))  # (N, S, A)
        scores = self.energy(hidden).squeeze(2)  # (N, S)
        # The lowest finite value rather than -inf: exp() of it is exactly 0 next to any real
        # score, and a row without any real position (never produced by the encoder) gets uniform
        # weights instead of NaN.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # (N, S)
        weights = torch.softmax(scores, dim=-1)  # (N, S)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (N, H)
        return context, weights
