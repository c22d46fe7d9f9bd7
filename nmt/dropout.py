"""Dropout whose mask is drawn as uniform noise >= p.

The same distribution as torch.nn.Dropout (each element kept with probability 1 - p and scaled
by 1 / (1 - p)), drawn with rand(), which on the CPU is much faster than torch's bernoulli_:
the decoder drops out its attentional vector at every step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Dropout(nn.Module):
    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        mask = torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))  # 0 or 1 / (1 - p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
