"""Errors the user can cause, each carrying the exit code the CLI reports.

The library raises these and never calls sys.exit; `nmt_cli` turns them into one line on stderr.
"""

from __future__ import annotations

from pathlib import Path


class NmtError(Exception):
    """Base class of every user-facing error."""

    exit_code = 1


class DataError(NmtError):
    """Bad input data; names the file and, where known, the 1-based line."""

    exit_code = 2

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        self.path = Path(path) if path is not None else None
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class ConfigError(NmtError):
    """An unknown, missing or inconsistent setting."""

    exit_code = 3


class CheckpointError(NmtError):
    """A checkpoint that is missing, corrupt, unsafe or of an unknown format."""

    exit_code = 4


class SystemFailure(NmtError):
    """The system refused a read or write (disk full, file too large, no permission)."""

    exit_code = 5


def describe_os_error(err: OSError) -> str:
    """One line for an OSError: the file it names and the system's reason."""
    reason = err.strerror or str(err) or type(err).__name__
    name = err.filename
    return f"{name}: {reason}" if name else reason
