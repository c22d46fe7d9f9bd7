"""Stderr console, progress bars and the error boundary of every command."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nmt.errors import NmtError, SystemFailure, describe_os_error

stderr = Console(stderr=True, highlight=False)
_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def is_quiet() -> bool:
    return _state["quiet"]


def info(message: str) -> None:
    """A status line on stderr, unless --quiet."""
    if not _state["quiet"]:
        stderr.print(message)


def warn(message: str) -> None:
    """Warnings are shown even with --quiet; `message` is plain text (it names user files)."""
    stderr.print(f"[yellow]warning:[/yellow] {escape(message)}")


def progress(transient: bool = False, columns: Sequence[ProgressColumn] = ()) -> Progress:
    """A rich progress bar on stderr; disabled when quiet or stderr is not a terminal. `columns`
    replace the default ones (description, bar, done/total, elapsed and remaining time)."""
    return Progress(
        *columns
        or (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        ),
        console=stderr,
        transient=transient,
        disable=_state["quiet"] or not sys.stderr.isatty(),
    )


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn NmtError, OSError (a full disk, a file too large) and Ctrl-C into one line on
    stderr and a non-zero exit code."""
    try:
        yield
    except NmtError as err:
        _fail(str(err), err.exit_code)
    except BrokenPipeError:  # the reader left (`nmt translate | head`): quiet, as a shell tool
        raise typer.Exit(141) from None
    except OSError as err:
        _fail(describe_os_error(err), SystemFailure.exit_code)
    except KeyboardInterrupt:
        stderr.print("[red]interrupted[/red]")
        raise typer.Exit(130) from None


def _fail(message: str, code: int) -> None:
    stderr.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code) from None
