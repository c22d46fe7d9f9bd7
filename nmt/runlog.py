"""Run directory layout and the JSONL metrics log.

RUN_DIR/
  config.toml        resolved settings (reusable with --config)
  metrics.jsonl      one JSON object per line: {"kind": "train"|"valid", "step": ..., ...}
  ckpt-00001000.pt   periodic checkpoints (the last K kept); best.pt: best validation score.
                     Each carries the bundle's manifest, vocabularies and tokenizer models
                     (checkpoint "meta"): translation needs nothing else
  done.json          written last, only by a run that finished: {"step", "stopped", "best", ...}
  .lock              held (flock) by the one `nmt train` writing the directory
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nmt.errors import ConfigError
from nmt.textio import atomic_write

CONFIG = "config.toml"
METRICS = "metrics.jsonl"
BEST = "best.pt"
DONE = "done.json"
LOCK = ".lock"


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
        """On resume: drop records past the checkpoint's step (they will be written again), and a
        last line a kill cut short."""
        if not self.enabled or not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if (at := _step(line)) is not None and at <= step]
        with atomic_write(self.path) as handle:
            handle.write("".join(line + "\n" for line in kept))


def _step(line: str) -> int | None:
    """A record's step; None for a line that is not a whole JSON record."""
    try:
        return json.loads(line).get("step", 0)
    except json.JSONDecodeError:
        return None


@contextlib.contextmanager
def claim(run_dir: Path) -> Iterator[None]:
    """Hold RUN_DIR/.lock (or fail at once if another process holds it), and remove the
    temporary files of the writes a killed run left (".NAME.XXXX.tmp").

    flock, not the file's existence, is the lock: the kernel releases it when its holder dies, so
    the file a killed run leaves behind blocks nothing.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip()
            holder = f"another nmt train (pid {pid})" if pid else "another nmt train"
            raise ConfigError(f"{run_dir} is in use by {holder}: "
                              "wait for it to finish or stop it") from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        for partial in run_dir.glob(".*.tmp"):  # only now: a live writer's look the same
            partial.unlink(missing_ok=True)
        yield  # closing the file releases the lock


def write_done(run_dir: Path, summary: dict[str, Any]) -> None:
    """Mark the run finished (atomically: the mark is whole or absent)."""
    with atomic_write(run_dir / DONE) as handle:
        handle.write(json.dumps(summary, indent=1) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
