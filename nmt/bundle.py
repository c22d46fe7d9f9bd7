"""The data bundle: what `nmt preprocess` writes and what training and translation read.

A bundle is one directory (SIDE is "src" or a task, i.e. a target language):
  manifest.json           format version, languages, tokenizer settings, vocabulary files, per
                          split: lines, sentences, tokens per side, pairs filtered by reason, the
                          source files with their sha256; the options of the run; the size and
                          sha256 of every other file of the bundle (nmt/manifest.py)
  spm.model               sentencepiece model (subword; joint), or spm.SIDE.model (separate)
  vocab.txt               the vocabulary (joint), or vocab.SIDE.txt (separate)
  SPLIT.SIDE.ids.npy      the split binarized: int32 ids and int64 offsets (nmt/tokenarray.py)
  SPLIT.SIDE.offsets.npy
  SPLIT.SIDE.txt          valid/test only: the normalised text, line i <-> sentence i

Filtering (training split only): a pair (the source and every target) is dropped when any side
is empty after normalisation ("empty"), when any side has more than max_tokens tokens
("too_long"), or when the longer/shorter token ratio of the source and any target exceeds
max_ratio ("ratio"). Dropping whole pairs keeps every side aligned. Valid and test keep every
line, empty or long, so that references keep their line numbers.

Given tokenizers: an existing sentencepiece model (--spm-model for every side, or
--src-spm-model/--tgt-spm-model per side) is copied into the bundle instead of training one, and
an existing vocabulary file (--vocab, or --src-vocab/--tgt-vocab) is used as it is instead of
one built from the counts (min_freq and max_vocab do not apply; tokens it lacks become <unk>,
counted per split and side in the manifest's "unk"). Two bundles built with the same given model
and vocabulary tokenize alike and share token ids, as fine-tuning and ensembles need.
manifest["given_files"] records each copied file's source path and sha256.

Memory: files are streamed. Pass 1 trains sentencepiece (subword only). Pass 2 tokenizes,
filters and writes provisional ids (one per distinct piece) to disk; the vocabulary is then built
from their counts and the ids are remapped. What stays in memory is the piece table plus
4 bytes per sentence and side.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nmt.bundle_options import PreprocessOptions
from nmt.corpus import ParallelSource, file_entry, open_sources
from nmt.errors import DataError
from nmt.manifest import (
    check_files,
    manifest_entries,
    meta_files,
    parse_manifest,
    read_manifest,
    write_manifest,
)
from nmt.textio import atomic_dir, normalize
from nmt.tokenarray import TokenArray, TokenArrayWriter
from nmt.tokenizers import (
    CharTokenizer,
    Tokenizer,
    WordTokenizer,
    copy_sentencepiece,
    load_tokenizer,
    train_sentencepiece,
)
from nmt.vocab import UNK, Vocabulary

ProgressFn = Callable[[str, int, int], None]  # (stage, rows done, rows in total)
_EVERY = 10_000  # rows between progress reports


def _silent(stage: str, done: int, total: int) -> None:
    pass


def _drop_reason(lengths: Sequence[int], max_tokens: int, max_ratio: float) -> str | None:
    if max(lengths) > max_tokens:
        return "too_long"
    src = lengths[0]
    if any(max(src, n) > max_ratio * min(src, n) for n in lengths[1:]):
        return "ratio"
    return None


@dataclass
class _Builder:
    """One run of `build`: the passes over the corpus, writing into the directory `tmp`."""

    opt: PreprocessOptions
    sources: dict[str, ParallelSource]
    totals: dict[str, int]  # rows per split
    tmp: Path
    report: ProgressFn
    tokenizers: dict[str, Tokenizer] = field(default_factory=dict)  # side -> tokenizer
    vocabs: dict[str, Vocabulary] = field(default_factory=dict)  # side -> vocabulary
    given_files: dict[str, Any] = field(default_factory=dict)  # bundle file -> its source

    @property
    def groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """(file suffix, sides) sharing one tokenizer model, piece table and vocabulary."""
        sides = self.opt.sides
        return [("", sides)] if self.opt.is_joint else [(f".{s}", (s,)) for s in sides]

    @property
    def vocab_groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """(file suffix, sides) sharing one vocabulary."""
        sides = self.opt.sides
        return [("", sides)] if self.opt.is_joint_vocab else [(f".{s}", (s,)) for s in sides]

    def _rows(self, split: str, stage: str) -> Iterator[list[str]]:
        """Normalised texts of each row, with progress reports."""
        total = self.totals[split]
        for number, row in enumerate(self.sources[split].rows(), start=1):
            if number % _EVERY == 0:
                self.report(stage, number, total)
            yield [normalize(text) for text in row]
        self.report(stage, total, total)

    def _sentences(self, columns: list[int], stage: str) -> Iterator[str]:
        """Training sentences of some sides, from pairs with text on every side."""
        kept = 0
        for texts in self._rows("train", stage):
            if all(texts):
                kept += 1
                yield from (texts[k] for k in columns)
        if not kept:
            raise DataError("no training pair has text on every side", self.sources["train"].label)

    def load_given_vocabs(self) -> None:
        """Read the given vocabulary files first, so that a bad one fails before any pass."""
        given = self.opt.given_vocabs
        for suffix, group in self.vocab_groups:
            if group[0] in given:
                vocab = Vocabulary.load(given[group[0]])
                self.vocabs.update(dict.fromkeys(group, vocab))
                self.given_files[f"vocab{suffix}.txt"] = file_entry(given[group[0]])

    def make_tokenizers(self) -> None:
        """Pass 1 (subword only): train sentencepiece on the training split, or copy the given
        model."""
        opt, given = self.opt, self.opt.given_models
        for suffix, group in self.groups:
            name = f"spm{suffix}.model"
            if group[0] in given:
                tok: Tokenizer = copy_sentencepiece(given[group[0]], self.tmp / name)
                self.given_files[name] = file_entry(given[group[0]])
            elif opt.tokenizer == "subword":
                columns = [opt.sides.index(side) for side in group]
                text = self._sentences(columns, f"sentencepiece{suffix}: reading train")
                tok = train_sentencepiece(text, self.tmp / name, opt.vocab_size, opt.spm_type)
            else:
                tok = WordTokenizer() if opt.tokenizer == "word" else CharTokenizer()
            self.tokenizers.update({side: tok for side in group})

    def write_train(self) -> dict[str, Any]:
        """Pass 2: tokenize, filter and write provisional ids (an id per distinct piece)."""
        opt, sides = self.opt, self.opt.sides
        tables = {side: table for _, group in self.vocab_groups for table in [{}] for side in group}
        writers = {side: TokenArrayWriter(self.tmp / f"train.{side}") for side in sides}
        filtered = dict.fromkeys(("empty", "too_long", "ratio"), 0)
        for texts in self._rows("train", "train"):
            if not all(texts):
                filtered["empty"] += 1
                continue
            pieces = [self.tokenizers[s].encode(t) for s, t in zip(sides, texts, strict=True)]
            reason = _drop_reason([len(p) for p in pieces], opt.max_tokens, opt.max_ratio)
            if reason:
                filtered[reason] += 1
                continue
            for side, side_pieces in zip(sides, pieces, strict=True):
                table = tables[side]
                writers[side].add([table.setdefault(p, len(table)) for p in side_pieces])
        kept = len(writers["src"].lengths)
        lines = kept + sum(filtered.values())
        if kept == 0:
            reasons = ", ".join(f"{reason}: {n}" for reason, n in filtered.items())
            message = f"no training pairs left after filtering {lines} lines ({reasons})"
            raise DataError(message, self.sources["train"].label)
        files, unk = {}, {}
        for suffix, group in self.vocab_groups:
            pieces = list(tables[group[0]])  # insertion order = provisional id
            counts = {side: writers[side].counts(len(pieces)) for side in group}
            if group[0] not in self.vocabs:  # not given: built from the kept pairs' counts
                counted = dict(zip(pieces, sum(counts.values()).tolist(), strict=True))
                vocab = Vocabulary.build(counted, opt.min_freq, opt.max_vocab)
                self.vocabs.update(dict.fromkeys(group, vocab))
            vocab = self.vocabs[group[0]]
            vocab.save(self.tmp / f"vocab{suffix}.txt")
            lut = np.array([vocab.index(p) for p in pieces], np.int32)  # provisional -> final
            for side in group:
                unk[side] = int(counts[side][lut == UNK].sum())
                files[side] = writers[side].finish(lut)
        return self._entry("train", lines, writers, files, filtered=filtered, unk=unk)

    def write_eval(self, split: str) -> dict[str, Any]:
        """Every line kept (aligned with the references): ids and normalised text."""
        sides = self.opt.sides
        writers = {side: TokenArrayWriter(self.tmp / f"{split}.{side}") for side in sides}
        empty = lines = 0
        unk = dict.fromkeys(sides, 0)
        with contextlib.ExitStack() as stack:
            paths = {side: self.tmp / f"{split}.{side}.txt" for side in sides}
            out = {
                side: stack.enter_context(open(p, "w", encoding="utf-8"))
                for side, p in paths.items()
            }
            for texts in self._rows(split, split):
                lines += 1
                empty += not all(texts)
                for side, text in zip(sides, texts, strict=True):
                    out[side].write(text + "\n")
                    ids = self.vocabs[side].encode(self.tokenizers[side].encode(text))
                    unk[side] += ids.count(UNK)
                    writers[side].add(ids)
        files = {side: {**w.finish(), "text": paths[side].name} for side, w in writers.items()}
        return self._entry(split, lines, writers, files, empty_kept=empty, unk=unk)

    def _entry(
        self,
        split: str,
        lines: int,
        writers: dict[str, TokenArrayWriter],
        files: dict[str, Any],
        **counts: Any,
    ) -> dict[str, Any]:
        sentences = len(writers["src"].lengths)
        tokens = {side: w.tokens for side, w in writers.items()}
        return {
            "lines": lines,
            "sentences": sentences,
            "tokens": tokens,
            **counts,
            "files": files,
            "source": self.sources[split].describe(),
        }

    def manifest(self, splits: dict[str, Any]) -> dict[str, Any]:
        opt = self.opt
        return {
            "src_lang": opt.src,
            "tasks": list(opt.tgt),
            "joint": opt.is_joint,
            "joint_vocab": opt.is_joint_vocab,
            "tokenizer": {side: self.tokenizers[side].manifest_entry() for side in opt.sides},
            "vocab": {
                side: {"file": f"vocab{suffix}.txt", "size": len(self.vocabs[side])}
                for suffix, group in self.vocab_groups
                for side in group
            },
            "given_files": self.given_files,
            "splits": splits,
            "options": json.loads(json.dumps(dataclasses.asdict(opt), default=str)),
        }


def build(options: PreprocessOptions, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Read, tokenize, filter and binarize a corpus into the bundle `options.out`; return the
    manifest. The bundle appears only when complete (it is built under a temporary name)."""
    opt = options
    opt.check()
    paths = {"train": opt.train, "valid": opt.valid, "test": opt.test}
    sources = open_sources(
        (opt.src, *opt.tgt),
        paths,
        opt.format,
        opt.columns,
        opt.errors,
        opt.hf_dataset,
        opt.hf_config,
        opt.hf_split,
    )
    totals = {split: source.check() for split, source in sources.items()}
    for split, total in totals.items():
        if total == 0:
            raise DataError(f"empty corpus: the {split} split has no lines", sources[split].label)
    try:
        with atomic_dir(opt.out, opt.force) as tmp:
            builder = _Builder(opt, sources, totals, tmp, progress or _silent)
            builder.load_given_vocabs()
            builder.make_tokenizers()
            splits = {"train": builder.write_train()}  # builds the vocabularies
            for split in [split for split in sources if split != "train"]:
                splits[split] = builder.write_eval(split)
            manifest = write_manifest(tmp, builder.manifest(splits))
    except OSError as err:
        raise DataError(f"cannot write the bundle: {err.strerror or err}", opt.out) from None
    return manifest


class Bundle:
    """An opened bundle: languages, vocabularies, tokenizers and memory-mapped splits."""

    def __init__(self, path: Path, manifest: dict[str, Any], files: Mapping[str, bytes]):
        """`files`: the contents of the vocabulary and tokenizer model files."""
        missing = [name for name in meta_files(manifest)[1:] if name not in files]
        if missing:
            raise DataError("missing", path / missing[0])
        self.path = path
        self.manifest = manifest
        self.src_lang: str = manifest["src_lang"]
        self.tasks: tuple[str, ...] = tuple(manifest["tasks"])
        self.splits: tuple[str, ...] = tuple(manifest["splits"])
        vocabs = {
            e["file"]: Vocabulary.load(path / e["file"], files[e["file"]])
            for e in manifest["vocab"].values()
        }
        tokenizers: dict[str, Tokenizer] = {}  # one object per distinct entry (joint: shared)
        for entry in manifest["tokenizer"].values():
            key = json.dumps(entry, sort_keys=True)
            if key not in tokenizers:
                tokenizers[key] = load_tokenizer(entry, path, files)

        def tokenizer(side: str) -> Tokenizer:
            return tokenizers[json.dumps(manifest["tokenizer"][side], sort_keys=True)]

        self.src_vocab = vocabs[manifest["vocab"]["src"]["file"]]
        self.tgt_vocabs = {t: vocabs[manifest["vocab"][t]["file"]] for t in self.tasks}
        self.src_tokenizer = tokenizer("src")
        self.tgt_tokenizers = {t: tokenizer(t) for t in self.tasks}

    def has_split(self, split: str) -> bool:
        return split in self.manifest["splits"]

    def meta_files(self) -> list[str]:
        return meta_files(self.manifest)

    def _files(self, split: str, side: str) -> dict[str, str]:
        if split not in self.manifest["splits"]:
            raise DataError(f"no split {split!r} (splits: {', '.join(self.splits)})", self.path)
        files = self.manifest["splits"][split]["files"]
        if side not in files:
            raise DataError(f"no side {side!r} (sides: {', '.join(files)})", self.path)
        return files[side]

    def _array(self, split: str, side: str) -> TokenArray:
        files = self._files(split, side)
        return TokenArray.load(self.path / files["ids"], self.path / files["offsets"])

    def source(self, split: str) -> TokenArray:
        return self._array(split, "src")

    def target(self, split: str, task: str) -> TokenArray:
        return self._array(split, task)

    def text_path(self, split: str, side: str) -> Path:
        """Normalised text of a valid/test side (`side` = "src" or a task)."""
        files = self._files(split, side)
        if "text" not in files:
            raise DataError(f"the {split} split keeps no text (only valid and test do)", self.path)
        return self.path / files["text"]


def open_bundle(path: Path | str) -> Bundle:
    """Open the bundle at `path`, checking its files cheaply against the manifest's checksums
    (sizes, .npy headers; `nmt.manifest.verify_files` hashes them in full)."""
    path = Path(path)
    manifest = read_manifest(path)
    with manifest_entries(path / "manifest.json"):
        check_files(path, manifest)
        names = [name for name in meta_files(manifest) if (path / name).is_file()]
        return Bundle(path, manifest, {name: (path / name).read_bytes() for name in names})


def open_meta(files: Mapping[str, bytes], where: Path) -> Bundle:
    """A bundle's tokenizers and vocabularies from its meta files held in memory (a checkpoint's
    copy; `where` names them in messages). Its splits cannot be read."""
    name = where / "manifest.json"
    if "manifest.json" not in files:
        raise DataError("missing", name)
    manifest = parse_manifest(files["manifest.json"], name)
    with manifest_entries(name):
        return Bundle(where, manifest, files)
