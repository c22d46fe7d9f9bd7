from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nmt.errors import ConfigError, DataError
from nmt.textio import normalize
from nmt.tokenizers import (
    JOINER,
    SPACE,
    CharTokenizer,
    SentencePieceTokenizer,
    WordTokenizer,
    load_tokenizer,
    train_sentencepiece,
)

TRAIN_TEXT = [
    "A man rides a horse, and two dogs play!",
    "Ein Mann reitet ein Pferd; zwei Hunde spielen.",
    "Un homme monte un cheval (deux chiens jouent) ?",
    "Das Mädchen liest lächelnd. Ça va très bien, merci 42.",
]


def test_word_splits_punctuation_with_joiner() -> None:
    tok = WordTokenizer()
    assert tok.encode("Hello, world!") == ["Hello", "￭,", "world", "￭!"]
    assert tok.encode("(don't) 3.5") == ["(", "￭don", "￭'", "￭t", "￭)", "3", "￭.", "￭5"]
    assert tok.decode(tok.encode("(don't) 3.5")) == "(don't) 3.5"
    assert tok.encode("") == []


def test_word_keeps_combining_marks_inside_words() -> None:
    tok = WordTokenizer()
    assert tok.encode("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]  # vowel signs are not isalnum()
    assert tok.encode("cafe\u0301 ok") == ["cafe\u0301", "ok"]


def test_word_literal_joiner_is_unambiguous() -> None:
    tok = WordTokenizer()
    for text in ["a ￭ b", "a￭b", "￭", "￭￭ x", "x ￭,"]:
        assert tok.decode(tok.encode(text)) == text
    assert tok.encode("a ￭ b") == ["a", JOINER, "b"]
    assert tok.encode("a￭b") == ["a", JOINER + JOINER, JOINER + "b"]


def test_char_tokens_and_literal_space_symbol() -> None:
    tok = CharTokenizer()
    assert tok.encode("ab c") == ["a", "b", SPACE, "c"]
    assert tok.encode(f"a{SPACE}b") == ["a", f"<{SPACE}>", "b"]
    assert tok.decode(tok.encode(f"a {SPACE} b")) == f"a {SPACE} b"


unicode_text = st.text(st.characters(codec="utf-8"), max_size=60).map(normalize)


@given(unicode_text)
def test_word_round_trip(text: str) -> None:
    tok = WordTokenizer()
    assert tok.decode(tok.encode(text)) == text


@given(unicode_text)
def test_char_round_trip(text: str) -> None:
    tok = CharTokenizer()
    pieces = tok.encode(text)
    assert tok.decode(pieces) == text
    assert not any(" " in piece for piece in pieces)


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def spm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp(request.param) / "spm.model"
    return train_sentencepiece(iter(TRAIN_TEXT), path, vocab_size=120, spm_type=request.param)


# Text made only of characters seen in training (sentencepiece's "▁" excepted, see the module).
alphabet = sorted(set("".join(TRAIN_TEXT)) - {SPACE})
covered_text = st.text(st.sampled_from(alphabet), max_size=60).map(normalize)


@given(text=covered_text)
def test_sentencepiece_round_trip(spm: SentencePieceTokenizer, text: str) -> None:
    assert spm.decode(spm.encode(text)) == text


def test_sentencepiece_model_and_manifest(spm: SentencePieceTokenizer) -> None:
    assert spm.model_path.is_file() and not spm.model_path.with_suffix(".vocab").exists()
    entry = spm.manifest_entry()
    assert entry == {
        "type": "subword",
        "model": "spm.model",
        "spm_type": spm.spm_type,
        "vocab_size": 120,
    }
    again = load_tokenizer(entry, spm.model_path.parent)
    assert again.encode("Two dogs play.") == spm.encode("Two dogs play.")


def test_sentencepiece_unknown_character_is_its_own_piece(spm: SentencePieceTokenizer) -> None:
    pieces = spm.encode("A 猫.")
    assert "猫" in "".join(pieces)
    assert spm.decode([*spm.encode("A"), "<unk>"]) == "A ⁇ "  # what an <unk> id decodes to


def test_sentencepiece_vocab_size_is_soft_on_tiny_corpora(tmp_path: Path) -> None:
    tok = train_sentencepiece(iter(["ab ab", "ba"]), tmp_path / "spm.model", vocab_size=8000)
    assert tok.decode(tok.encode("ab ba")) == "ab ba"


def test_sentencepiece_reraises_reader_errors(tmp_path: Path) -> None:
    def lines():
        yield "some text"
        raise DataError("invalid UTF-8", "train.en", 2)

    with pytest.raises(DataError, match="train.en:2"):
        train_sentencepiece(lines(), tmp_path / "spm.model", vocab_size=50)


def test_sentencepiece_failure_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sentencepiece"):
        train_sentencepiece(iter([]), tmp_path / "spm.model", vocab_size=50)


def test_load_tokenizer_by_type(tmp_path: Path) -> None:
    assert isinstance(load_tokenizer({"type": "word"}, tmp_path), WordTokenizer)
    assert isinstance(load_tokenizer({"type": "char"}, tmp_path), CharTokenizer)
    with pytest.raises(ConfigError, match="unknown tokenizer"):
        load_tokenizer({"type": "bytes"}, tmp_path)
    with pytest.raises(DataError, match="spm.model"):
        load_tokenizer(
            {"type": "subword", "model": "spm.model", "spm_type": "bpe", "vocab_size": 8}, tmp_path
        )


def test_sentencepiece_from_memory(spm: SentencePieceTokenizer, tmp_path: Path) -> None:
    entry = spm.manifest_entry()
    files = {"spm.model": spm.model_path.read_bytes()}
    # The directory is only a name: the model comes from `files`.
    again = load_tokenizer(entry, tmp_path / "elsewhere", files)
    assert again.encode("Two dogs play.") == spm.encode("Two dogs play.")
    with pytest.raises(DataError, match="elsewhere/spm.model: sentencepiece model missing"):
        load_tokenizer(entry, tmp_path / "elsewhere", {})
    for junk in (b"", b"not a model"):
        with pytest.raises(DataError, match="elsewhere/spm.model: not a readable"):
            load_tokenizer(entry, tmp_path / "elsewhere", {"spm.model": junk})


def test_copy_sentencepiece_keeps_the_model_and_reads_its_type(
    spm: SentencePieceTokenizer, tmp_path: Path
) -> None:
    import sentencepiece

    from nmt.tokenizers import copy_sentencepiece

    copy = copy_sentencepiece(spm.model_path, tmp_path / "spm.src.model")
    pieces = sentencepiece.SentencePieceProcessor(model_file=str(spm.model_path)).piece_size()
    assert copy.model_path.read_bytes() == spm.model_path.read_bytes()
    assert copy.manifest_entry() == {
        "type": "subword",
        "model": "spm.src.model",
        "spm_type": spm.spm_type,  # read from the file: bpe or unigram
        "vocab_size": pieces,  # the model's own size (120 was a soft limit)
    }
    assert copy.encode("Zwei Hunde spielen.") == spm.encode("Zwei Hunde spielen.")
    with pytest.raises(DataError, match=r"nothing\.model: no such file"):
        copy_sentencepiece(tmp_path / "nothing.model", tmp_path / "x.model")
    (tmp_path / "junk.model").write_bytes(b"\x08\x96\x01 not a model")
    with pytest.raises(DataError, match=r"junk\.model: not a readable sentencepiece model"):
        copy_sentencepiece(tmp_path / "junk.model", tmp_path / "x.model")
    assert not (tmp_path / "x.model").exists()
