"""Dropout whose mask is drawn as uniform noise >= p, of single values or of whole tokens.

The same distribution as torch.nn.Dropout (each element kept with probability 1 - p and scaled
by 1 / (1 - p)), drawn with rand(), which on the CPU is much faster than torch's bernoulli_:
the decoder drops out its attentional vector at every step. Word dropout (Gal & Ghahramani 2016)
draws one value per token, so a dropped token's whole embedding is zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Dropout(nn.Module):
    def __init__(self, p: float = 0.0, whole_tokens: bool = False):
        """`whole_tokens`: one draw per vector along the last dimension (word dropout)."""
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p
        self.whole_tokens = whole_tokens

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        noise = torch.rand_like(x[..., :1] if self.whole_tokens else x)  # (..., 1) or x's shape
        mask = noise.ge_(self.p).mul_(1.0 / (1.0 - self.p))  # 0 or 1 / (1 - p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}" + (", whole tokens" if self.whole_tokens else "")
