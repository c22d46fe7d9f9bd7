"""manifest.json, the description of a bundle: read strictly, the files it names, and the
checksums of those files.

manifest["checksums"] = {file name: {"bytes": size, "sha256": hex digest}} covers every file of
the bundle but manifest.json itself. It is recorded when the bundle is built, checked cheaply
each time the bundle is opened (sizes and .npy headers), and hashed in full on request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nmt import __version__
from nmt.errors import DataError
from nmt.textio import atomic_write

FORMAT_VERSION = 2  # 2: the checksums
_READABLE = (1, FORMAT_VERSION)  # a version 1 bundle opens without checks
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def parse_manifest(data: bytes, name: Path) -> dict[str, Any]:
    """The manifest in `data` (the file `name`), of a format this version reads."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid JSON ({err}); run `nmt preprocess` again", name) from None
    if not isinstance(manifest, dict):
        raise DataError("not a bundle manifest (not a JSON object)", name)
    version = manifest.get("format_version")
    if version not in _READABLE:
        raise DataError(
            f"bundle format {version!r} is not {FORMAT_VERSION}; run `nmt preprocess` again", name
        )
    return manifest


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    path = bundle_dir / "manifest.json"
    if not path.is_file():
        raise DataError("not a bundle (no manifest.json; run `nmt preprocess`)", bundle_dir)
    return parse_manifest(path.read_bytes(), path)


@contextlib.contextmanager
def manifest_entries(name: Path) -> Iterator[None]:
    """Around code that reads a manifest's entries: one edited by hand (an entry missing, a list
    for a dict) is a DataError naming the file `name`."""
    try:
        yield
    except (KeyError, TypeError, AttributeError) as err:
        what = f"no entry {err}" if isinstance(err, KeyError) else f"a malformed entry ({err})"
        raise DataError(f"{what}; run `nmt preprocess` again", name) from None


def meta_files(manifest: dict[str, Any]) -> list[str]:
    """manifest.json and the vocabulary and tokenizer model files it names."""
    vocabs = [entry["file"] for entry in manifest["vocab"].values()]
    models = [entry["model"] for entry in manifest["tokenizer"].values() if "model" in entry]
    return list(dict.fromkeys(["manifest.json", *vocabs, *models]))


def split_files(manifest: dict[str, Any]) -> list[str]:
    """The arrays and texts of every split."""
    return [
        name
        for entry in manifest["splits"].values()
        for side in entry["files"].values()
        for name in side.values()
    ]


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_manifest(bundle_dir: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Write `bundle_dir`/manifest.json: the format, `fields`, and the checksums of every other
    file in `bundle_dir`; return what was written."""
    paths = sorted(p for p in bundle_dir.iterdir() if p.name != "manifest.json")
    checksums = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in paths}
    manifest = {
        "format": "nmt-bundle",
        "format_version": FORMAT_VERSION,
        "created_by": f"nmt {__version__}",
        **fields,
        "checksums": checksums,
    }
    with atomic_write(bundle_dir / "manifest.json") as handle:
        json.dump(manifest, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    return manifest


def check_files(bundle_dir: Path, manifest: dict[str, Any]) -> None:
    """Cheap checks of every file the manifest names: listed in its checksums, present, of the
    recorded size, and a .npy file's header describes exactly the data after it. A DataError
    names the first file that fails. Call inside `manifest_entries`."""
    if manifest["format_version"] == 1:
        return
    checksums = manifest["checksums"]
    for name in meta_files(manifest)[1:] + split_files(manifest):
        path = bundle_dir / name
        if name not in checksums:
            raise DataError("not listed in the checksums of manifest.json", path)
        expected = checksums[name]["bytes"]
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise DataError("missing (the bundle is incomplete)", path) from None
        if size != expected:
            raise DataError(f"{size} bytes where manifest.json records {expected}", path)
        if name.endswith(".npy"):
            _check_npy_header(path, size)


def verify_files(bundle_dir: Path) -> list[str]:
    """Hash every file of the bundle in full: 'NAME (reason)' for each that differs from its
    checksum or is named but not listed (an empty list: the bundle is as it was written)."""
    manifest = read_manifest(bundle_dir)
    name = bundle_dir / "manifest.json"
    if "checksums" not in manifest:
        raise DataError("records no checksums (format 1); run `nmt preprocess` again", name)
    with manifest_entries(name):
        checksums = manifest["checksums"]
        named = meta_files(manifest)[1:] + split_files(manifest)
        problems = [f"{file} (not in checksums)" for file in named if file not in checksums]
        for file, expected in checksums.items():
            path = bundle_dir / file
            if not path.is_file():
                problems.append(f"{file} (missing)")
            elif path.stat().st_size != expected["bytes"]:
                problems.append(f"{file} (size)")
            elif sha256_file(path) != expected["sha256"]:
                problems.append(f"{file} (sha256)")
    return problems


def _check_npy_header(path: Path, size: int) -> None:
    with open(path, "rb") as handle:
        try:
            read_header = _HEADER_READERS.get(np.lib.format.read_magic(handle))
            if read_header is None:
                raise ValueError("unsupported .npy version")
            shape, _, dtype = read_header(handle)
        except ValueError as err:
            raise DataError(f"not a readable .npy array ({err})", path) from None
        data_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if handle.tell() + data_bytes != size:
            raise DataError(
                f".npy header says {shape} {dtype}, not the {size - handle.tell()} bytes of "
                "data that follow it",
                path,
            )
