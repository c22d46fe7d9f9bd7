"""Run directory layout and the JSONL metrics log.

RUN_DIR/
  config.toml        resolved settings (reusable with --config)
  meta/              the bundle's manifest, vocabularies and tokenizer models (the model carries
                     its tokenizers: translation needs nothing else)
  metrics.jsonl      one JSON object per line: {"kind": "train"|"valid", "step": ..., ...}
  ckpt-00001000.pt   periodic checkpoints (the last K kept); best.pt: best validation score
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

CONFIG = "config.toml"
META = "meta"
METRICS = "metrics.jsonl"
BEST = "best.pt"


class MetricsLog:
    """Append-only JSONL; each record is flushed and fsynced so a crash loses nothing logged."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = path
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in record.items()}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(clean, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def truncate_after(self, step: int) -> None:
        """On resume: drop records past the checkpoint's step (they will be written again)."""
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, self.path)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
