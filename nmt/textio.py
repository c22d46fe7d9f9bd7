"""Strict text reading with line numbers, and atomic writes.

Reading rules (documented in the README, applied to every corpus line):
- files are UTF-8; a `.gz` suffix is decompressed transparently;
- a byte-order mark at the start of the file is removed;
- line ends are LF or CRLF (the CR is removed);
- invalid UTF-8 is an error naming the file and line, unless errors="replace", which turns each
  bad byte into U+FFFD;
- `normalize()` turns control characters (NUL included) and every kind of Unicode whitespace into
  one ASCII space, collapses runs of spaces and strips both ends. Tokenizers see only normalised
  text, so decode(encode(x)) == normalize(x) for every tokenizer.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import select
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

from nmt.errors import DataError

Errors = Literal["strict", "replace"]

_SPACE = re.compile(r"\s+")


def _is_blank(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Zs", "Zl", "Zp")


def normalize(text: str) -> str:
    """Control characters and Unicode whitespace -> one space; ends stripped."""
    if not text.isprintable():
        text = "".join(" " if _is_blank(ch) else ch for ch in text)
    return _SPACE.sub(" ", text).strip()


def open_binary(path: Path) -> IO[bytes]:
    """Open a plain or gzip file for reading bytes; a missing file is a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path)
    raw = open(path, "rb")
    if path.suffix == ".gz":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


def read_lines(path: Path | str, errors: Errors = "strict") -> Iterator[str]:
    """Yield the lines of a text file, line ends removed, rules of the module docstring applied.

    Lines are not normalised here (callers decide); the iterator holds one line at a time.
    """
    path = Path(path)
    with open_binary(path) as handle:
        yield from decode_lines(handle, path, errors)


def decode_lines(handle: IO[bytes], name: Path | str, errors: Errors = "strict") -> Iterator[str]:
    """The rules of read_lines applied to an open binary stream named `name`."""
    for number, raw in enumerate(_read_raw(handle, Path(name)), start=1):
        yield _decode(raw, number, name, errors)


def _decode(raw: bytes, number: int, name: Path | str, errors: Errors) -> str:
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as err:
        raise DataError(
            f"invalid UTF-8 at byte {err.start} (use --errors replace to substitute U+FFFD)",
            name,
            number,
        ) from None
    return text.rstrip("\n").removesuffix("\r")


def available_windows(fd: int, name: str, window: int, errors: Errors = "strict",
                      ) -> Iterator[list[str]]:
    """Windows of decoded lines from a pipe or terminal, never waiting for more input than one
    line while lines are at hand: an interactive caller gets each line's translation at once,
    a pipe full of text still gets full windows."""
    buffer, number, eof = b"", 0, False
    while True:
        lines: list[bytes] = []
        while len(lines) < window:
            cut = buffer.find(b"\n")
            if cut >= 0:
                lines.append(buffer[: cut + 1])
                buffer = buffer[cut + 1 :]
                continue
            if eof or (lines and not select.select([fd], [], [], 0)[0]):
                break
            data = os.read(fd, 1 << 16)
            eof = not data
            buffer += data
        if eof and buffer and len(lines) < window:
            lines.append(buffer)
            buffer = b""
        if not lines:
            return
        yield [_decode(raw, number + i, name, errors) for i, raw in enumerate(lines, start=1)]
        number += len(lines)


def _read_raw(handle: IO[bytes], path: Path) -> Iterator[bytes]:
    try:
        yield from handle
    except (OSError, EOFError) as err:  # truncated or corrupt gzip
        raise DataError(f"cannot read: {err}", path) from None


def count_lines(path: Path | str) -> int:
    """Number of lines, counted as read_lines counts them."""
    with open_binary(Path(path)) as handle:
        return sum(1 for _ in _read_raw(handle, Path(path)))


def _chmod_like_new(path: str | Path, mode: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give them the umask's usual mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


@contextlib.contextmanager
def atomic_write(path: Path | str, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside `path`, then rename it over `path` on success.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        encoding = None if "b" in mode else "utf-8"
        with open(fd, mode, encoding=encoding, newline="\n" if encoding else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _chmod_like_new(tmp, 0o666)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: Path | str, force: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name beside `path`; rename it into place on success.

    An existing `path` is an error unless `force`; with `force` it is replaced only once the new
    directory is complete, so a failed run never leaves a half-written result.
    """
    path = Path(path)
    if path.exists() and not force:
        raise DataError("already exists (use --force to overwrite)", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    _chmod_like_new(tmp, 0o777)
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class ResumableOutput:
    """A text output built as `PATH.partial` and renamed to PATH once complete.

    The output is a sequence of items of `group` lines each (an input line's n-best list). A crash
    leaves PATH untouched and the `.partial` file holding whole lines; `resume=True` cuts it back
    to its last whole item (`done` counts the items kept) and appends after them, otherwise the
    partial file is started afresh.
    """

    def __init__(self, path: Path | str, resume: bool = False, group: int = 1):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done = 0
        if resume and self.partial.exists():
            data = self.partial.read_bytes()
            lines = data.count(b"\n")
            self.done = lines // group
            keep = 0
            for _ in range(self.done * group):  # the end of the last whole item
                keep = data.index(b"\n", keep) + 1
            with open(self.partial, "r+b") as handle:
                handle.truncate(keep)
        elif resume and self.path.exists():
            raise DataError("is already complete; nothing to resume", self.path)
        self.handle = open(self.partial, "a" if resume else "w", encoding="utf-8", newline="\n")

    def write_line(self, text: str) -> None:
        with self._naming_errors():
            self.handle.write(text + "\n")

    def flush(self) -> None:
        with self._naming_errors():
            self.handle.flush()
            os.fsync(self.handle.fileno())

    def commit(self) -> None:
        """Close and move the finished output into place."""
        self.flush()
        self.handle.close()
        os.replace(self.partial, self.path)

    def close(self) -> None:
        """Close without committing (after an error): the partial file stays for --resume, its
        last line possibly torn (a resume cuts it)."""
        with contextlib.suppress(OSError):  # the error being reported may be this very write
            self.handle.close()

    @contextlib.contextmanager
    def _naming_errors(self) -> Iterator[None]:
        """A failed write (a full disk) names the file: the OSError of a write does not."""
        try:
            yield
        except OSError as err:
            if err.filename:
                raise
            raise OSError(err.errno, err.strerror, str(self.partial)) from None
