"""Additive (MLP) attention of Bahdanau et al. 2015, https://arxiv.org/abs/1409.0473, section A.1.2.

    score_j = v^T tanh(W_h h_j + W_s s_t)        h_j: encoder state j, s_t: decoder query
    a_j     = exp(score_j) / sum_k exp(score_k)  over real (unpadded) source positions only
    context = sum_j a_j h_j

W_h h_j (the keys) does not depend on t: `memory` computes it once per sentence, with the values and
the mask, and each step costs one (N, H) x (H, A) multiply for the query. In beam search the K
rows of a sentence read its one row of memory (`attend`): it is never copied over the beam, and
is reordered only when sentences leave the batch. With the fast kernels the same scores are
computed through the sigmoid (nmt/kernels/attention.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from nmt import kernels
from nmt.kernels import attention as fast

# projected query (N, A) -> context (N, H), weights (N, S)
Attend = Callable[[Tensor], tuple[Tensor, Tensor]]


@dataclass
class Memory:
    """What attention reads at every step, one row per sentence; `select` takes rows (dropping
    finished sentences).

    keys: (B, S, A) W_h h_j, or 2 W_h h_j when `sigmoid` (the fast kernel's form);
    values: (B, S, H) the encoder states h_j; mask: (B, S) True at real source positions.
    """

    keys: Tensor
    values: Tensor
    mask: Tensor
    sigmoid: bool = False

    def select(self, index: Tensor) -> Memory:
        return Memory(self.keys.index_select(0, index), self.values.index_select(0, index),
                      self.mask.index_select(0, index), self.sigmoid)


class AdditiveAttention(nn.Module):
    """Bahdanau attention: a one-hidden-layer MLP scores each source state against the query."""

    def __init__(self, key_size: int, query_size: int, attention_size: int):
        super().__init__()
        self.key_proj = nn.Linear(key_size, attention_size, bias=False)  # W_h
        self.query_proj = nn.Linear(query_size, attention_size, bias=False)  # W_s
        self.energy = nn.Linear(attention_size, 1, bias=False)  # v

    def memory(self, states: Tensor, mask: Tensor) -> Memory:
        """Encoder states (B, S, H) and mask (B, S) -> Memory, once a sentence."""
        if kernels.enabled():
            return Memory(fast.sigmoid_keys(self.key_proj, states), states, mask, sigmoid=True)
        return Memory(self.key_proj(states), states, mask)  # (B, S, A)

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """Attend from query (N, Hd) over the memory.

        Returns:
            context (N, H) and weights (N, S); weights are exactly 0 at padding.
        """
        return self.attend(self.query_proj(query), memory)

    def attend(self, projected_query: Tensor, memory: Memory) -> tuple[Tensor, Tensor]:
        """`forward` for a query already multiplied by W_s (N, A), for callers that fuse it.

        The memory may hold one row per group of N / B consecutive query rows (the beams of a
        sentence in beam search): each group reads its sentence's row, which is never copied.
        """
        keys, values, mask = memory.keys, memory.values, memory.mask  # (B, S, A), (B, S, H), (B, S)
        if memory.sigmoid:
            return fast.sigmoid_attend(projected_query, keys, values, mask, self.energy.weight[0])
        batch, src_len, size = keys.shape
        query = projected_query.view(batch, -1, 1, size)  # (B, K, 1, A), K = N / B
        scores = self.energy(torch.tanh(keys.unsqueeze(1) + query)).squeeze(3)  # (B, K, S)
        # The lowest finite value rather than -inf: exp() of it is exactly 0 next to any real
        # score, and a row without any real position (never produced by the encoder) gets uniform
        # weights instead of NaN.
        scores = scores.masked_fill(~mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1)  # (B, K, S)
        context = weights @ values  # (B, K, H): one product per sentence, not per row
        return context.view(-1, values.size(2)), weights.view(-1, src_len)  # (N, H), (N, S)

    def loop(self, memory: Memory) -> Attend:
        """`attend` over one memory for every step of one decoder pass: with the fast kernels
        and gradients, the hand-written backward of nmt/kernels/attention.py."""
        if memory.sigmoid and torch.is_grad_enabled():
            return fast.loop(memory.keys, memory.values, memory.mask, self.energy.weight[0])
        return partial(self.attend, memory=memory)
