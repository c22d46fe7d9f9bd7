"""The binarized form of one side of a corpus split: all token ids in one flat int32 array and
n+1 int64 offsets, sentence i being ids[offsets[i]:offsets[i+1]] (no BOS/EOS).

Both are .npy files, so `np.load(mmap_mode="r")` reads them without loading the corpus. The
writer streams: ids go to a raw file in large chunks and lengths to a compact array('i'), so no
Python object per sentence is kept, and ids can be remapped once the vocabulary is known.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from nmt.errors import DataError

_CHUNK = 1 << 20  # ids per buffered write / remap step


class TokenArray:
    """One side of one split, memory-mapped."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray):
        self.ids = ids  # (total tokens,) int32
        self.offsets = offsets  # (n + 1,) int64

    @classmethod
    def load(cls, ids_path: Path, offsets_path: Path) -> TokenArray:
        """Both files, checked for what costs no pass over the ids: dtypes, shapes, and offsets
        that cut all the ids into sentences. A damaged file is a DataError naming it."""
        ids = _load_vector(ids_path, np.int32, mmap=True)
        offsets = _load_vector(offsets_path, np.int64, mmap=False)
        array = cls(ids, offsets)
        ends = len(offsets) > 0 and offsets[0] == 0 and offsets[-1] == len(ids)
        if not ends or (array.lengths < 0).any():
            message = f"offsets that do not cut the {len(ids)} ids into sentences"
            raise DataError(message, offsets_path)
        return array

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)  # (n,) int64

    def __getitem__(self, i: int) -> np.ndarray:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sentence {i} out of range ({len(self)} sentences)")
        i %= len(self)
        return self.ids[self.offsets[i] : self.offsets[i + 1]]


def _load_vector(path: Path, dtype: type[np.generic], mmap: bool) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r" if mmap else None)
    except ValueError as err:  # a bad header, or fewer bytes than the header promises
        raise DataError(f"not a readable .npy array ({err})", path) from None
    if array.ndim != 1 or array.dtype != dtype:
        found = f"{array.ndim}-D {array.dtype}"
        raise DataError(f"expected a 1-D {np.dtype(dtype)} array, found {found}", path)
    return array


class TokenArrayWriter:
    """Appends sentences to STEM.ids.tmp; `finish` writes STEM.ids.npy and STEM.offsets.npy."""

    def __init__(self, stem: Path):
        self.stem = stem
        self._raw_path = Path(f"{stem}.ids.tmp")
        self._raw = open(self._raw_path, "wb")
        self._buffer = array("i")
        self.lengths = array("i")  # 4 bytes per sentence
        self.tokens = 0

    def add(self, ids: list[int]) -> None:
        self._buffer.extend(ids)
        self.lengths.append(len(ids))
        if len(self._buffer) >= _CHUNK:
            self._flush()

    def _flush(self) -> None:
        self._buffer.tofile(self._raw)
        self.tokens += len(self._buffer)
        self._buffer = array("i")

    def _close(self) -> None:
        if not self._raw.closed:
            self._flush()
            self._raw.close()

    def _chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        self._close()
        if self.tokens == 0:  # np.memmap refuses empty files
            return
        raw = np.memmap(self._raw_path, dtype=np.int32, mode="r")
        for start in range(0, self.tokens, _CHUNK):
            yield start, raw[start : start + _CHUNK]

    def counts(self, size: int) -> np.ndarray:
        """How often each id in [0, size) was written."""
        total = np.zeros(size, np.int64)
        for _, chunk in self._chunks():
            total += np.bincount(chunk, minlength=size)
        return total

    def finish(self, lut: np.ndarray | None = None) -> dict[str, str]:
        """Write the .npy files, mapping each written id i to lut[i]; return their names."""
        ids_path, offsets_path = Path(f"{self.stem}.ids.npy"), Path(f"{self.stem}.offsets.npy")
        self._close()
        if self.tokens == 0:
            np.save(ids_path, np.zeros(0, np.int32))
        else:
            out = np.lib.format.open_memmap(ids_path, "w+", np.int32, (self.tokens,))
            for start, chunk in self._chunks():
                out[start : start + len(chunk)] = chunk if lut is None else lut[chunk]
            out.flush()
            del out
        offsets = np.zeros(len(self.lengths) + 1, np.int64)
        np.cumsum(np.frombuffer(self.lengths, np.int32), out=offsets[1:])
        np.save(offsets_path, offsets)
        self._raw_path.unlink()
        return {"ids": ids_path.name, "offsets": offsets_path.name}
