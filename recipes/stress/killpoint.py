"""Run `nmt` with SIGKILL armed at one chosen moment of training (the stress test's child).

    python recipes/stress/killpoint.py KIND:N[:BYTES] train --out RUN ...

KIND:N picks the moment; the process kills itself with SIGKILL there, which to the run directory
is the same as a kill from outside at that instant:
  batch:N          in update N, after the backward pass, before the optimizer step
  validation:N     in validation N, after its loss pass, as greedy translation starts
  write:N:BYTES    in checkpoint write N, once BYTES bytes of it are in the temporary file
  published:N      after checkpoint N is renamed into place, before best.pt is copied from it
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import IO, Any

KINDS = ("batch", "validation", "write", "published")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _on_call(function: Callable, number: int, before: bool = True) -> Callable:
    """`function`, with SIGKILL at its `number`-th call (before it runs, or after it returns)."""
    calls = 0

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if before and calls == number:
            _die()
        result = function(*args, **kwargs)
        if not before and calls == number:
            _die()
        return result

    return wrapped


class _KillAfter:
    """A file handle that passes `limit` bytes through, flushes them, then dies."""

    def __init__(self, handle: IO[bytes], limit: int):
        self.handle, self.limit, self.written = handle, limit, 0

    def write(self, data: bytes) -> int:
        if self.written + len(data) >= self.limit:
            self.handle.write(data[: self.limit - self.written])
            self.handle.flush()
            _die()
        self.written += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def arm(kind: str, number: int, limit: int = 0) -> None:
    import torch

    from nmt import checkpoint, train, validation

    if kind == "batch":
        train.clip_gradients = _on_call(train.clip_gradients, number)
    elif kind == "validation":
        validation.translate_window = _on_call(validation.translate_window, number)
    elif kind == "published":
        checkpoint.save = _on_call(checkpoint.save, number, before=False)
    elif kind == "write":
        save, calls = torch.save, 0

        def killing_save(obj: Any, handle: IO[bytes], *args: Any, **kwargs: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == number:
                handle = _KillAfter(handle, limit)
            save(obj, handle, *args, **kwargs)

        torch.save = killing_save
    else:
        raise SystemExit(f"unknown kill point {kind!r}; one of {', '.join(KINDS)}")


def main() -> None:
    kind, number, *limit = sys.argv[1].split(":")
    arm(kind, int(number), *(int(n) for n in limit))
    from nmt_cli.main import app

    sys.argv = ["nmt", *sys.argv[2:]]
    app()


if __name__ == "__main__":
    main()
