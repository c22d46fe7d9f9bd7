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
        "spm_model",
        "src_spm_model",
        "vocab",
        "src_vocab",
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


def test_given_sentencepiece_model_and_vocabulary(runner: CliRunner, tmp_path: Path, tiny) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert _en_de(runner, tiny["train"], a, "--vocab-size", "60").exit_code == 0
    given = ["--spm-model", str(a / "spm.model"), "--vocab", str(a / "vocab.txt")]
    result = _en_de(runner, tiny["valid"], b, *given)
    assert result.exit_code == 0, result.stderr
    size = len(open_bundle(a).src_vocab)
    assert "subword bpe 60 (given), joint" in " ".join(result.stderr.split())  # rich may wrap
    assert f"vocabulary: en {size} (given), de {size} (given)" in result.stderr
    assert "warning" not in result.stderr
    assert (b / "vocab.txt").read_bytes() == (a / "vocab.txt").read_bytes()
    assert open_bundle(b).tgt_vocabs["de"] == open_bundle(a).tgt_vocabs["de"]


def test_given_per_side_files_through_the_cli(runner: CliRunner, tmp_path: Path, tiny) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    result = _en_de(runner, tiny["train"], a, "--tokenizer", "word", tgt="de,fr")
    assert result.exit_code == 0, result.stderr
    given = [
        "--src-vocab",
        str(a / "vocab.src.txt"),
        "--tgt-vocab",
        f"{a}/vocab.de.txt,{a}/vocab.fr.txt",
    ]
    result = _en_de(runner, tiny["valid"], b, "--tokenizer", "word", *given, tgt="de,fr")
    assert result.exit_code == 0, result.stderr
    assert open_bundle(b).tgt_vocabs == open_bundle(a).tgt_vocabs


def test_given_vocabulary_of_another_tokenizer_warns(runner: CliRunner, tmp_path: Path, tiny):
    a = tmp_path / "a"
    assert _en_de(runner, tiny["train"], a, "--vocab-size", "60").exit_code == 0
    given = ["--tokenizer", "word", "--vocab", str(a / "vocab.txt")]
    result = _en_de(runner, tiny["train"], tmp_path / "b", *given, quiet=True)
    assert result.exit_code == 0, result.stderr
    assert "warning:" in result.stderr and "training tokens are not in the given" in result.stderr
    assert " vocabulary " in result.stderr and "vocab.txt" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--vocab", "{spm}"], 2, "spm.model:1: expected 'token<TAB>count'"),
        (["--spm-model", "{tmp}/none.model"], 2, "none.model: no such file"),
        (["--src-vocab", "{vocab}", "--vocab", "{vocab}"], 3, "not both"),
        (["--tgt-spm-model", "{spm},"], 3, "--tgt-spm-model: empty name"),
        (["--tokenizer", "char", "--spm-model", "{spm}"], 3, "needs --tokenizer subword"),
    ],
)
def test_given_files_errors(
    runner: CliRunner, tmp_path: Path, tiny, args: list[str], code: int, message: str
) -> None:
    a = tmp_path / "a"
    assert _en_de(runner, tiny["train"], a, "--vocab-size", "60").exit_code == 0
    names = {"spm": a / "spm.model", "vocab": a / "vocab.txt", "tmp": tmp_path}
    args = [arg.format(**names) for arg in args]
    _fails(_en_de(runner, tiny["train"], tmp_path / "b", *args), code, message)
    assert not (tmp_path / "b").exists()


def _multi30k_layout(path: Path) -> None:
    """A small dataset laid out as bentrevett/multi30k: en/de columns, three splits."""
    datasets = pytest.importorskip("datasets")
    rows = {
        "en": [f"a dog number {i}" for i in range(8)],
        "de": [f"ein Hund Nummer {i}" for i in range(8)],
    }
    datasets.DatasetDict(
        train=datasets.Dataset.from_dict(rows),
        validation=datasets.Dataset.from_dict({k: v[:3] for k, v in rows.items()}),
        test=datasets.Dataset.from_dict({k: v[3:5] for k, v in rows.items()}),
    ).save_to_disk(str(path))


def test_hf_dataset_with_a_column_per_language(runner: CliRunner, tmp_path: Path) -> None:
    _multi30k_layout(tmp_path / "ds")
    hf = ["--src", "en", "--tgt", "de", "--hf-dataset", str(tmp_path / "ds")]
    result = _run(runner, *hf, "--tokenizer", "word", "--out", str(tmp_path / "b"), quiet=True)
    assert result.exit_code == 0, result.stderr
    bundle = open_bundle(tmp_path / "b")
    assert bundle.splits == ("train", "valid", "test") and len(bundle.source("train")) == 8
    text = bundle.text_path("test", "de").read_text(encoding="utf-8")
    assert text == "ein Hund Nummer 3\nein Hund Nummer 4\n"


def test_hf_hub_out_of_reach(runner: CliRunner, tmp_path: Path, monkeypatch) -> None:
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    hf = ["--src", "en", "--tgt", "de", "--hf-dataset", "nmt-tests/absent"]
    result = _run(runner, *hf, "--out", str(tmp_path / "b"))
    _fails(result, 5, "nmt-tests/absent: cannot reach the Hugging Face hub (no network?)")
    assert result.stderr.count("\n") == 1  # one line
