"""Parallel corpora: aligned rows (source, target 1, target 2, ...) read from one of four formats.

- text: one file per language, `PREFIX.LANG` or `PREFIX.LANG.gz`, line N of every file aligned;
- tsv: one file, tab-separated fields, no quoting;
- jsonl: one JSON object per line, either flat ({"en": ..., "de": ...}) or with a `translation`
  dict ({"translation": {"en": ..., "de": ...}}), as Hugging Face translation datasets store it;
- hf: a Hugging Face dataset (a saved local directory, or anything `load_dataset` can open),
  its rows either a `translation` dict or a column per language (Multi30k's {"en": ..., "de": ...}).
  A dataset that cannot be fetched because the hub is out of reach (no network, offline mode)
  is a SystemFailure, which callers can tell from a dataset that is wrong (a DataError).

Column names: one per side, source first; by default the language codes. A TSV whose first line
contains every column name has a header, and fields are picked by name (other columns are
ignored); without a header the fields are positional, one per side. A JSON null or dataset None
is an empty string; a lone surrogate (a JSON escape such as \\ud800, which no UTF-8 can hold) is
an error naming file and line, or U+FFFD with errors="replace", as invalid UTF-8 is. Rows stream
one at a time; nothing per sentence is kept.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from nmt.errors import ConfigError, DataError, SystemFailure
from nmt.textio import Errors, count_lines, read_lines

Format = Literal["auto", "text", "tsv", "jsonl", "hf"]
Row = tuple[str, ...]


class ParallelSource(Protocol):
    label: str

    def check(self) -> int:
        """Validate cheaply (files exist, line counts agree); return the number of rows."""
        ...

    def rows(self) -> Iterator[Row]: ...

    def describe(self) -> dict[str, Any]:
        """What the manifest records: paths and sha256, or dataset name and split."""
        ...


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: Path) -> dict[str, str]:
    """What a manifest records of a file it read: its absolute path and sha256."""
    return {"path": str(path.resolve()), "sha256": sha256(path)}


@dataclass(frozen=True)
class TextFiles:
    paths: tuple[Path, ...]
    errors: Errors = "strict"

    @property
    def label(self) -> str:
        return str(self.paths[0])

    def check(self) -> int:
        counts = [count_lines(p) for p in self.paths]
        for path, n in zip(self.paths[1:], counts[1:], strict=True):
            if n != counts[0]:
                self._mismatch(path, n, counts[0])
        return counts[0]

    def _mismatch(self, path: Path, n: int, first: int) -> None:
        raise DataError(
            f"has {n} lines but {self.paths[0]} has {first}; aligned files need equal line counts",
            path,
        )

    def rows(self) -> Iterator[Row]:
        readers = [read_lines(p, self.errors) for p in self.paths]
        for row in itertools.zip_longest(*readers):
            if None in row:
                self.check()  # names both files and both counts
                raise DataError("changed while being read", self.paths[0])
            yield row

    def describe(self) -> dict[str, Any]:
        return {"format": "text", "files": [file_entry(p) for p in self.paths]}


_SURROGATE = re.compile("[\ud800-\udfff]")


def _pick(
    record: Mapping[str, Any],
    names: Sequence[str],
    path: Path | str,
    line: int,
    errors: Errors = "strict",
) -> Row:
    """Look each column up in the record, then in its `translation` dict."""
    inner = record.get("translation")
    inner = inner if isinstance(inner, Mapping) else {}
    values = []
    for name in names:
        if name in record:
            value = record[name]
        elif name in inner:
            value = inner[name]
        else:
            raise DataError(f"no field {name!r} (fields: {', '.join(record)})", path, line)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise DataError(f"field {name!r} is not a string: {value!r:.40}", path, line)
        if _SURROGATE.search(value):  # a JSON escape such as "\ud800": no UTF-8 can hold it
            if errors == "strict":
                raise DataError(
                    f"field {name!r} holds a lone surrogate "
                    "(use --errors replace to substitute U+FFFD)",
                    path,
                    line,
                )
            value = _SURROGATE.sub("\ufffd", value)
        values.append(value)
    return tuple(values)


@dataclass(frozen=True)
class _RecordFile:
    """A corpus of one file, a record per line, its fields picked by name."""

    path: Path
    names: tuple[str, ...]
    errors: Errors = "strict"

    @property
    def label(self) -> str:
        return str(self.path)

    def check(self) -> int:
        return count_lines(self.path)


@dataclass(frozen=True)
class TsvFile(_RecordFile):
    def rows(self) -> Iterator[Row]:
        where = list(range(len(self.names)))
        width = len(self.names)
        for number, line in enumerate(read_lines(self.path, self.errors), start=1):
            fields = line.split("\t")
            if number == 1 and set(self.names) <= set(fields):
                where, width = [fields.index(name) for name in self.names], len(fields)
                continue
            if len(fields) != width:
                raise DataError(
                    f"expected {width} tab-separated fields, found {len(fields)}", self.path, number
                )
            yield tuple(fields[i] for i in where)

    def describe(self) -> dict[str, Any]:
        return {"format": "tsv", "columns": list(self.names), "files": [file_entry(self.path)]}


@dataclass(frozen=True)
class JsonlFile(_RecordFile):
    def rows(self) -> Iterator[Row]:
        for number, line in enumerate(read_lines(self.path, self.errors), start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON: {err.msg}", self.path, number) from None
            if not isinstance(record, dict):
                raise DataError("expected a JSON object", self.path, number)
            yield _pick(record, self.names, self.path, number, self.errors)

    def describe(self) -> dict[str, Any]:
        return {"format": "jsonl", "columns": list(self.names), "files": [file_entry(self.path)]}


@dataclass(frozen=True)
class HfSplit:
    dataset: Any  # datasets.Dataset
    name: str
    split: str
    names: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.name}[{self.split}]"

    def check(self) -> int:
        columns = set(self.dataset.column_names)
        if not set(self.names) <= columns and "translation" not in columns:
            raise DataError(
                f"no columns {', '.join(self.names)} nor 'translation' "
                f"(columns: {', '.join(sorted(columns))})",
                self.label,
            )
        return len(self.dataset)

    def rows(self) -> Iterator[Row]:
        wanted = set(self.names) | {"translation"}
        dataset = self.dataset.select_columns([c for c in self.dataset.column_names if c in wanted])
        for number, record in enumerate(dataset, start=1):
            yield _pick(record, self.names, self.label, number)

    def describe(self) -> dict[str, Any]:
        return {
            "format": "hf",
            "dataset": self.name,
            "split": self.split,
            "columns": list(self.names),
            "rows": len(self.dataset),
        }


def _lang_file(prefix: str, lang: str) -> Path:
    path, gz = Path(f"{prefix}.{lang}"), Path(f"{prefix}.{lang}.gz")
    if path.is_file() or not gz.is_file():
        return path  # a missing file is reported by check() with this name
    return gz


def _detect(prefix: str) -> Format:
    path = Path(prefix)
    if not path.is_file():
        return "text"
    suffixes = path.name.removesuffix(".gz").rsplit(".", 1)
    kind = {"tsv": "tsv", "tab": "tsv", "jsonl": "jsonl", "json": "jsonl"}.get(suffixes[-1])
    if kind is None:
        raise DataError("cannot tell the format from the suffix; use --format text|tsv|jsonl", path)
    return kind  # type: ignore[return-value]


def open_source(
    prefix: str, langs: Sequence[str], fmt: Format, names: Sequence[str], errors: Errors
) -> ParallelSource:
    """A corpus split given as a file prefix (text) or one file (tsv, jsonl)."""
    kind = _detect(prefix) if fmt == "auto" else fmt
    if kind == "text":
        return TextFiles(tuple(_lang_file(prefix, lang) for lang in langs), errors)
    if not Path(prefix).is_file():
        raise DataError("no such file", prefix)
    if kind == "tsv":
        return TsvFile(Path(prefix), tuple(names), errors)
    return JsonlFile(Path(prefix), tuple(names), errors)


def open_hf_splits(
    name: str, config: str, splits: Mapping[str, str], names: Sequence[str], required: Sequence[str]
) -> dict[str, HfSplit]:
    """Our split name -> dataset split, through `datasets` (imported only here). A directory
    written by `save_to_disk` is read with `load_from_disk`; anything else with `load_dataset`.
    Splits in `required` must exist; the others are used when present."""
    import datasets

    path = Path(name)
    try:
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = datasets.load_dataset(name, config or None)
    except Exception as err:  # datasets raises many types (network, format, missing files)
        if _unreachable(err):
            raise SystemFailure(
                f"{name}: cannot reach the Hugging Face hub (no network?): "
                f"{type(err).__name__}: {err}"
            ) from None
        raise DataError(f"cannot load dataset: {type(err).__name__}: {err}", name) from None
    if isinstance(loaded, datasets.Dataset):
        loaded = {"train": loaded}
    out = {}
    for ours, theirs in splits.items():
        if theirs in loaded:
            out[ours] = HfSplit(loaded[theirs], name, theirs, tuple(names))
        elif ours in required:
            have = ", ".join(loaded)
            raise DataError(f"no split {theirs!r} for {ours} (splits: {have})", name)
    return out


def _unreachable(err: BaseException) -> bool:
    """Whether loading failed for want of the network: `datasets` raises ConnectionError when
    the hub is out of reach (also in offline mode), with the cause chained."""
    chain: BaseException | None = err
    while chain is not None:
        if isinstance(chain, (ConnectionError, TimeoutError)):
            return True
        chain = chain.__cause__ or chain.__context__
    return False


_LANG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_HF_DEFAULT = {"train": "train", "valid": "validation", "test": "test"}


def _check_langs(langs: Sequence[str], names: Sequence[str]) -> None:
    for lang in langs:
        if not _LANG.fullmatch(lang):
            raise ConfigError(f"language code {lang!r}: use letters, digits, '_' and '-'")
    tgts = langs[1:]
    if len(set(tgts)) != len(tgts) or "src" in tgts:
        raise ConfigError(f"target languages must be distinct and not 'src': {','.join(tgts)}")
    if len(names) != len(langs):
        raise ConfigError(
            f"--columns names {len(names)} columns; expected {len(langs)} "
            "(the source, then each target)"
        )


def open_sources(
    langs: Sequence[str],
    paths: Mapping[str, str],
    fmt: Format,
    columns: Sequence[str],
    errors: Errors,
    hf_dataset: str = "",
    hf_config: str = "",
    hf_split: Sequence[tuple[str, str]] = (),
) -> dict[str, ParallelSource]:
    """Split name ("train", "valid", "test") -> source. `paths` gives file prefixes or files
    ("" = no such split); a Hugging Face dataset replaces them, split names mapped by `hf_split`
    (default train=train, valid=validation, test=test, where present)."""
    names = tuple(columns) or tuple(langs)
    _check_langs(langs, names)
    if not (hf_dataset or fmt == "hf"):
        if not paths.get("train"):
            raise ConfigError("--train is required (or --hf-dataset)")
        return {split: open_source(p, langs, fmt, names, errors) for split, p in paths.items() if p}
    if not hf_dataset:
        raise ConfigError("--format hf needs --hf-dataset")
    if any(paths.values()):
        raise ConfigError(
            "with --hf-dataset, pick splits with --hf-split, not --train/--valid/--test"
        )
    mapping = dict(hf_split) or _HF_DEFAULT
    unknown = set(mapping) - set(_HF_DEFAULT)
    if unknown or "train" not in mapping:
        raise ConfigError(f"--hf-split maps train (required), valid and test; got {dict(mapping)}")
    required = list(mapping) if hf_split else ["train"]
    return dict(open_hf_splits(hf_dataset, hf_config, mapping, names, required))
