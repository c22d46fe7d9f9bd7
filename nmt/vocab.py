"""Vocabulary: a fixed mapping between token strings and integer ids.

Ids 0-3 are the special tokens PAD, UNK, BOS and EOS, in every vocabulary. The rest are the
training tokens, most frequent first (ties broken by the token string, so building is
deterministic). The file format is human-readable: one `token<TAB>count` line per id, in id order
(the specials have count 0). Tokens never contain whitespace: tokenizers only see normalised text
and mark spaces with a symbol.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from nmt.errors import DataError
from nmt.textio import atomic_write, decode_lines, read_lines

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")


class Vocabulary:
    """Token <-> id mapping; unknown tokens map to UNK."""

    def __init__(self, tokens: list[str], counts: Sequence[int] | None = None):
        if tuple(tokens[:4]) != SPECIALS:
            raise DataError(f"a vocabulary starts with {', '.join(SPECIALS)}")
        self._tokens = list(tokens)
        self._ids = {token: i for i, token in enumerate(self._tokens)}
        if len(self._ids) != len(self._tokens):
            raise DataError("a vocabulary lists each token once")
        self.counts = list(counts) if counts is not None else [0] * len(tokens)

    @classmethod
    def build(cls, counts: Mapping[str, int], min_freq: int = 1, max_size: int = 0) -> Vocabulary:
        """Tokens seen at least `min_freq` times, most frequent first; `max_size` caps the number
        of non-special tokens (0 = no cap). Tokens spelled like a special are left out."""
        kept = sorted(
            ((token, n) for token, n in counts.items() if n >= min_freq and token not in SPECIALS),
            key=lambda item: (-item[1], item[0]),
        )
        if max_size > 0:
            kept = kept[:max_size]
        return cls(list(SPECIALS) + [t for t, _ in kept], [0] * 4 + [n for _, n in kept])

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def index(self, token: str) -> int:
        return self._ids.get(token, UNK)

    def token(self, i: int) -> str:
        return self._tokens[i]

    def encode(self, pieces: Sequence[str]) -> list[int]:
        """Token strings -> ids (no BOS/EOS added)."""
        get = self._ids.get
        return [get(p, UNK) for p in pieces]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> token strings; stops at the first EOS and skips PAD and BOS."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(self._tokens[i])
        return out

    def save(self, path: Path | str) -> None:
        with atomic_write(path) as handle:
            for token, count in zip(self._tokens, self.counts, strict=True):
                handle.write(f"{token}\t{count}\n")

    @classmethod
    def load(cls, path: Path | str, data: bytes | None = None) -> Vocabulary:
        """The vocabulary file `path`; `data`, when given, is its content already in memory (a
        checkpoint's copy), and `path` only names it in messages."""
        lines = read_lines(path) if data is None else decode_lines(io.BytesIO(data), path)
        tokens, counts, first = [], [], {}  # first: token -> its line
        for number, line in enumerate(lines, start=1):
            token, tab, count = line.rpartition("\t")
            if not tab or not token or not count.isdigit():
                raise DataError("expected 'token<TAB>count'", path, number)
            if number <= len(SPECIALS) and token != SPECIALS[number - 1]:
                message = f"expected {SPECIALS[number - 1]!r}: a vocabulary starts with "
                raise DataError(message + ", ".join(SPECIALS), path, number)
            if token in first:
                raise DataError(f"{token!r} again (first on line {first[token]})", path, number)
            first[token] = number
            tokens.append(token)
            counts.append(int(count))
        if len(tokens) < len(SPECIALS):
            raise DataError(
                f"{len(tokens)} lines: a vocabulary starts with {', '.join(SPECIALS)}", path
            )
        return cls(tokens, counts)
