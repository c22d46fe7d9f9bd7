"""Multi-task schedule: which task (decoder) the next batch is drawn from.

- round-robin: tasks in turn;
- proportional: sampled with probability proportional to each task's number of training pairs;
- temperature: sampled with p_i proportional to n_i ** (1 / T) (T = 1 is proportional; large T
  tends to uniform), as in multilingual NMT.
Sampling uses its own seeded generator, whose state is saved in checkpoints for exact resume.
"""

from __future__ import annotations

from typing import Any

import torch

from nmt.errors import ConfigError


class TaskSchedule:
    def __init__(self, sizes: dict[str, int], kind: str, temperature: float, seed: int):
        if not sizes:
            raise ConfigError("no tasks to train")
        if kind == "temperature" and temperature <= 0:
            raise ConfigError(f"task-temperature must be positive, got {temperature}")
        self.tasks = list(sizes)
        self.kind = kind
        exponent = 1.0 / temperature if kind == "temperature" else 1.0
        weights = torch.tensor([float(sizes[t]) ** exponent for t in self.tasks])
        self.probs = weights / weights.sum()
        self.generator = torch.Generator().manual_seed(seed)
        self.count = 0

    def next(self) -> str:
        """The task of the next batch."""
        self.count += 1
        if self.kind == "round-robin" or len(self.tasks) == 1:
            return self.tasks[(self.count - 1) % len(self.tasks)]
        pick = torch.multinomial(self.probs, 1, generator=self.generator)
        return self.tasks[int(pick)]

    def shares(self) -> dict[str, float]:
        """The expected fraction of batches each task gets."""
        if self.kind == "round-robin":
            return {t: 1.0 / len(self.tasks) for t in self.tasks}
        return {t: float(p) for t, p in zip(self.tasks, self.probs, strict=True)}

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
        self.generator.set_state(state["generator"])
