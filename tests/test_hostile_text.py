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

import json
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from nmt_cli.main import app

from conftest import REVERSAL_SYMBOLS, TINY

# What str.splitlines(), and so many line readers, take for a line break, besides LF.
BREAK_LIKE = ["\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = ["\x00", "\x01", "\x07", "\x1b", "\x1f", "\x7f", "\t", "\u00a0", "\u3000", "\u200b",
            "\ufeff", "\ufffd", "\uffed", "\u2581", "<\u2581>", "\U0010ffff"]
BAD_UTF8 = [b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]
BOMS = [b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]

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


def count_lines(data: bytes) -> int:
    """Lines by the README's rules: each LF ends one; a last line without LF counts."""
    return data.count(b"\n") + (not data.endswith(b"\n") and len(data) > 0)


def first_bad_line(data: bytes) -> int | None:
    """The 1-based number of the first line that is not UTF-8, or None."""
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return None


def assert_clean_exit(result: Result) -> None:
    """Exit code 0 or 2 and no traceback (CliRunner catches what would have been one)."""
    from hypothesis import event
    event(f"exit {result.exit_code} {result.stderr[:60].split(':')[-1]}")
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
        for ch in text:
            assert ch == " " or not (ch.isspace() or unicodedata.category(ch) in ("Cc", "Zl", "Zp")
                                     ), repr(text)


def read_output(path: Path) -> list[str]:
    """Output lines, checked to end in LF and to hold no other line break."""
    text = path.read_bytes().decode("utf-8")
    assert text == "" or text.endswith("\n")
    lines = text.split("\n")[:-1]
    assert len(text.splitlines()) == len(lines), "an output line holds a line-break-like char"
    return lines


runner = CliRunner()
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


# --- nmt preprocess -----------------------------------------------------------------------

def _good(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def _preprocess(root: Path, files: dict[str, bytes], tokenizer: str, errors: str,
                extra: tuple[str, ...] = ()) -> tuple[Result, dict[Path, bytes]]:
    written = {}
    for name, data in files.items():
        written[root / name] = data
        (root / name).write_bytes(data)
    splits = sorted({name.split(".")[0] for name in files})
    args = ["-q", "preprocess", "--src", "en", "--tgt", "de", "--out", str(root / "bundle"),
            "--tokenizer", tokenizer, "--errors", errors, *extra]
    for split in splits:
        args += [f"--{split}", str(root / split)]
    return runner.invoke(app, args), written


def _check_bundle(root: Path, files: dict[Path, bytes]) -> None:
    manifest = json.loads((root / "bundle" / "manifest.json").read_text())
    for split, entry in manifest["splits"].items():
        lines = count_lines(files[root / f"{split}.en"])
        assert entry["lines"] == lines
        if split != "train":  # valid and test keep every line, the normalised text with it
            assert entry["sentences"] == lines
            for side in ("src", "de"):
                kept = read_output(root / "bundle" / f"{split}.{side}.txt")
                assert len(kept) == lines
                assert_normalised(kept)


def _expect_preprocess(result: Result, root: Path, files: dict[Path, bytes],
                       errors: str) -> None:
    assert_clean_exit(result)
    for split in ("train", "valid", "test"):
        en, de = root / f"{split}.en", root / f"{split}.de"
        if en in files and count_lines(files[en]) != count_lines(files[de]):
            assert result.exit_code == 2
            assert str(en) in result.stderr and str(de) in result.stderr, result.stderr
            return
        if en in files and count_lines(files[en]) == 0:  # a deliberate error: empty split
            assert result.exit_code == 2 and f"{en}: empty corpus" in result.stderr
            return
    if errors == "strict" and any(first_bad_line(data) for data in files.values()):
        assert_names_bad_line(result, files)
        return
    assert result.exit_code == 0, result.stderr
    _check_bundle(root, files)


@SETTINGS
@given(train=aligned_files(), valid=aligned_files(),
       tokenizer=st.sampled_from(["word", "char"]),
       errors=st.sampled_from(["strict", "replace"]))
def test_preprocess_hostile_corpus(train, valid, tokenizer, errors):
    """Hostile lines in front of a good training corpus and as the whole valid split."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {"train.en": train[0] + _good(TINY["en"]),
                 "train.de": train[1] + _good(TINY["de"]),
                 "valid.en": valid[0], "valid.de": valid[1]}
        result, written = _preprocess(root, files, tokenizer, errors)
        _expect_preprocess(result, root, written, errors)


@settings(SETTINGS, max_examples=6)
@given(test=aligned_files(),
       errors=st.sampled_from(["strict", "replace"]))
def test_preprocess_hostile_subword(test, errors):
    """Sentencepiece trained on a good corpus, then fed a hostile test split."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = {"train.en": _good(TINY["en"] * 2), "train.de": _good(TINY["de"] * 2),
                 "test.en": test[0], "test.de": test[1]}
        result, written = _preprocess(root, files, "subword", errors, ("--vocab-size", "40"))
        _expect_preprocess(result, root, written, errors)


# --- nmt translate ------------------------------------------------------------------------

@settings(SETTINGS, max_examples=30)
@given(data=hostile_file(), errors=st.sampled_from(["strict", "replace"]),
       stdin=st.booleans(), beam=st.sampled_from([1, 2]))
def test_translate_hostile_input(reversal_run, data, errors, stdin, beam):
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "in.txt", Path(tmp) / "out.txt"
        source.write_bytes(data)
        args = ["translate", "-m", str(reversal_run), "--beam", str(beam), "--errors", errors,
                "--window", "3", "-o", str(out)]
        result = runner.invoke(app, args, input=data) if stdin else runner.invoke(
            app, [*args, "-i", str(source)])
        assert_clean_exit(result)
        if errors == "strict" and first_bad_line(data):
            name = Path("<stdin>") if stdin else source
            assert_names_bad_line(result, {name: data})
            assert not out.exists()
            return
        assert result.exit_code == 0, result.stderr
        assert len(read_output(out)) == count_lines(data)


# --- nmt evaluate -------------------------------------------------------------------------

def _expect_scored(result: Result, files: dict[Path, bytes]) -> None:
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
    assert "BLEU" in result.stdout and "chrF2" in result.stdout


@settings(SETTINGS, max_examples=40)
@given(pair=aligned_files())
def test_evaluate_hostile_files(pair):
    with tempfile.TemporaryDirectory() as tmp:
        hyp, ref = Path(tmp) / "hyp.txt", Path(tmp) / "ref.txt"
        hyp.write_bytes(pair[0])
        ref.write_bytes(pair[1])
        result = runner.invoke(app, ["evaluate", "--hyp", str(hyp), "--ref", str(ref)])
        _expect_scored(result, {hyp: pair[0], ref: pair[1]})


@settings(SETTINGS, max_examples=10)
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
