import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nmt.errors import DataError
from nmt.textio import ResumableOutput, atomic_dir, atomic_write, normalize, read_lines


def test_rules_bom_crlf_gzip(tmp_path):
    path = tmp_path / "a.txt.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"\xef\xbb\xbfone\r\ntwo\n\nthree")
    assert list(read_lines(path)) == ["one", "two", "", "three"]


def test_invalid_utf8_names_line_or_is_replaced(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\nstill ok\nbad \xff byte\n")
    with pytest.raises(DataError) as err:
        list(read_lines(path))
    assert f"{path}:3:" in str(err.value)
    assert list(read_lines(path, errors="replace"))[2] == "bad \ufffd byte"


@given(st.text())
def test_normalize_is_idempotent_and_clean(text):
    once = normalize(text)
    assert normalize(once) == once
    assert "\x00" not in once and "  " not in once and once == once.strip()


def test_normalize_nul_and_unicode_spaces():
    assert normalize("a\x00b\u00a0\tc\u2028 ") == "a b c"


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as handle:
        handle.write("new")
        raise RuntimeError
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_atomic_dir_refuses_existing_and_cleans_up(tmp_path):
    target = tmp_path / "bundle"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "x").write_text("x")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(DataError, match="--force"), atomic_dir(target):
        pass
    with atomic_dir(target, force=True) as tmp:
        (tmp / "x").write_text("2")
    assert (target / "x").read_text() == "2"


def test_resumable_output(tmp_path):
    path = tmp_path / "hyp.txt"
    out = ResumableOutput(path)
    out.write_line("a")
    out.write_line("b")
    out.flush()
    out.handle.write("half")  # a crash mid-line
    out.close()
    assert not path.exists()
    again = ResumableOutput(path, resume=True)
    assert again.done == 2
    again.write_line("c")
    again.commit()
    assert path.read_text() == "a\nb\nc\n"
    with pytest.raises(DataError, match="already complete"):
        ResumableOutput(path, resume=True)
