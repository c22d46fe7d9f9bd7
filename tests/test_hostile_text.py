"""Hostile text through `nmt preprocess`, `nmt translate` and `nmt evaluate` (property tests).

Files are built from random bytes (invalid UTF-8 included), random Unicode, the characters some
line readers take for line breaks (\\v \\f \\x1c-\\x1e \\x85 U+2028 U+2029, a lone \\r), NUL and
other controls, BOMs, CRLF, lines of thousands of tokens, empty files and files without a final
newline. The oracle is the README's text rules, computed here from the bytes: lines end at LF
(a CR before it is dropped), a last line without LF counts, and a line that is not UTF-8 is an
error naming the file and that line. Every run must succeed with one output line per input line
or exit with code 2 and that message; nothing else, never a traceback.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from nmt.errors import DataError
from nmt.textio import available_windows, decode_lines
from nmt_cli.main import app

from conftest import REVERSAL_SYMBOLS, TINY

# What str.splitlines(), and so many line readers, take for a line break, besides LF.
BREAK_LIKE = ["\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = ["\x00", "\x01", "\x07", "\x1b", "\x1f", "\x7f", "\t", "\u00a0", "\u3000", "\u200b",
            "\ufeff", "\ufffd", "\uffed", "\u2581", "<\u2581>", "\U0010ffff"]
BAD_UTF8 = [b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]
BOMS = [b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]
BLANK = ("Cc", "Zs", "Zl", "Zp")  # the Unicode categories that normalisation makes a space

_words = st.lists(st.sampled_from(REVERSAL_SYMBOLS), min_size=1, max_size=12).map(" ".join)
_unicode = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_text_piece = st.one_of(
    _unicode.map(str.encode),
    st.sampled_from(BREAK_LIKE + CONTROLS).map(str.encode),
    st.sampled_from([BOMS[0], b"\r"]),
    _words.map(str.encode),
)
_byte_piece = st.one_of(_text_piece, st.binary(max_size=12), st.sampled_from(BAD_UTF8 + BOMS))


def _line(piece: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A line's content, with no LF in it: the file strategy places the line ends."""
    short = st.lists(piece, max_size=5).map(lambda parts: b"".join(parts).replace(b"\n", b""))
    long = st.builds(lambda word, n: (" ".join([word] * n)).encode(),
                     st.sampled_from([*REVERSAL_SYMBOLS, "\u00e9t\u00e9", "\x00", "\u2028"]),
                     st.integers(1000, 4000))
    return st.sampled_from([short, short, short, long]).flatmap(lambda kind: kind)


_lines = {"bytes": _line(_byte_piece), "text": _line(_text_piece)}


@st.composite
def hostile_file(draw: st.DrawFn, lines: int | None = None, final: bool | None = None) -> bytes:
    """File contents: `lines` lines (drawn when None), LF or CRLF ends, the last one only if
    `final` (drawn when None), maybe a BOM; half the files hold only valid UTF-8, so that
    strict runs get past reading."""
    count = draw(st.integers(0, 6)) if lines is None else lines
    line = _lines[draw(st.sampled_from(["bytes", "text"]))]
    body = b"".join(draw(line) + draw(st.sampled_from([b"\n", b"\r\n"])) for _ in range(count))
    if not (draw(st.booleans()) if final is None else final):
        body = body.removesuffix(b"\n")  # no final newline (a CR may be left at the end)
    return draw(st.sampled_from([b"", BOMS[0]])) + body


def aligned_files(sides: int = 2) -> st.SearchStrategy[tuple[bytes, ...]]:
    """Files of one line count each (a last empty line without LF drops one), or, one time in
    four, of independent line counts."""
    same = st.tuples(st.integers(0, 6), st.booleans()).flatmap(
        lambda shape: st.tuples(*[hostile_file(*shape)] * sides))
    free = st.tuples(*[hostile_file()] * sides)
    return st.sampled_from([same, same, same, free]).flatmap(lambda kind: kind)


def split_lines(data: bytes) -> list[bytes]:
    """Lines by the README's rules: each LF ends one; a last line without LF counts."""
    lines = data.split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


def count_lines(data: bytes) -> int:
    return len(split_lines(data))


def first_bad_line(data: bytes) -> int | None:
    """The 1-based number of the first line that is not UTF-8, or None."""
    for number, raw in enumerate(split_lines(data), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return None


def blank_lines(data: bytes) -> list[bool]:
    """Per line, whether it normalises to nothing: only controls and Unicode spaces, once the
    BOM at the start of the file is removed."""
    lines = split_lines(data)
    lines[:1] = [line.removeprefix(BOMS[0]) for line in lines[:1]]
    return [all(ch.isspace() or unicodedata.category(ch) in BLANK
                for ch in raw.decode("utf-8", "replace")) for raw in lines]


def assert_clean_exit(result: Result) -> None:
    """Exit code 0 or 2 and no traceback (CliRunner catches what would have been one)."""
    event(f"exit {result.exit_code}")  # --hypothesis-show-statistics: how often each outcome
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, f"{result.exception!r}\n{result.stderr}"
    assert result.exit_code in (0, 2), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def assert_names_bad_line(result: Result, files: dict[Path, bytes]) -> None:
    """Exit 2 naming one of the files with invalid UTF-8 and its first such line."""
    bad = {f"{path}:{first_bad_line(data)}:" for path, data in files.items()
           if first_bad_line(data)}
    assert result.exit_code == 2, result.stderr
    assert any(where in result.stderr for where in bad), (bad, result.stderr)


def assert_normalised(lines: list[str]) -> None:
    """The README's normalisation: no control characters or Unicode spaces but single spaces,
    no leading or trailing space."""
    for text in lines:
        assert text == text.strip(" ") and "  " not in text, repr(text)
        blanks = {ch for ch in text if ch.isspace() or unicodedata.category(ch) in BLANK}
        assert blanks <= {" "}, repr(text)


def read_output(path: Path) -> list[str]:
    """Output lines, checked to end in LF and to hold no other line break."""
    text = path.read_bytes().decode("utf-8")
    assert text == "" or text.endswith("\n")
    lines = text.split("\n")[:-1]
    assert len(text.splitlines()) == len(lines), "an output line holds a line-break-like char"
    return lines


runner = CliRunner()
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


# --- nmt preprocess -----------------------------------------------------------------------

def _good(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    """Write `data` at `path`, or compressed at `path`.gz; return the path written."""
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _preprocess(root: Path, options: list[str]) -> Result:
    return runner.invoke(app, ["-q", "preprocess", "--src", "en", "--tgt", "de",
                               "--out", str(root / "bundle"), *options])


def _check_bundle(root: Path, lines: dict[str, int]) -> None:
    """The manifest counts `lines[split]` lines per split; valid and test keep every one, and
    their normalised text with it."""
    manifest = json.loads((root / "bundle" / "manifest.json").read_text())
    assert {split: entry["lines"] for split, entry in manifest["splits"].items()} == lines
    for split, entry in manifest["splits"].items():
        if split != "train":
            assert entry["sentences"] == lines[split]
            for side in ("src", "de"):
                kept = read_output(root / "bundle" / f"{split}.{side}.txt")
                assert len(kept) == lines[split]
                assert_normalised(kept)


def _expect_preprocess(result: Result, root: Path, files: dict[str, tuple[Path, Path]],
                       contents: dict[Path, bytes], errors: str) -> None:
    """`files`: split -> (source file, target file), `contents`: what each file holds."""
    assert_clean_exit(result)
    for en, de in files.values():  # line counts are checked for every split first
        if count_lines(contents[en]) != count_lines(contents[de]):
            assert result.exit_code == 2
            assert str(en) in result.stderr and str(de) in result.stderr, result.stderr
            return
    for en, _ in files.values():
        if count_lines(contents[en]) == 0:  # a deliberate error: an empty split
            assert result.exit_code == 2 and f"{en}: empty corpus" in result.stderr
            return
    if errors == "strict" and any(first_bad_line(data) for data in contents.values()):
        assert_names_bad_line(result, contents)
        return
    assert result.exit_code == 0, result.stderr
    _check_bundle(root, {split: count_lines(contents[en]) for split, (en, _) in files.items()})


def _run_text_corpus(splits: dict[str, tuple[bytes, bytes]], options: list[str], errors: str,
                     gz: bool = False) -> None:
    """Write each split as PREFIX.en and PREFIX.de (gzipped if `gz`), preprocess, check."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files, contents, prefixes = {}, {}, []
        for split, sides in splits.items():
            files[split] = tuple(write(root / f"{split}.{lang}", data, gz)
                                 for lang, data in zip(("en", "de"), sides, strict=True))
            contents.update(zip(files[split], sides, strict=True))
            prefixes += [f"--{split}", str(root / split)]
        result = _preprocess(root, [*options, *prefixes, "--errors", errors])
        _expect_preprocess(result, root, files, contents, errors)


@SETTINGS
@given(train=aligned_files(), valid=aligned_files(),
       tokenizer=st.sampled_from(["word", "char"]),
       errors=st.sampled_from(["strict", "replace"]), gz=st.booleans())
def test_preprocess_hostile_corpus(train, valid, tokenizer, errors, gz):
    """Hostile lines in front of a good training corpus, and as the whole valid split."""
    splits = {"train": (train[0] + _good(TINY["en"]), train[1] + _good(TINY["de"])),
              "valid": valid}
    _run_text_corpus(splits, ["--tokenizer", tokenizer], errors, gz)


@settings(SETTINGS, max_examples=10)
@given(train=aligned_files(), test=aligned_files(), errors=st.sampled_from(["strict", "replace"]),
       spm_type=st.sampled_from(["bpe", "unigram"]))
def test_preprocess_hostile_subword(train, test, errors, spm_type):
    """Sentencepiece trained on hostile lines in front of a good corpus, then a hostile test
    split."""
    splits = {"train": (train[0] + _good(TINY["en"] * 2), train[1] + _good(TINY["de"] * 2)),
              "test": test}
    # Room for every character drawn (sentencepiece requires one piece per character).
    options = ["--tokenizer", "subword", "--vocab-size", "2000", "--spm-type", spm_type]
    _run_text_corpus(splits, options, errors)


SURROGATES = ["\ud800", "\udfff", "a\udc80b"]
_field = st.one_of(st.none(), _unicode, _words,
                   st.sampled_from(BREAK_LIKE + CONTROLS + SURROGATES + ["en", "de"]))


@st.composite
def record_line(draw: st.DrawFn, tsv: bool) -> tuple[bytes, str]:
    """(a line, its kind): "record" (a field for en and for de), "surrogate" (a record with a
    lone surrogate, as a JSON escape or as bytes: no UTF-8) or "junk" (no TSV row of 2 fields,
    no JSON)."""
    if draw(st.integers(0, 3)) == 0:
        return b"#\t#\t" + draw(_lines["bytes"]), "junk"
    en, de = (draw(_field) or "" for _ in range(2))
    if tsv:
        text = "\t".join(re.sub("[\t\n]", " ", field) for field in (en, de))
    elif draw(st.booleans()):
        text = json.dumps({"translation": {"de": de, "en": en}}, ensure_ascii=draw(st.booleans()))
    else:
        text = json.dumps({"en": en, "x": [1], "de": de}, ensure_ascii=draw(st.booleans()))
    lone = any("\ud800" <= ch <= "\udfff" for ch in en + de)
    return text.encode("utf-8", "surrogatepass"), "surrogate" if lone else "record"


@st.composite
def record_file(draw: st.DrawFn, tsv: bool) -> tuple[bytes, list[str], bool]:
    """(file contents, the kind of each line, whether the first line is a TSV header)."""
    lines = draw(st.lists(record_line(tsv), min_size=1, max_size=6))
    body = b"".join(line + draw(st.sampled_from([b"\n", b"\r\n"])) for line, _ in lines)
    if draw(st.booleans()):
        body = body.removesuffix(b"\n")
    header = tsv and set(lines[0][0].split(b"\t")) == {b"en", b"de"}
    return draw(st.sampled_from([b"", BOMS[0]])) + body, [kind for _, kind in lines], header


@SETTINGS
@given(valid=st.booleans().flatmap(lambda tsv: st.tuples(st.just(tsv), record_file(tsv))),
       errors=st.sampled_from(["strict", "replace"]))
def test_preprocess_hostile_records(valid, errors):
    """TSV and JSONL: a bad line is an error naming file and line; a lone surrogate is one unless
    --errors replace; every other line is a row."""
    tsv, (data, kinds, header) = valid
    suffix = "tsv" if tsv else "jsonl"
    rows = [f"{en}\t{de}" if tsv else json.dumps({"en": en, "de": de})
            for en, de in zip(TINY["en"], TINY["de"], strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train = write(root / f"train.{suffix}", _good(rows))
        path = write(root / f"valid.{suffix}", data)
        result = _preprocess(root, ["--tokenizer", "char", "--errors", errors,
                                    "--train", str(train), "--valid", str(path)])
        assert_clean_exit(result)
        bad = {"junk"} if errors == "replace" else {"junk", "surrogate"}
        first = next((n for n, kind in enumerate(kinds, start=1) if kind in bad), None)
        if first:
            assert result.exit_code == 2 and f"{path}:{first}:" in result.stderr, result.stderr
            return
        assert result.exit_code == 0, result.stderr
        _check_bundle(root, {"train": len(rows), "valid": len(kinds) - header})


# --- nmt translate ------------------------------------------------------------------------

@settings(SETTINGS, max_examples=40)
@given(data=hostile_file(), errors=st.sampled_from(["strict", "replace"]),
       source=st.sampled_from(["file", "gz", "stdin"]), to_stdout=st.booleans(),
       beam=st.sampled_from([1, 2]), n_best=st.sampled_from([1, 1, 2]),
       batch_tokens=st.sampled_from([0, 0, 7]))
def test_translate_hostile_input(reversal_run, data, errors, source, to_stdout, beam, n_best,
                                 batch_tokens):
    """One output line per input line (n-best: n), an empty one for a line that normalises to
    nothing; or exit 2 naming the first line that is not UTF-8, with no output file."""
    with tempfile.TemporaryDirectory() as tmp:
        name = write(Path(tmp) / "in.txt", data, gz=source == "gz")
        out = Path(tmp) / "out.txt"
        args = ["translate", "-m", str(reversal_run), "--beam", str(max(beam, n_best)),
                "--n-best", str(n_best), "--batch-tokens", str(batch_tokens),
                "--errors", errors, "--window", "3",
                *([] if to_stdout else ["-o", str(out)])]
        if source == "stdin":
            result, name = runner.invoke(app, args, input=data), Path("<stdin>")
        else:
            result = runner.invoke(app, [*args, "-i", str(name)])
        assert_clean_exit(result)
        if errors == "strict" and first_bad_line(data):
            assert_names_bad_line(result, {name: data})
            assert not out.exists()
            return
        assert result.exit_code == 0, result.stderr
        if to_stdout:
            out.write_text(result.stdout, encoding="utf-8")
        lines = read_output(out)
        assert len(lines) == n_best * count_lines(data)
        for number, blank in enumerate(blank_lines(data)):
            got = lines[number * n_best : (number + 1) * n_best]
            if n_best > 1:
                assert all(line.startswith(f"{number} ||| ") for line in got), got
                got = [line.split(" ||| ")[1] for line in got]
            assert not blank or got == [""] * n_best, got


@settings(SETTINGS, max_examples=100)
@given(data=hostile_file(), window=st.integers(1, 4), errors=st.sampled_from(["strict", "replace"]))
def test_stdin_windows_split_lines_as_files_do(data, window, errors):
    """`nmt translate` reads a real stdin (a pipe, a terminal, a redirected file) in windows of
    its own: they hold the lines, and raise the errors, that reading the file gives."""
    def lines_of(read) -> tuple[list[str], str]:
        got: list[str] = []
        try:
            for chunk in read():
                got.extend(chunk)
        except DataError as err:
            return got, str(err)
        return got, ""

    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "in.txt", data)
        fd = os.open(path, os.O_RDONLY)
        try:
            windows, error = lines_of(lambda: available_windows(fd, "<stdin>", window, errors))
        finally:
            os.close(fd)
    expected, expected_error = lines_of(
        lambda: [list(decode_lines(io.BytesIO(data), "<stdin>", errors))])
    assert error == expected_error
    if not error:
        assert windows == expected and len(expected) == count_lines(data)


# --- nmt evaluate -------------------------------------------------------------------------

def _expect_scored(result: Result, files: dict[Path, bytes], as_json: bool = False) -> None:
    assert_clean_exit(result)
    if any(first_bad_line(data) for data in files.values()):
        assert_names_bad_line(result, files)
        return
    counts = {path: count_lines(data) for path, data in files.items()}
    if len(set(counts.values())) > 1 or 0 in counts.values():  # 0 lines: nothing to score
        assert result.exit_code == 2
        assert all(str(path) in result.stderr for path in files), result.stderr
        return
    assert result.exit_code == 0, result.stderr
    if as_json:
        assert 0 <= json.loads(result.stdout)["BLEU"]["score"] <= 100
    else:
        assert "BLEU" in result.stdout and "chrF2" in result.stdout


@settings(SETTINGS, max_examples=60)
@given(pair=aligned_files(), options=st.sets(st.sampled_from(["--ter", "--json"])))
def test_evaluate_hostile_files(pair, options):
    with tempfile.TemporaryDirectory() as tmp:
        hyp, ref = Path(tmp) / "hyp.txt", Path(tmp) / "ref.txt"
        hyp.write_bytes(pair[0])
        ref.write_bytes(pair[1])
        result = runner.invoke(app, ["evaluate", "--hyp", str(hyp), "--ref", str(ref), *options])
        _expect_scored(result, {hyp: pair[0], ref: pair[1]}, "--json" in options)
        if result.exit_code == 0 and "--ter" in options:
            assert "TER" in result.stdout


@settings(SETTINGS, max_examples=15)
@given(pair=aligned_files())
def test_evaluate_model_hostile_files(reversal_run, pair):
    with tempfile.TemporaryDirectory() as tmp:
        src, ref = Path(tmp) / "src.txt", Path(tmp) / "ref.txt"
        src.write_bytes(pair[0])
        ref.write_bytes(pair[1])
        result = runner.invoke(app, ["evaluate", "-m", str(reversal_run), "--src", str(src),
                                     "--ref", str(ref), "--beam", "1"])
        _expect_scored(result, {src: pair[0], ref: pair[1]})


# --- the oracle itself --------------------------------------------------------------------

@pytest.mark.parametrize(("data", "lines", "bad"), [
    (b"", 0, None), (b"\n", 1, None), (b"a", 1, None), (b"a\r\nb", 2, None),
    (b"a\rb\x0bc\x0c\xc2\x85\xe2\x80\xa8\n", 1, None), (b"a\n\xff", 2, 2),
    (b"\xef\xbb\xbf", 1, None), (b"ok\nok\n\xc3\n", 3, 3),
])
def test_oracle_counts_lines_as_the_readme(data, lines, bad):
    assert count_lines(data) == lines and first_bad_line(data) == bad


def test_oracle_blank_lines():
    data = b"\xef\xbb\xbf\n \x00\xe2\x80\xa8\r\na\n\xef\xbb\xbf"  # a BOM inside is text
    assert blank_lines(data) == [True, True, False, False]


# --- regressions found by the properties above --------------------------------------------

def test_evaluate_two_empty_files_is_an_error_naming_both(tmp_path):
    """sacrebleu raised IndexError on an empty corpus: a traceback with exit code 1."""
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_bytes(b"")
    ref.write_bytes(b"")
    result = runner.invoke(app, ["evaluate", "--hyp", str(hyp), "--ref", str(ref)])
    assert result.exit_code == 2 and result.exception is not None
    assert isinstance(result.exception, SystemExit)
    assert f"nothing to score: {hyp} and {ref} are both empty" in result.stderr


def test_evaluate_model_line_mismatch_is_a_data_error(tmp_path, reversal_run):
    """`evaluate -m` reported different line counts as a settings error (exit 3)."""
    src, ref = tmp_path / "src.txt", tmp_path / "ref.txt"
    src.write_bytes(b"a b c\n")
    ref.write_bytes(b"c b a\nb a\n")
    result = runner.invoke(app, ["evaluate", "-m", str(reversal_run), "--src", str(src),
                                 "--ref", str(ref), "--beam", "1"])
    assert result.exit_code == 2
    assert f"{src} has 1 lines, {ref} has 2" in result.stderr


@pytest.mark.parametrize("tokenizer", ["word", "subword"])
def test_jsonl_lone_surrogate_names_file_and_line(tmp_path, tokenizer):
    """A JSON escape of a lone surrogate crashed preprocess (UnicodeEncodeError when writing the
    vocabulary; sentencepiece refused it as a settings error, exit 3)."""
    rows = [{"en": en, "de": de} for en, de in zip(TINY["en"], TINY["de"], strict=True)]
    rows[2]["en"] = "a b\ud800"
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    options = ["--tokenizer", tokenizer, "--vocab-size", "40", "--train", str(train)]
    strict = _preprocess(tmp_path, options)
    assert strict.exit_code == 2
    assert f"{train}:3: field 'en' holds a lone surrogate" in strict.stderr
    replaced = _preprocess(tmp_path, [*options, "--errors", "replace"])
    assert replaced.exit_code == 0, replaced.stderr
    vocabs = [path.read_text(encoding="utf-8") for path in (tmp_path / "bundle").glob("vocab*")]
    assert any("\ufffd" in vocab for vocab in vocabs)


def test_paths_that_look_like_markup_are_printed_as_they_are(tmp_path, reversal_run):
    """A path holding "[/]" made rich raise MarkupError (a traceback) in the preprocess summary
    and in translate's truncation warning."""
    root = tmp_path / "a[" / "]b"  # ".../a[/]b"
    root.mkdir(parents=True)
    (root / "train.en").write_bytes(_good(TINY["en"]))
    (root / "train.de").write_bytes(_good(TINY["de"]))
    done = runner.invoke(app, ["preprocess", "--src", "en", "--tgt", "de", "--tokenizer", "word",
                               "--train", str(root / "train"), "--out", str(root / "bundle")])
    assert done.exit_code == 0, done.exception
    assert f"{root / 'bundle'}:en->de" in "".join(done.stderr.split())  # wrapped at 80 columns
    source = root / "long.txt"
    source.write_text(" ".join("a" * 500) + "\n")
    done = runner.invoke(app, ["translate", "-m", str(reversal_run), "-i", str(source),
                               "--beam", "1"])
    assert done.exit_code == 0, done.exception
    assert f"{source}:1:linetruncated" in "".join(done.stderr.split())


def test_vocab_size_below_the_characters_names_the_option(tmp_path):
    """Sentencepiece's own message for it pointed to a --character_coverage option that nmt does
    not have."""
    for lang in ("en", "de"):
        (tmp_path / f"train.{lang}").write_bytes(_good(TINY[lang]))
    options = ["--tokenizer", "subword", "--train", str(tmp_path / "train"), "--vocab-size"]
    small = _preprocess(tmp_path, [*options, "20"])
    assert small.exit_code == 3
    message = " ".join(small.stderr.split())
    assert "--vocab-size 20 is too small for the" in message, message
    needed = message.split("too small for the ")[1].split()[0]
    assert int(needed) > 20
    assert _preprocess(tmp_path, [*options, needed]).exit_code == 0
