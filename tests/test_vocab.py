from pathlib import Path

import pytest

from nmt.errors import DataError
from nmt.vocab import BOS, EOS, PAD, SPECIALS, UNK, Vocabulary


def test_specials_have_fixed_ids() -> None:
    vocab = Vocabulary.build({})
    assert len(vocab) == 4
    assert [vocab.index(t) for t in SPECIALS] == [PAD, UNK, BOS, EOS] == [0, 1, 2, 3]


def test_build_orders_by_count_then_token() -> None:
    vocab = Vocabulary.build({"b": 2, "a": 2, "c": 5, "d": 1})
    assert [vocab.token(i) for i in range(4, len(vocab))] == ["c", "a", "b", "d"]


def test_build_min_freq_and_max_size() -> None:
    counts = {"x": 5, "y": 3, "z": 1}
    assert "z" not in Vocabulary.build(counts, min_freq=2)
    capped = Vocabulary.build(counts, max_size=2)
    assert len(capped) == 6 and "x" in capped and "y" in capped and "z" not in capped
    assert len(Vocabulary.build(counts, max_size=0)) == 7  # 0 = no cap


def test_build_leaves_out_tokens_spelled_like_specials() -> None:
    vocab = Vocabulary.build({"<unk>": 9, "</s>": 3, "a": 1})
    assert len(vocab) == 5 and vocab.index("</s>") == EOS


def test_encode_maps_unknown_to_unk() -> None:
    vocab = Vocabulary.build({"a": 2, "b": 1})
    assert vocab.encode(["a", "b", "zzz"]) == [4, 5, UNK]


def test_decode_stops_at_eos_and_skips_pad_and_bos() -> None:
    vocab = Vocabulary.build({"a": 2, "b": 1})
    assert vocab.decode([BOS, 4, PAD, 5, EOS, 4]) == ["a", "b"]
    assert vocab.decode([UNK]) == ["<unk>"]


def test_save_load_round_trip(tmp_path: Path) -> None:
    vocab = Vocabulary.build({"a": 3, "b": 1, "▁x": 2, "￭.": 2})
    vocab.save(tmp_path / "vocab.txt")
    lines = (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert lines[:5] == ["<pad>\t0", "<unk>\t0", "<s>\t0", "</s>\t0", "a\t3"]
    loaded = Vocabulary.load(tmp_path / "vocab.txt")
    assert loaded == vocab and loaded.counts == vocab.counts


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("<pad>\t0\n<unk>\t0\n<s>\t0\n</s>\t0\nno-count\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"v.txt:5"):
        Vocabulary.load(path)
    path.write_text("a\t1\n", encoding="utf-8")
    with pytest.raises(DataError, match="starts with"):
        Vocabulary.load(path)


def test_load_from_memory_names_the_file_in_errors(tmp_path: Path) -> None:
    vocab = Vocabulary.build({"b": 2, "a": 1})
    vocab.save(tmp_path / "vocab.txt")
    data = (tmp_path / "vocab.txt").read_bytes()
    assert Vocabulary.load("ckpt:meta/vocab.txt", data) == vocab
    with pytest.raises(DataError, match="ckpt:meta/vocab.txt:7: expected"):
        Vocabulary.load("ckpt:meta/vocab.txt", data + b"no tab here\n")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<pad>\t0\n<s>\t0\n", r"v\.txt:2: expected '<unk>'"),
        ("<pad>\t0\n<unk>\t0\n", r"v\.txt: 2 lines: a vocabulary starts with"),
        (
            "<pad>\t0\n<unk>\t0\n<s>\t0\n</s>\t0\na\t2\nb\t1\na\t1\n",
            r"v\.txt:7: 'a' again \(first on line 5\)",
        ),
    ],
)
def test_load_names_file_and_line_of_missing_specials_and_repeats(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "v.txt").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        Vocabulary.load(tmp_path / "v.txt")
