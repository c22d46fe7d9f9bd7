"""`nmt preprocess`: options -> nmt.bundle.build, then a summary on stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from nmt_cli import console

_FILES = "Corpus files"
_TOKENS = "Tokenization and vocabulary"
_FILTERS = "Training-pair filters"
_UNKNOWN_SHARE = 0.05  # warn above this share of <unk> in training with a given vocabulary


def _names(value: str, option: str) -> tuple[str, ...]:
    from nmt.errors import ConfigError

    names = tuple(part.strip() for part in value.split(",")) if value else ()
    if any(not name for name in names):
        raise ConfigError(f"{option}: empty name in {value!r}")
    return names


def _split_map(value: str) -> tuple[tuple[str, str], ...]:
    from nmt.errors import ConfigError

    pairs = []
    for item in _names(value, "--hf-split"):
        ours, eq, theirs = item.partition("=")
        if not eq or not ours or not theirs:
            raise ConfigError(
                f"--hf-split: expected OURS=THEIRS, e.g. valid=validation; got {item!r}"
            )
        pairs.append((ours, theirs))
    return tuple(pairs)


def _summary(manifest: dict[str, Any], out: Path) -> None:
    langs = {"src": manifest["src_lang"], **{task: task for task in manifest["tasks"]}}
    given = manifest["given_files"]
    tok = manifest["tokenizer"]["src"]
    kind = tok["type"] + (f" {tok['spm_type']} {tok['vocab_size']}" if "spm_type" in tok else "")
    if tok.get("model") in given:
        kind += " (given)"
    joint = "joint" if manifest["joint"] else "separate"
    if manifest["joint_vocab"] != manifest["joint"]:
        joint += ", " + ("joint" if manifest["joint_vocab"] else "separate") + " vocabularies"
    name = escape(str(out))  # a path is not markup
    console.info(
        f"[bold]{name}[/bold]: {langs['src']} -> {','.join(manifest['tasks'])}; {kind}, {joint}"
    )
    sizes = ", ".join(
        f"{langs[side]} {entry['size']:,}" + (" (given)" if entry["file"] in given else "")
        for side, entry in manifest["vocab"].items()
    )
    console.info(f"  vocabulary: {sizes}")
    for split, entry in manifest["splits"].items():
        tokens = ", ".join(f"{langs[side]} {n:,}" for side, n in entry["tokens"].items())
        unknown = ", ".join(f"{langs[side]} {n:,}" for side, n in entry["unk"].items() if n)
        console.info(
            f"  {split}: {entry['sentences']:,} of {entry['lines']:,} lines; tokens {tokens}"
            + (f"; <unk> {unknown}" if unknown else "")
        )
        if "filtered" in entry:
            dropped = ", ".join(f"{reason} {n:,}" for reason, n in entry["filtered"].items())
            console.info(f"    dropped pairs: {dropped}")
        elif entry.get("empty_kept"):
            console.info(f"    {entry['empty_kept']:,} lines with an empty side (kept, aligned)")
    _warn_unknown(manifest, langs)


def _warn_unknown(manifest: dict[str, Any], langs: dict[str, str]) -> None:
    """A given vocabulary that misses many training tokens is likely not the tokenizer's."""
    train = manifest["splits"]["train"]
    for side, entry in manifest["vocab"].items():
        source = manifest["given_files"].get(entry["file"])
        share = train["unk"][side] / max(train["tokens"][side], 1)
        if source and share > _UNKNOWN_SHARE:
            console.warn(
                f"{share:.0%} of the {langs[side]} training tokens are not in the given "
                f"vocabulary {source['path']} (made for another tokenizer?)"
            )


def _verify(bundle: Path) -> None:
    """Hash every file of `bundle` against its manifest: OK on stdout, or a DataError."""
    from nmt.errors import DataError
    from nmt.manifest import verify_files

    with console.cli_errors():
        problems = verify_files(bundle)
        if problems:
            raise DataError(f"differs from its manifest.json: {', '.join(problems)}", bundle)
        typer.echo(f"{bundle}: OK")


def preprocess(
    src: Annotated[
        str, typer.Option(help="Source language code (the file suffix, e.g. en). Required.")
    ] = "",
    tgt: Annotated[
        str,
        typer.Option(
            help="Target language code(s); several, comma-separated, e.g. de,fr,cs. Required."
        ),
    ] = "",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Bundle directory to create. Required.")
    ] = None,
    train: Annotated[
        str,
        typer.Option(
            help="Training data: a prefix (PREFIX.LANG or PREFIX.LANG.gz per language), "
            "or one .tsv/.jsonl file.",
            rich_help_panel=_FILES,
        ),
    ] = "",
    valid: Annotated[
        str, typer.Option(help="Validation data, like --train (optional).", rich_help_panel=_FILES)
    ] = "",
    test: Annotated[
        str, typer.Option(help="Test data, like --train (optional).", rich_help_panel=_FILES)
    ] = "",
    format: Annotated[
        Literal["auto", "text", "tsv", "jsonl", "hf"],
        typer.Option(
            help="Input format; auto: .tsv/.tab -> tsv, .jsonl/.json -> jsonl (also .gz), "
            "--hf-dataset -> hf, else text files per language.",
            rich_help_panel=_FILES,
        ),
    ] = "auto",
    columns: Annotated[
        str,
        typer.Option(
            help="Column names for the source and each target, comma-separated (default: the "
            "language codes). TSV: a first line containing them all is a header; otherwise "
            "fields are positional. JSONL/HF: keys, flat or inside a 'translation' dict.",
            rich_help_panel=_FILES,
        ),
    ] = "",
    hf_dataset: Annotated[
        str,
        typer.Option(
            help="Hugging Face dataset: a save_to_disk directory or a load_dataset name/path.",
            rich_help_panel=_FILES,
        ),
    ] = "",
    hf_config: Annotated[
        str, typer.Option(help="Dataset configuration name, e.g. de-en.", rich_help_panel=_FILES)
    ] = "",
    hf_split: Annotated[
        str,
        typer.Option(
            help="Our splits -> dataset splits \\[default: train=train,valid=validation,test=test, "
            "valid and test where present].",
            rich_help_panel=_FILES,
        ),
    ] = "",
    errors: Annotated[
        Literal["strict", "replace"],
        typer.Option(
            help="Invalid UTF-8: strict = error naming file and line; replace = U+FFFD.",
            rich_help_panel=_FILES,
        ),
    ] = "strict",
    tokenizer: Annotated[
        Literal["word", "char", "subword"],
        typer.Option(
            help="word: words and punctuation (joiner ￭ marks no-space); char: characters "
            "(▁ = space); subword: sentencepiece trained on the training split.",
            rich_help_panel=_TOKENS,
        ),
    ] = "subword",
    spm_type: Annotated[
        Literal["bpe", "unigram"],
        typer.Option(help="Sentencepiece model type (subword).", rich_help_panel=_TOKENS),
    ] = "bpe",
    joint: Annotated[
        bool | None,
        typer.Option(
            "--joint/--separate",
            help="One tokenizer model and vocabulary for all sides, or one per side "
            "\\[default: joint for subword, separate for word and char].",
            show_default=False,
            rich_help_panel=_TOKENS,
        ),
    ] = None,
    joint_vocab: Annotated[
        bool | None,
        typer.Option(
            "--joint-vocab/--separate-vocab",
            help="One vocabulary for all sides, or one per side (with a joint sentencepiece "
            "model each side keeps only the pieces it uses: a smaller output layer) "
            "\\[default: as --joint/--separate].",
            show_default=False,
            rich_help_panel=_TOKENS,
        ),
    ] = None,
    vocab_size: Annotated[
        int,
        typer.Option(
            help="Sentencepiece pieces (subword; a soft limit on tiny corpora).",
            rich_help_panel=_TOKENS,
        ),
    ] = 8000,
    min_freq: Annotated[
        int,
        typer.Option(
            help="Keep tokens seen at least this often in training.", rich_help_panel=_TOKENS
        ),
    ] = 1,
    max_vocab: Annotated[
        int,
        typer.Option(
            help="At most this many tokens per vocabulary besides the 4 specials, most frequent "
            "first (the cap for word/char); 0 = no cap.",
            rich_help_panel=_TOKENS,
        ),
    ] = 50_000,
    spm_model: Annotated[
        str,
        typer.Option(
            metavar="FILE",
            help="An existing sentencepiece model (e.g. another bundle's spm.model) for every "
            "side, copied into the bundle instead of training one.",
            rich_help_panel=_TOKENS,
        ),
    ] = "",
    src_spm_model: Annotated[
        str,
        typer.Option(
            metavar="FILE",
            help="An existing sentencepiece model for the source side only (separate models).",
            rich_help_panel=_TOKENS,
        ),
    ] = "",
    tgt_spm_model: Annotated[
        str,
        typer.Option(
            metavar="FILES",
            help="Existing sentencepiece model(s) for the targets: one for every target, or one "
            "per target, comma-separated in --tgt order. A side given none trains its own.",
            rich_help_panel=_TOKENS,
        ),
    ] = "",
    vocab: Annotated[
        str,
        typer.Option(
            metavar="FILE",
            help="An existing vocabulary (a bundle's vocab.txt: token<TAB>count lines) for every "
            "side, used as it is (--min-freq and --max-vocab do not apply; tokens it lacks are "
            "<unk>). With the same --spm-model, two bundles then share token ids.",
            rich_help_panel=_TOKENS,
        ),
    ] = "",
    src_vocab: Annotated[
        str,
        typer.Option(
            metavar="FILE",
            help="An existing vocabulary for the source side only (separate vocabularies).",
            rich_help_panel=_TOKENS,
        ),
    ] = "",
    tgt_vocab: Annotated[
        str,
        typer.Option(
            metavar="FILES",
            help="Existing vocabularies for the targets: one for every target, or one per "
            "target, comma-separated in --tgt order. A side given none builds its own.",
            rich_help_panel=_TOKENS,
        ),
    ] = "",
    max_tokens: Annotated[
        int,
        typer.Option(
            help="Drop training pairs with a side longer than this (tokens).",
            rich_help_panel=_FILTERS,
        ),
    ] = 250,
    max_ratio: Annotated[
        float,
        typer.Option(
            help="Drop training pairs whose source/target length ratio (either way) exceeds this.",
            rich_help_panel=_FILTERS,
        ),
    ] = 9.0,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing bundle.")] = False,
    verify: Annotated[
        Path | None,
        typer.Option(
            metavar="BUNDLE",
            help="Instead of building: hash every file of the bundle BUNDLE against its "
            "manifest.json and print OK, or name the files that differ (exit code 2).",
        ),
    ] = None,
) -> None:
    """Tokenize, filter and binarize a parallel corpus into a bundle directory.

    Every line is normalised first (control characters and Unicode spaces become one space).
    A training pair is dropped, and counted, when any side is empty, too long or out of ratio.
    The whole pair goes, so all sides stay aligned.
    Valid and test keep every line, so that references keep their line numbers.
    """
    from nmt.bundle import PreprocessOptions, build

    if verify is not None:
        return _verify(verify)
    for option, value in (("--src", src), ("--tgt", tgt), ("--out", out)):
        if not value:  # required, but optional to typer so that --verify can go alone
            raise typer.BadParameter("missing (required unless --verify)", param_hint=option)
    with console.cli_errors():
        options = PreprocessOptions(
            src=src,
            tgt=_names(tgt, "--tgt"),
            out=out,
            train=train,
            valid=valid,
            test=test,
            format=format,
            columns=_names(columns, "--columns"),
            hf_dataset=hf_dataset,
            hf_config=hf_config,
            hf_split=_split_map(hf_split),
            tokenizer=tokenizer,
            spm_type=spm_type,
            joint=joint,
            joint_vocab=joint_vocab,
            vocab_size=vocab_size,
            min_freq=min_freq,
            max_vocab=max_vocab,
            spm_model=spm_model,
            src_spm_model=src_spm_model,
            tgt_spm_model=_names(tgt_spm_model, "--tgt-spm-model"),
            vocab=vocab,
            src_vocab=src_vocab,
            tgt_vocab=_names(tgt_vocab, "--tgt-vocab"),
            max_tokens=max_tokens,
            max_ratio=max_ratio,
            errors=errors,
            force=force,
        )
        if hf_dataset and console.is_quiet():
            import datasets

            datasets.disable_progress_bars()
        with console.progress(transient=True) as bar:
            stages: dict[str, Any] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in stages:
                    stages[stage] = bar.add_task(stage, total=total)
                bar.update(stages[stage], completed=done)

            manifest = build(options, report)
        _summary(manifest, out)
