"""`nmt plot`: learning curves of a run as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from nmt_cli import console


def plot(
    run: Annotated[Path, typer.Argument(help="Run directory (reads its metrics.jsonl).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="PNG file to write.")
    ] = Path("curves.png"),
    x: Annotated[
        Literal["step", "time"],
        typer.Option("--x", help="Horizontal axis: step, or time (wall minutes)."),
    ] = "step",
) -> None:
    """
    Draw the training loss and validation BLEU curves (needs matplotlib: pip install 'nmt\\[plot]').
    """
    from nmt.errors import DataError
    from nmt.plot import learning_curves
    from nmt.runlog import METRICS, read_metrics

    with console.cli_errors():
        if not (run / METRICS).is_file():
            raise DataError("no metrics.jsonl here (not a run directory?)", run)
        learning_curves(read_metrics(run / METRICS), out, x)
        console.info(f"curves -> {escape(str(out))}")
