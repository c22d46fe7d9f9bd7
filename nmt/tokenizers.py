"""Tokenizers at three levels (word, character, subword) behind one small interface.

Every tokenizer receives `textio.normalize()`d text (single spaces, no control characters, no
leading or trailing space) and guarantees decode(encode(x)) == x for such text, except where a
rule below says otherwise.

- word: a token is a maximal run of letters, digits and combining marks, or any other single
  non-space character (punctuation, symbols). A token written right after the previous one, with
  no space between them, carries the joiner "￭" (U+FFED) as a prefix: "Hi, you." -> "Hi", "￭,",
  "you", "￭.". Decoding joins tokens with spaces and glues a token that starts with the joiner and
  is at least 2 characters long to its left neighbour. A literal "￭" in the text is punctuation,
  so it becomes the 1-character token "￭" (or "￭￭" when glued); both decode exactly.
- char: each character is a token; a space becomes "▁" (U+2581) and a literal "▁" becomes the
  3-character token "<▁>", so the two never collide.
- subword: a sentencepiece model (BPE or unigram; Kudo & Richardson 2018,
  https://arxiv.org/abs/1808.06226) trained on the training split with character_coverage=1.0
  and no normalisation rule. Round trips are exact for text made of characters seen in training,
  except the character "▁" itself, which is sentencepiece's space marker and decodes as a space.
  A character never seen in training stays a piece of its own; the vocabulary maps it to <unk>,
  which sentencepiece decodes as " ⁇ ".
  A given model (an existing file, e.g. another bundle's, so that two bundles tokenize alike) is
  used as it is: its own normalisation rule applies, and round trips are exact only as far as
  that rule and its training characters allow.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from nmt.errors import ConfigError, DataError

TokenizerName = Literal["word", "char", "subword"]
SpmType = Literal["bpe", "unigram"]

JOINER = "\uffed"  # "￭"
SPACE = "\u2581"  # "▁"
_LITERAL_SPACE = f"<{SPACE}>"


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[str]: ...

    def decode(self, pieces: Sequence[str]) -> str: ...

    def manifest_entry(self) -> dict[str, Any]: ...


@functools.cache
def _word_pattern() -> re.Pattern[str]:
    """Letters/digits ([^\\W_]) or combining marks (category M*, e.g. Devanagari vowel signs,
    which str.isalnum() rejects), else one non-space character."""
    marks, start, prev = [], -2, -2
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp))[0] == "M":
            if cp != prev + 1:
                if start >= 0:
                    marks.append((start, prev))
                start = cp
            prev = cp
    marks.append((start, prev))
    ranges = "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in marks)
    return re.compile(rf"(?:[^\W_]|[{ranges}])+|\S")


class WordTokenizer:
    """Whitespace and punctuation splitting with a joiner marker (rule in the module docstring)."""

    def encode(self, text: str) -> list[str]:
        pieces, end = [], 0
        for match in _word_pattern().finditer(text):
            token = match.group()
            pieces.append(JOINER + token if match.start() == end and pieces else token)
            end = match.end()
        return pieces

    def decode(self, pieces: Sequence[str]) -> str:
        parts = []
        for piece in pieces:
            if len(piece) >= 2 and piece[0] == JOINER:
                parts.append(piece[1:])
            else:
                parts.append(" " + piece if parts else piece)
        return "".join(parts)

    def manifest_entry(self) -> dict[str, Any]:
        return {"type": "word"}


class CharTokenizer:
    """One token per character; spaces are shown as "▁" (rule in the module docstring)."""

    def encode(self, text: str) -> list[str]:
        return [SPACE if ch == " " else _LITERAL_SPACE if ch == SPACE else ch for ch in text]

    def decode(self, pieces: Sequence[str]) -> str:
        return "".join(" " if p == SPACE else SPACE if p == _LITERAL_SPACE else p for p in pieces)

    def manifest_entry(self) -> dict[str, Any]:
        return {"type": "char"}


def _processor(model_path: Path, proto: bytes | None) -> Any:
    """A sentencepiece processor for the model file `model_path` (or its content `proto`); a
    file sentencepiece cannot read is a DataError naming it."""
    import sentencepiece as spm

    source = {"model_file": str(model_path)} if proto is None else {"model_proto": proto}
    try:
        processor = spm.SentencePieceProcessor(**source)
        readable = processor.get_piece_size() > 0  # an empty model loads without complaint
    except (RuntimeError, OSError):
        readable = False
    if not readable:
        raise DataError("not a readable sentencepiece model", model_path)
    return processor


class SentencePieceTokenizer:
    """A sentencepiece model, used through its piece strings."""

    def __init__(
        self, model_path: Path, spm_type: str, vocab_size: int, proto: bytes | None = None
    ):
        """`proto`, when given, is the model file's content already in memory (a checkpoint's
        copy), and `model_path` only names it. `spm_type` is bpe or unigram for the models
        trained here; a given model can also be of sentencepiece's word or char type."""
        self.model_path = Path(model_path)
        self.spm_type = spm_type
        self.vocab_size = vocab_size
        self._sp = _processor(model_path, proto)

    def encode(self, text: str) -> list[str]:
        return self._sp.encode(text, out_type=str)

    def decode(self, pieces: Sequence[str]) -> str:
        return self._sp.decode_pieces(list(pieces))

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "type": "subword",
            "model": self.model_path.name,
            "spm_type": self.spm_type,
            "vocab_size": self.vocab_size,
        }


def train_sentencepiece(
    sentences: Iterable[str],
    model_path: Path,
    vocab_size: int,
    spm_type: SpmType = "bpe",
    input_sentence_size: int = 2_000_000,
    seed: int = 1,
) -> SentencePieceTokenizer:
    """Train on a stream of sentences; writes `model_path` (which must end in .model).

    Sentencepiece keeps at most `input_sentence_size` sentences, sampled uniformly from the
    stream, so memory stays bounded on large corpora. The vocabulary size is a soft limit: a
    corpus too small for it gives a smaller model instead of an error.
    """
    import sentencepiece as spm

    failure: list[BaseException] = []

    def guarded() -> Iterator[str]:
        # sentencepiece turns an exception raised by the iterator into a RuntimeError; keep the
        # original (a DataError naming file and line) to re-raise it.
        try:
            yield from sentences
        except BaseException as err:
            failure.append(err)
            raise

    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=guarded(),
            model_prefix=str(model_path.with_suffix("")),
            vocab_size=vocab_size,
            model_type=spm_type,
            character_coverage=1.0,
            normalization_rule_name="identity",
            hard_vocab_limit=False,
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            bos_id=-1,
            eos_id=-1,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as err:
        if failure:
            raise failure[0] from None
        # Every character seen needs a piece (character_coverage=1.0): say which option to raise.
        short = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(err))
        if short:
            raise ConfigError(
                f"--vocab-size {vocab_size} is too small for the {short[1]} pieces "
                "that the training data's characters need"
            ) from None
        raise ConfigError(f"sentencepiece training failed: {err}") from None
    model_path.with_suffix(".vocab").unlink(missing_ok=True)  # our Vocabulary file replaces it
    return SentencePieceTokenizer(model_path, spm_type, vocab_size)


_MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}  # TrainerSpec.ModelType


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return value, at


def _proto_fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a serialized protobuf message: varints as ints, length-delimited
    fields as bytes; fixed-width fields are skipped."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield number, value
        elif wire == 2:
            size, at = _varint(data, at)
            yield number, data[at : at + size]
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {wire}")


def sentencepiece_type(proto: bytes) -> str:
    """The type of a sentencepiece model (ModelProto.trainer_spec.model_type), read from the
    file's bytes: sentencepiece's Python API does not expose it without the protobuf package."""
    for number, spec in _proto_fields(proto):
        if number == 2 and isinstance(spec, bytes):
            for field, value in _proto_fields(spec):
                if field == 3 and isinstance(value, int):
                    return _MODEL_TYPES.get(value, "unigram")
    return "unigram"  # the field's default


def copy_sentencepiece(source: Path, model_path: Path) -> SentencePieceTokenizer:
    """An existing sentencepiece model file `source`, copied to `model_path`, instead of a trained
    one; its type and size are the model's own. A missing or unreadable `source` is a DataError
    naming it."""
    if not source.is_file():
        raise DataError("no such file", source)
    proto = source.read_bytes()
    pieces = _processor(source, proto).get_piece_size()
    model_path.write_bytes(proto)
    return SentencePieceTokenizer(model_path, sentencepiece_type(proto), pieces, proto)


def load_tokenizer(
    entry: dict[str, Any], bundle_dir: Path, files: Mapping[str, bytes] | None = None
) -> Tokenizer:
    """Rebuild a tokenizer from its manifest entry; model files are relative to `bundle_dir`,
    or taken from `files` (name -> content) when given."""
    kind = entry.get("type")
    if kind == "word":
        return WordTokenizer()
    if kind == "char":
        return CharTokenizer()
    if kind == "subword":
        model = Path(bundle_dir) / entry["model"]
        proto = None if files is None else files.get(entry["model"])
        if proto is None and (files is not None or not model.is_file()):
            raise DataError("sentencepiece model missing", model)
        return SentencePieceTokenizer(model, entry["spm_type"], entry["vocab_size"], proto)
    raise ConfigError(f"unknown tokenizer {kind!r} (expected word, char or subword)")
