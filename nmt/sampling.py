"""Sampling a translation token by token (ancestral sampling), with temperature, top-k and
nucleus (top-p, Holtzman et al. 2020) truncation; seeded, reproducible and batch-invariant.

At each step the allowed next tokens (those search allows: not PAD or BOS; only EOS at the
length limit) are ranked by log-probability. top-k keeps the k best; top-p keeps the fewest best
whose tempered probabilities sum to at least p. One of those kept is drawn with probability
proportional to p(y) ** (1 / temperature).

Each sentence draws from a generator of its own, seeded from the seed and its input line number,
with one uniform number per step drawn in advance and turned into a token by the inverse of its
row's cumulative distribution. So what a sentence gets depends on neither the other sentences in
its batch or window nor a resume. The score reported is the model's log P of the sample, not
tempered (what `nmt score` gives for it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nmt.errors import ConfigError

# Spreads the seeds of consecutive lines across the generator's 64-bit seed space (the
# golden-ratio constant of Fibonacci hashing).
_SPREAD = 0x9E3779B97F4A7C15


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int = 0  # 0: no limit
    top_p: float = 1.0  # 1: no limit
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}")
        if self.top_k < 0:
            raise ConfigError(f"top-k must be 0 (no limit) or positive, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top-p must be in (0, 1], got {self.top_p}")


def line_seed(seed: int, line: int) -> int:
    """The seed of input line `line` (0-based)."""
    return (seed * _SPREAD + line) % 2**64


class Sampler:
    """Draws the next token of each sentence of a batch (search.greedy's `sampler`)."""

    def __init__(self, sampling: Sampling, lines: Sequence[int], steps: int, device: torch.device):
        """`lines`: the input line number of each sentence of the batch; `steps`: the most
        steps any of them may take."""
        self.sampling = sampling
        self.width = sampling.top_k  # candidates search ranks per row; 0: all
        uniforms = [
            torch.rand(
                steps,
                generator=torch.Generator().manual_seed(line_seed(sampling.seed, line)),
                dtype=torch.float64,
            )
            for line in lines
        ]
        self.uniforms = torch.stack(uniforms).to(device) if uniforms else None  # (B, T)

    def choose(
        self, logp: Tensor, token: Tensor, sentences: Tensor, t: int
    ) -> tuple[Tensor, Tensor]:
        """From each row's candidates, best first (logp, token (N, W); -inf: not allowed), draw
        one for step t; `sentences` (N,) is the batch row of each. Returns (N,) each."""
        scaled = ((logp - logp[:, :1]) / self.sampling.temperature).double()  # (N, W), max 0
        weight = scaled.exp()  # (N, W), unnormalised
        if self.sampling.top_p < 1:
            mass = weight / weight.sum(1, keepdim=True)  # (N, W)
            before = mass.cumsum(1) - mass  # the mass of the better candidates
            weight = weight.masked_fill(before >= self.sampling.top_p, 0.0)
        cdf = weight.cumsum(1)  # (N, W)
        u = self.uniforms[sentences, t, None] * cdf[:, -1:]  # (N, 1)
        pick = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.size(1) - 1)  # (N, 1)
        return logp.gather(1, pick).squeeze(1), token.gather(1, pick).squeeze(1)
