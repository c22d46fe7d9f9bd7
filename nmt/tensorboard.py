"""TensorBoard event files of a run (`--tensorboard DIR`): the train and valid records of the
metrics log as scalars (loss, perplexity, learning rate, throughput; per task loss, perplexity,
BLEU and chrF, and the score that picks the best checkpoint). `nmt plot` draws the same curves
without TensorBoard.

torch.utils.tensorboard needs the `tensorboard` package, an optional extra; this module is
imported only when the option is used, so training without it imports nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nmt.errors import ConfigError

Report = Callable[[dict[str, Any]], None]
TRAIN_SCALARS = ("loss", "ppl", "lr", "tokens_per_s", "sents_per_s")


class Board:
    """A report sink that writes train and valid records to TensorBoard and passes every record
    on to `forward`."""

    def __init__(self, log_dir: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "--tensorboard needs the tensorboard package: "
                "pip install 'nmt[tensorboard]' (or pip install tensorboard)"
            ) from None
        self._writer_class = SummaryWriter
        self.log_dir = log_dir
        self.forward: Report = lambda record: None
        self.writer: Any = None

    def open(self, step: int, forward: Report) -> Board:
        """Start writing at `step`, passing records on to `forward`; a context manager that
        closes the files. A resumed run hides the events a killed run wrote past its checkpoint
        (TensorBoard's purge_step): they are written again."""
        self.writer = self._writer_class(str(self.log_dir), purge_step=step + 1 if step else None)
        self.forward = forward
        return self

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.writer.close()

    def __call__(self, record: dict[str, Any]) -> None:
        if record["kind"] in ("train", "valid"):
            self._write(record)
        self.forward(record)

    def _write(self, record: dict[str, Any]) -> None:
        step = record["step"]
        if record["kind"] == "train":
            for name in TRAIN_SCALARS:
                self.writer.add_scalar(f"train/{name}", record[name], step)
        else:
            self.writer.add_scalar("valid/score", record["score"], step)
            for task, results in record.items():
                if isinstance(results, dict):
                    for name, value in results.items():
                        self.writer.add_scalar(f"valid/{task}/{name}", value, step)
        self.writer.flush()  # a record a log interval: visible at once, and kept by a crash
