"""`nmt average`: average the last K checkpoints of a run into one model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from nmt_cli import console


def average(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    last: Annotated[int, typer.Option(min=1, help="How many of the newest checkpoints.")] = 3,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Averaged checkpoint to write.")
    ] = Path("averaged.pt"),
) -> None:
    """Average the weights of the newest checkpoints (often a little better than any of them)."""
    from nmt import checkpoint

    with console.cli_errors():
        found = [p for _, p in checkpoint.step_checkpoints(run)][-last:]
        checkpoint.save(out, checkpoint.average(found))
        console.info(f"averaged {len(found)} checkpoints -> {escape(str(out))}")
