"""`nmt preprocess` through the CLI: exit codes, one-line errors on stderr, nothing on stdout."""

import dataclasses
import inspect
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nmt.bundle import PreprocessOptions, open_bundle
from nmt_cli.main import app
from nmt_cli.preprocess import preprocess


def _run(runner: CliRunner, *args: str, quiet: bool = False):
    return runner.invoke(app, [*(["-q"] if quiet else []), "preprocess", *args])


def _en_de(
    runner: CliRunner,
    train: str | Path,
    out: Path,
    *args: str,
    tgt: str = "de",
    quiet: bool = False,
):
    """`nmt preprocess --src en --tgt TGT --train TRAIN ARGS --out OUT`."""
    return _run(
        runner,
        "--src",
        "en",
        "--tgt",
        tgt,
        "--train",
        str(train),
        *args,
        "--out",
        str(out),
        quiet=quiet,
    )


def _fails(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_defaults_match_the_library(tmp_path: Path) -> None:
    cli = {name: p.default for name, p in inspect.signature(preprocess).parameters.items()}
    lib = {f.name: f.default for f in dataclasses.fields(PreprocessOptions)}
    for name in (
        "tokenizer",
        "spm_type",
        "joint",
        "vocab_size",
        "min_freq",
        "max_vocab",
        "max_tokens",
        "max_ratio",
        "errors",
        "force",
        "format",
    ):
        assert cli[name] == lib[name], name


def test_preprocess_prints_a_summary(runner: CliRunner, tmp_path: Path, tiny) -> None:
    out = tmp_path / "b"
    result = _en_de(runner, tiny["train"], out, "--valid", tiny["valid"], "--vocab-size", "60")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "dropped pairs: empty 0, too_long 0, ratio 0" in result.stderr
    assert "valid: 3 of 3 lines" in result.stderr
    assert open_bundle(out).splits == ("train", "valid")


def test_quiet_prints_nothing(runner: CliRunner, tmp_path: Path, tiny) -> None:
    result = _en_de(runner, tiny["train"], tmp_path / "b", "--tokenizer", "word", quiet=True)
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""


def test_multi_target(runner: CliRunner, tmp_path: Path, tiny) -> None:
    result = _en_de(
        runner,
        tiny["train"],
        tmp_path / "b",
        "--test",
        tiny["valid"],
        "--tokenizer",
        "char",
        tgt="de,fr",
    )
    assert result.exit_code == 0, result.stderr
    bundle = open_bundle(tmp_path / "b")
    assert bundle.tasks == ("de", "fr") and set(bundle.tgt_vocabs) == {"de", "fr"}
    assert len(bundle.target("test", "fr")) == len(bundle.source("test")) == 3


def test_empty_train_lines_dropped_and_valid_kept(
    runner: CliRunner, tmp_path: Path, write_corpus
) -> None:
    lines = {"en": ["one", "", "three"], "de": ["eins", "zwei", ""]}
    train, valid = write_corpus("t", lines), write_corpus("v", lines)
    result = _en_de(runner, train, tmp_path / "b", "--valid", valid, "--tokenizer", "word")
    assert result.exit_code == 0, result.stderr
    assert "train: 1 of 3 lines" in result.stderr and "empty 2" in result.stderr
    assert "2 lines with an empty side (kept, aligned)" in result.stderr
    text = open_bundle(tmp_path / "b").text_path("valid", "de").read_text(encoding="utf-8")
    assert text == "eins\nzwei\n\n"


def test_line_count_mismatch(runner: CliRunner, tmp_path: Path, write_corpus) -> None:
    train = write_corpus("train", {"en": ["a", "b", "c"], "de": ["x", "y"]})
    result = _en_de(runner, train, tmp_path / "b")
    _fails(result, 2, "train.de: has 2 lines but", "train.en has 3")
    assert not (tmp_path / "b").exists()


def test_invalid_utf8_names_file_and_line(runner: CliRunner, tmp_path: Path, write_corpus) -> None:
    train = write_corpus("train", {"en": b"ok\nalso ok\nbad\xfe\n", "de": b"a\nb\nc\n"})
    result = _en_de(runner, train, tmp_path / "b", "--tokenizer", "word")
    _fails(result, 2, "train.en:3: invalid UTF-8", "--errors replace")
    result = _en_de(runner, train, tmp_path / "b", "--tokenizer", "word", "--errors", "replace")
    assert result.exit_code == 0, result.stderr
    assert "￭\ufffd" in open_bundle(tmp_path / "b").src_vocab  # "bad" + joined U+FFFD


def test_bom_crlf_and_nul(runner: CliRunner, tmp_path: Path, write_corpus) -> None:
    valid = write_corpus("v", {"en": b"\xef\xbb\xbfa\x00b\r\nc\r\n", "de": b"x\r\ny\r\n"})
    train = write_corpus("t", {"en": ["a b", "c"], "de": ["x", "y"]})
    result = _en_de(runner, train, tmp_path / "b", "--valid", valid, "--tokenizer", "word")
    assert result.exit_code == 0, result.stderr
    bundle = open_bundle(tmp_path / "b")
    assert bundle.text_path("valid", "src").read_bytes() == b"a b\nc\n"
    assert bundle.text_path("valid", "de").read_bytes() == b"x\ny\n"


def test_long_line(runner: CliRunner, tmp_path: Path, write_corpus) -> None:
    long = "x" * 100_000
    train = write_corpus("t", {"en": ["short", long], "de": ["kurz", "lang"]})
    result = _en_de(runner, train, tmp_path / "b", "--valid", train, "--tokenizer", "char")
    assert result.exit_code == 0, result.stderr
    assert "too_long 1" in result.stderr
    assert open_bundle(tmp_path / "b").source("valid").lengths.tolist() == [5, 100_000]


def test_empty_corpus(runner: CliRunner, tmp_path: Path, write_corpus) -> None:
    train = write_corpus("train", {"en": b"", "de": b""})
    result = _en_de(runner, train, tmp_path / "b")
    _fails(result, 2, "empty corpus", "train.en")


def test_missing_file(runner: CliRunner, tmp_path: Path, write_corpus) -> None:
    train = write_corpus("train", {"en": ["a"]})
    result = _en_de(runner, train, tmp_path / "b")
    _fails(result, 2, "train.de: no such file")


def test_unknown_tokenizer(runner: CliRunner, tmp_path: Path, tiny) -> None:
    result = _en_de(runner, tiny["train"], tmp_path / "b", "--tokenizer", "bytes")
    _fails(result, 2, "'bytes' is not one of")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vocab-size", "0"], "--vocab-size must be at least 1"),
        (["--max-ratio", "0.5"], "--max-ratio must be at least 1"),
        (["--columns", "en"], "--columns names 1"),
        (["--tgt", "de,"], "--tgt: empty name"),
        (["--hf-split", "train"], "--hf-split: expected OURS=THEIRS"),
    ],
)
def test_bad_option_values(
    runner: CliRunner, tmp_path: Path, tiny, args: list[str], message: str
) -> None:
    _fails(_en_de(runner, tiny["train"], tmp_path / "b", *args), 3, message)


def test_existing_bundle_needs_force(runner: CliRunner, tmp_path: Path, tiny) -> None:
    args = [tiny["train"], tmp_path / "b", "--tokenizer", "word"]
    assert _en_de(runner, *args).exit_code == 0
    _fails(_en_de(runner, *args), 2, "already exists", "--force")
    assert _en_de(runner, *args, "--force").exit_code == 0


def test_failed_run_leaves_no_bundle(runner: CliRunner, tmp_path: Path, tiny, write_corpus) -> None:
    bad = write_corpus("bad", {"en": ["a", "b"], "de": b"x\n\xff\n"})  # fails after train
    result = _en_de(runner, tiny["train"], tmp_path / "b", "--test", bad)
    _fails(result, 2, "bad.de:2: invalid UTF-8")
    assert not [
        p for p in tmp_path.iterdir() if p.name in ("b", ".b.old") or p.name.startswith(".b.")
    ]


def test_tsv_input(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("de\tid\ten\nhallo\t1\thello\nwelt\t2\tworld\n", encoding="utf-8")
    result = _en_de(runner, path, tmp_path / "b", "--tokenizer", "word")
    assert result.exit_code == 0, result.stderr
    bundle = open_bundle(tmp_path / "b")
    assert bundle.src_vocab.decode(bundle.source("train")[0]) == ["hello"]
    assert bundle.manifest["splits"]["train"]["source"]["format"] == "tsv"


def test_jsonl_input_with_columns(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    rows = [
        {"english": "a cat", "german": "eine Katze"},
        {"english": "a dog", "german": "ein Hund"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = _en_de(
        runner, path, tmp_path / "b", "--columns", "english,german", "--tokenizer", "word"
    )
    assert result.exit_code == 0, result.stderr
    bundle = open_bundle(tmp_path / "b")
    assert bundle.tgt_vocabs["de"].decode(bundle.target("train", "de")[1]) == ["ein", "Hund"]


def test_hf_local_dataset(runner: CliRunner, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    pairs = [{"en": f"sentence {i}", "fr": f"phrase {i}"} for i in range(5)]
    datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"translation": pairs}),
        dev=datasets.Dataset.from_dict({"translation": pairs[:2]}),
    ).save_to_disk(str(tmp_path / "ds"))
    hf = ["--src", "en", "--tgt", "fr", "--hf-dataset", str(tmp_path / "ds"), "--hf-split"]
    result = _run(
        runner,
        *hf,
        "train=train,valid=dev",
        "--tokenizer",
        "word",
        "--out",
        str(tmp_path / "b"),
        quiet=True,
    )
    assert result.exit_code == 0, result.stderr
    bundle = open_bundle(tmp_path / "b")
    assert bundle.splits == ("train", "valid") and len(bundle.source("train")) == 5
    assert bundle.text_path("valid", "fr").read_text(encoding="utf-8") == "phrase 0\nphrase 1\n"
    result = _run(runner, *hf, "train=train,test=test", "--out", str(tmp_path / "c"))
    _fails(result, 2, "no split 'test'")
