"""The `nmt` app: registers the commands. Heavy libraries are imported inside the commands,
so `nmt --help` stays fast."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Annotated

import typer

from nmt import __version__
from nmt_cli import console

app = typer.Typer(
    help="RNN-attention neural machine translation: preprocess, train, translate, score, "
    "evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nmt {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors and warnings on stderr.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """RNN-attention neural machine translation."""
    console.set_quiet(quiet)


# Command registration, in the order of the workflow. Each module imports its heavy libraries
# inside the command function.
from nmt_cli.average import average  # noqa: E402
from nmt_cli.evaluate import evaluate  # noqa: E402
from nmt_cli.plot import plot  # noqa: E402
from nmt_cli.preprocess import preprocess  # noqa: E402
from nmt_cli.score import score  # noqa: E402
from nmt_cli.train import train  # noqa: E402
from nmt_cli.translate import translate  # noqa: E402

for command in (preprocess, train, translate, score, evaluate, average, plot):
    app.command()(command)


def run() -> None:
    """The `nmt` entry point: run the command, flush, and leave without tearing torch down.

    Interpreter shutdown after `import torch` takes about half a second (module teardown); every
    file the commands write is closed (and atomically renamed) before they return, so only the
    standard streams need flushing.
    """
    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        # torch imports dill, which asks tempfile for its directory, found by writing a probe
        # file: on a full disk (or under ulimit -f 0) that import would fail. Unprobed, a
        # temporary file is still refused where one is really written.
        tempfile.tempdir = os.environ.get("TMPDIR") or "/tmp"
    try:
        app()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`nmt translate ... | head`)
            code = code or 1
    os._exit(code)


if __name__ == "__main__":
    run()
