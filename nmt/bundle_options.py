"""The settings of `nmt preprocess` (PreprocessOptions), and the rules that tie them together:
which sides share a tokenizer model and a vocabulary, and which sides use given files.

Joint or separate: a subword tokenizer is joint by default (one model for every side), word and
char separate; the vocabularies follow the tokenizer unless --joint-vocab/--separate-vocab says
otherwise. Given files (--spm-model, --vocab: one file for every side; --src-*/--tgt-*: per
side) set that choice where it is not stated, and must agree with it where it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nmt.corpus import Format
from nmt.errors import ConfigError
from nmt.textio import Errors
from nmt.tokenizers import SpmType, TokenizerName


@dataclass(frozen=True)
class PreprocessOptions:
    """What `nmt preprocess` does; each field is the CLI option of the same name."""

    src: str
    tgt: tuple[str, ...]
    out: Path
    train: str = ""  # file prefix (text) or file (tsv, jsonl)
    valid: str = ""
    test: str = ""
    format: Format = "auto"
    columns: tuple[str, ...] = ()  # one per side, source first; () = the language codes
    hf_dataset: str = ""
    hf_config: str = ""
    hf_split: tuple[tuple[str, str], ...] = ()  # (our split, dataset split)
    tokenizer: TokenizerName = "subword"
    spm_type: SpmType = "bpe"
    joint: bool | None = None  # None: joint for subword, separate for word and char
    joint_vocab: bool | None = None  # None: as `joint`; False with a joint sentencepiece model
    # gives each side a vocabulary of only the pieces it uses (a smaller output layer)
    vocab_size: int = 8000
    min_freq: int = 1
    max_vocab: int = 50_000
    max_tokens: int = 250
    max_ratio: float = 9.0
    errors: Errors = "strict"
    force: bool = False
    # Existing files used instead of trained/built ones: one for every side, or per side (a
    # target file list holds one file for every target or one per target, in `tgt` order).
    spm_model: str = ""
    src_spm_model: str = ""
    tgt_spm_model: tuple[str, ...] = ()
    vocab: str = ""
    src_vocab: str = ""
    tgt_vocab: tuple[str, ...] = ()

    @property
    def sides(self) -> tuple[str, ...]:
        return ("src", *self.tgt)

    @property
    def is_joint(self) -> bool:
        if self.joint is not None:
            return self.joint
        if self.spm_model or self.src_spm_model or self.tgt_spm_model:
            return bool(self.spm_model)
        return self.tokenizer == "subword"

    @property
    def is_joint_vocab(self) -> bool:
        if self.joint_vocab is not None:
            return self.joint_vocab
        if self.vocab or self.src_vocab or self.tgt_vocab:
            return bool(self.vocab)
        return self.is_joint

    @property
    def given_models(self) -> dict[str, Path]:
        """Side -> the existing sentencepiece model it uses (sides not listed train one)."""
        return _per_side(self.spm_model, self.src_spm_model, self.tgt_spm_model, self.tgt)

    @property
    def given_vocabs(self) -> dict[str, Path]:
        """Side -> the existing vocabulary file it uses (sides not listed build one)."""
        return _per_side(self.vocab, self.src_vocab, self.tgt_vocab, self.tgt)

    def check(self) -> None:
        lows = {"vocab_size": 1, "min_freq": 1, "max_vocab": 0, "max_tokens": 1, "max_ratio": 1}
        for name, low in lows.items():
            if getattr(self, name) < low:
                option = name.replace("_", "-")
                raise ConfigError(f"--{option} must be at least {low}, got {getattr(self, name)}")
        _check_given(
            "spm-model",
            self.spm_model,
            self.src_spm_model,
            self.tgt_spm_model,
            self.tgt,
            self.is_joint,
            "--joint/--separate",
        )
        _check_given(
            "vocab",
            self.vocab,
            self.src_vocab,
            self.tgt_vocab,
            self.tgt,
            self.is_joint_vocab,
            "--joint-vocab/--separate-vocab",
        )
        if self.given_models and self.tokenizer != "subword":
            raise ConfigError(
                f"a given sentencepiece model needs --tokenizer subword, not {self.tokenizer}"
            )


def _per_side(
    joint: str, src: str, tgt: tuple[str, ...], tasks: tuple[str, ...]
) -> dict[str, Path]:
    if joint:
        return dict.fromkeys(("src", *tasks), Path(joint))
    given = {"src": Path(src)} if src else {}
    files = tgt * len(tasks) if len(tgt) == 1 else tgt
    return given | {task: Path(file) for task, file in zip(tasks, files, strict=False)}


def _check_given(
    option: str,
    joint: str,
    src: str,
    tgt: tuple[str, ...],
    tasks: tuple[str, ...],
    is_joint: bool,
    switch: str,
) -> None:
    """The options of one kind of given file (--spm-model or --vocab) agree with each other and
    with the joint/separate choice."""
    per_side = f"--src-{option}/--tgt-{option}"
    if joint and (src or tgt):
        raise ConfigError(f"give --{option} (every side) or {per_side} (per side), not both")
    if len(tgt) not in (0, 1, len(tasks)):
        raise ConfigError(
            f"--tgt-{option} names {len(tgt)} files for the targets "
            f"{','.join(tasks)}: give one for every target, or one per target"
        )
    if joint and not is_joint:
        raise ConfigError(
            f"--{option} is one file for every side; {switch} chose one per side: give {per_side}"
        )
    if (src or tgt) and is_joint:
        raise ConfigError(
            f"{per_side} give one file per side; {switch} chose one for every side: give --{option}"
        )
