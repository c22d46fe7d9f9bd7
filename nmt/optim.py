"""Optimizer, learning-rate schedules and gradient clipping, each with a resumable state.

Schedules set the learning rate of every parameter group directly:
- constant: lr;
- warmup: linear warm-up over `warmup_steps`, then inverse square-root decay,
  lr * min(step / warmup, sqrt(warmup / step));
- plateau: lr multiplied by `lr_decay` after `lr_patience` validations without improvement;
- cosine: half a cosine from lr down to `min_lr` over the run's horizon (its updates),
  min_lr + (lr - min_lr) * (1 + cos(pi * step / horizon)) / 2, whatever the validations say.
All are bounded below by `min_lr`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from nmt.config import TrainConfig
from nmt.errors import ConfigError


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: TrainConfig
) -> torch.optim.Optimizer:
    """Adam/AdamW with the fused kernel: one pass over all parameters instead of a loop."""
    trainable = [p for p in params if p.requires_grad]
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return kind(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


class LrSchedule:
    """The learning rate as a function of the update count and the validation history."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, horizon: int = 0):
        if cfg.schedule == "cosine" and horizon < 1:
            raise ConfigError("the cosine schedule needs the run's length: set max-steps or "
                              "max-epochs")
        self.optimizer = optimizer
        self.cfg = cfg
        self.horizon = horizon
        self.scale = 1.0  # plateau decay so far
        self.best: float | None = None
        self.bad = 0
        self.step(0)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self, update: int) -> None:
        """Called before update number `update` + 1."""
        cfg = self.cfg
        lr = cfg.lr * self.scale
        if cfg.schedule == "warmup":
            n = max(update, 1)
            lr = cfg.lr * min(n / cfg.warmup_steps, math.sqrt(cfg.warmup_steps / n))
        elif cfg.schedule == "cosine":
            done = min(update, self.horizon) / self.horizon
            lr = cfg.min_lr + (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * done)) / 2
        for group in self.optimizer.param_groups:
            group["lr"] = max(lr, cfg.min_lr)

    def observe(self, score: float, higher_is_better: bool) -> None:
        """Feed a validation score (plateau schedule)."""
        value = score if higher_is_better else -score
        if self.best is None or value > self.best:
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.cfg.schedule == "plateau" and self.bad > self.cfg.lr_patience:
            self.scale *= self.cfg.lr_decay
            self.bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.best, self.bad = state["scale"], state["best"], state["bad"]


def clip_gradients(params: Iterable[torch.nn.Parameter], max_norm: float) -> Tensor | None:
    """Clip the global L2 norm of all gradients; returns the norm before clipping (no host sync)."""
    grads = [p for p in params if p.grad is not None]
    if max_norm <= 0 or not grads:
        return None
    return torch.nn.utils.clip_grad_norm_(grads, max_norm, foreach=True)
