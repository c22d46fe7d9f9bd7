import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from nmt.bundle import PreprocessOptions, build, open_bundle
from nmt.errors import ConfigError, DataError
from nmt.tokenarray import TokenArray, TokenArrayWriter
from nmt.vocab import UNK


def _options(tmp_path: Path, **kwargs) -> PreprocessOptions:
    values = {"src": "en", "tgt": ("de",), "out": tmp_path / "bundle", "vocab_size": 60}
    values.update(kwargs)
    return PreprocessOptions(**values)


def test_token_array_writer_round_trip(tmp_path: Path) -> None:
    writer = TokenArrayWriter(tmp_path / "x")
    for ids in ([5, 6, 7], [], [8]):
        writer.add(ids)
    assert writer.counts(10).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 0]
    names = writer.finish(np.arange(10, dtype=np.int32) * 2)
    array = TokenArray.load(tmp_path / names["ids"], tmp_path / names["offsets"])
    assert len(array) == 3 and array.lengths.tolist() == [3, 0, 1]
    assert [array[i].tolist() for i in range(3)] == [[10, 12, 14], [], [16]]
    assert array[-1].tolist() == [16] and isinstance(array.ids, np.memmap)
    assert array.ids.dtype == np.int32 and array.offsets.dtype == np.int64
    with pytest.raises(IndexError):
        array[3]
    assert not list(tmp_path.glob("*.tmp"))


def test_empty_token_array(tmp_path: Path) -> None:
    writer = TokenArrayWriter(tmp_path / "e")
    writer.add([])
    names = writer.finish()
    array = TokenArray.load(tmp_path / names["ids"], tmp_path / names["offsets"])
    assert len(array) == 1 and array[0].tolist() == []


def test_token_array_load_checks_dtypes_and_offsets(tmp_path: Path) -> None:
    ids, offsets = tmp_path / "x.ids.npy", tmp_path / "x.offsets.npy"
    np.save(ids, np.arange(5, dtype=np.int32))
    for bad in ([0, 2, 4], [1, 3, 5], [0, 4, 2, 5], []):  # short, not from 0, backwards, none
        np.save(offsets, np.array(bad, np.int64))
        with pytest.raises(DataError, match=r"x\.offsets\.npy: offsets that do not cut the 5 ids"):
            TokenArray.load(ids, offsets)
    np.save(offsets, np.array([0, 5], np.int32))
    with pytest.raises(DataError, match="expected a 1-D int64 array, found 1-D int32"):
        TokenArray.load(ids, offsets)
    ids.write_bytes(ids.read_bytes()[:-4])  # fewer bytes than the header promises
    with pytest.raises(DataError, match=r"x\.ids\.npy: not a readable \.npy array"):
        TokenArray.load(ids, offsets)


def test_format_1_bundle_opens_without_checksums(tmp_path: Path, tiny) -> None:
    from nmt.manifest import verify_files

    build(_options(tmp_path, train=tiny["train"], tokenizer="char"))
    path = tmp_path / "bundle" / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    del manifest["checksums"]
    path.write_text(json.dumps({**manifest, "format_version": 1}), encoding="utf-8")
    assert len(open_bundle(tmp_path / "bundle").source("train")) == 12
    with pytest.raises(DataError, match="records no checksums"):
        verify_files(tmp_path / "bundle")
    (tmp_path / "bundle" / "vocab.src.txt").unlink()
    with pytest.raises(DataError, match="vocab.src.txt: missing"):
        open_bundle(tmp_path / "bundle")


@pytest.mark.parametrize("tokenizer", ["word", "char", "subword"])
def test_build_and_open(tmp_path: Path, tiny: dict[str, str], tokenizer: str) -> None:
    opt = _options(tmp_path, tokenizer=tokenizer, train=tiny["train"], valid=tiny["valid"])
    manifest = build(opt)
    bundle = open_bundle(opt.out)
    assert bundle.manifest == manifest
    assert (bundle.src_lang, bundle.tasks, bundle.splits) == ("en", ("de",), ("train", "valid"))
    train_src, train_de = bundle.source("train"), bundle.target("train", "de")
    assert len(train_src) == len(train_de) == 12
    assert manifest["splits"]["train"]["tokens"]["src"] == int(train_src.lengths.sum())
    # valid ids are the tokenized normalised text, line by line
    text = bundle.text_path("valid", "de").read_text(encoding="utf-8").splitlines()
    valid_de = bundle.target("valid", "de")
    assert len(text) == len(valid_de) == 3
    tok, vocab = bundle.tgt_tokenizers["de"], bundle.tgt_vocabs["de"]
    for i, line in enumerate(text):
        ids = valid_de[i].tolist()
        assert ids == vocab.encode(tok.encode(line)) and UNK not in ids
        assert tok.decode(vocab.decode(ids)) == line
    joint = tokenizer == "subword"
    assert manifest["joint"] is joint
    assert (bundle.src_vocab is bundle.tgt_vocabs["de"]) is joint
    assert sorted(p.name for p in opt.out.glob("vocab*.txt")) == (
        ["vocab.txt"] if joint else ["vocab.de.txt", "vocab.src.txt"]
    )


def test_separate_sentencepiece_models(tmp_path: Path, tiny: dict[str, str]) -> None:
    build(_options(tmp_path, train=tiny["train"], joint=False, spm_type="unigram"))
    bundle = open_bundle(tmp_path / "bundle")
    assert (tmp_path / "bundle" / "spm.src.model").is_file()
    assert bundle.tgt_tokenizers["de"].manifest_entry()["model"] == "spm.de.model"
    assert bundle.src_vocab is not bundle.tgt_vocabs["de"]


def test_multi_target_is_aligned(tmp_path: Path, tiny: dict[str, str]) -> None:
    opt = _options(tmp_path, tgt=("de", "fr"), train=tiny["train"], test=tiny["valid"])
    manifest = build(opt)
    bundle = open_bundle(opt.out)
    assert bundle.tasks == ("de", "fr") and bundle.splits == ("train", "test")
    assert (
        len(
            {len(bundle.source("train"))}
            | {len(bundle.target("train", t)) for t in "de fr".split()}
        )
        == 1
    )
    assert set(manifest["splits"]["test"]["files"]) == {"src", "de", "fr"}
    assert bundle.text_path("test", "fr").read_text(encoding="utf-8").startswith("Un homme")


def test_filters_drop_whole_pairs_and_count_reasons(tmp_path: Path, write_corpus) -> None:
    en = ["ok one", "", "ok two", "x " * 30, "a", "fine three"]
    de = ["gut eins", "nicht leer", "   ", "y " * 30, "b c d e f g h i j k", "gut drei"]
    train = write_corpus("train", {"en": en, "de": de})
    valid = write_corpus("valid", {"en": en, "de": de})
    manifest = build(
        _options(tmp_path, tokenizer="word", train=train, valid=valid, max_tokens=20, max_ratio=5)
    )
    entry = manifest["splits"]["train"]
    assert entry["filtered"] == {"empty": 2, "too_long": 1, "ratio": 1}
    assert (entry["lines"], entry["sentences"]) == (6, 2)
    bundle = open_bundle(tmp_path / "bundle")
    vocab = bundle.src_vocab
    assert [vocab.decode(bundle.source("train")[i]) for i in range(2)] == [
        ["ok", "one"],
        ["fine", "three"],
    ]
    # valid keeps every line aligned, empty ones included
    assert manifest["splits"]["valid"]["empty_kept"] == 2
    text = bundle.text_path("valid", "de").read_text(encoding="utf-8").split("\n")
    assert text[:3] == ["gut eins", "nicht leer", ""] and len(bundle.target("valid", "de")) == 6
    assert bundle.target("valid", "de")[2].tolist() == []


def test_text_rules_bom_crlf_nul_and_long_lines(tmp_path: Path, write_corpus) -> None:
    long = "word " * 20_000  # 100k characters
    en = b"\xef\xbb\xbfhello\tworld\r\nnul\x00here\r\n" + long.encode() + b"\r\n"
    de = b"hallo welt\nnul hier\nkurz\n"
    train = write_corpus("train", {"en": en, "de": de})
    valid = write_corpus("valid", {"en": en, "de": de})
    manifest = build(_options(tmp_path, tokenizer="word", train=train, valid=valid))
    assert manifest["splits"]["train"]["filtered"]["too_long"] == 1
    bundle = open_bundle(tmp_path / "bundle")
    lines = bundle.text_path("valid", "src").read_text(encoding="utf-8").split("\n")
    assert lines[:2] == ["hello world", "nul here"] and len(lines[2]) == len(long) - 1
    assert len(bundle.source("valid")[2]) == 20_000


def test_invalid_utf8_strict_and_replace(tmp_path: Path, write_corpus) -> None:
    train = write_corpus("train", {"en": b"good\nbad \xff byte\n", "de": b"gut\nschlecht\n"})
    with pytest.raises(DataError, match=r"train\.en:2: invalid UTF-8"):
        build(_options(tmp_path, tokenizer="char", train=train))
    assert not (tmp_path / "bundle").exists()
    build(_options(tmp_path, tokenizer="char", train=train, errors="replace"))
    assert "\ufffd" in open_bundle(tmp_path / "bundle").src_vocab


def test_failed_run_leaves_no_bundle_and_keeps_the_old_one(
    tmp_path: Path, tiny, write_corpus
) -> None:
    bad_valid = write_corpus("badvalid", {"en": ["a", "b"], "de": b"x\n\xc3\n"})
    with pytest.raises(DataError, match=r"badvalid\.de:2"):
        build(_options(tmp_path, train=tiny["train"], valid=bad_valid))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "badvalid.de",
        "badvalid.en",
        "train.de",
        "train.en",
        "train.fr",
        "valid.de",
        "valid.en",
        "valid.fr",
    ]
    build(_options(tmp_path, train=tiny["train"]))
    with pytest.raises(DataError, match="already exists"):
        build(_options(tmp_path, train=tiny["train"], tokenizer="word"))
    with pytest.raises(DataError):
        build(_options(tmp_path, train=tiny["train"], valid=bad_valid, force=True))
    assert open_bundle(tmp_path / "bundle").manifest["tokenizer"]["src"]["type"] == "subword"
    build(_options(tmp_path, train=tiny["train"], tokenizer="word", force=True))
    assert open_bundle(tmp_path / "bundle").manifest["tokenizer"]["src"]["type"] == "word"


def test_empty_corpus_and_all_filtered(tmp_path: Path, write_corpus) -> None:
    empty = write_corpus("empty", {"en": b"", "de": b""})
    with pytest.raises(DataError, match="empty corpus"):
        build(_options(tmp_path, train=empty))
    blank = write_corpus("blank", {"en": ["", " "], "de": ["a", "b"]})
    with pytest.raises(DataError, match="no training pairs left.*empty: 2"):
        build(_options(tmp_path, train=blank, tokenizer="word"))
    with pytest.raises(DataError, match="no training pair has text"):
        build(_options(tmp_path, train=blank))
    assert not (tmp_path / "bundle").exists()


def test_bad_option_values(tmp_path: Path, tiny: dict[str, str]) -> None:
    for field, value in [("vocab_size", 0), ("max_tokens", 0), ("max_ratio", 0.5), ("min_freq", 0)]:
        with pytest.raises(ConfigError, match=field.replace("_", "-")):
            build(_options(tmp_path, train=tiny["train"], **{field: value}))


def test_manifest_records_sources_options_and_counts(tmp_path: Path, tiny) -> None:
    import hashlib

    manifest = build(_options(tmp_path, train=tiny["train"], valid=tiny["valid"], min_freq=2))
    on_disk = json.loads((tmp_path / "bundle" / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == manifest and on_disk["format_version"] == 2
    bundle_dir = tmp_path / "bundle"
    # Every file but the manifest itself is recorded, with its size and sha256.
    assert set(manifest["checksums"]) == {p.name for p in bundle_dir.iterdir()} - {"manifest.json"}
    vocab = manifest["checksums"]["vocab.txt"]
    assert vocab["bytes"] == (bundle_dir / "vocab.txt").stat().st_size
    assert vocab["sha256"] == hashlib.sha256((bundle_dir / "vocab.txt").read_bytes()).hexdigest()
    files = manifest["splits"]["train"]["source"]["files"]
    digest = hashlib.sha256(Path(tiny["train"] + ".en").read_bytes()).hexdigest()
    assert files[0] == {"path": str(Path(tiny["train"] + ".en").resolve()), "sha256": digest}
    assert manifest["options"]["min_freq"] == 2 and manifest["options"]["tgt"] == ["de"]
    assert manifest["vocab"]["src"]["size"] == len(open_bundle(tmp_path / "bundle").src_vocab)


def test_open_bundle_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a bundle"):
        open_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format_version": 99}', encoding="utf-8")
    with pytest.raises(DataError, match="format 99"):
        open_bundle(tmp_path)


def test_bundle_unknown_split_or_side(tmp_path: Path, tiny) -> None:
    build(_options(tmp_path, train=tiny["train"], tokenizer="char"))
    bundle = open_bundle(tmp_path / "bundle")
    with pytest.raises(DataError, match="no split 'test'"):
        bundle.source("test")
    with pytest.raises(DataError, match="no side 'fr'"):
        bundle.target("train", "fr")
    with pytest.raises(DataError, match="keeps no text"):
        bundle.text_path("train", "src")


def test_multi30k_slice(tmp_path: Path, multi30k: Path, write_corpus) -> None:
    from nmt.textio import read_lines

    def head(name: str, n: int) -> dict[str, list[str]]:
        out = {}
        for lang in ("en", "de"):
            lines = read_lines(multi30k / f"{name}.{lang}.gz")
            out[lang] = list(itertools.islice(lines, n))
        return out

    train = write_corpus("train", head("train", 500))
    valid = write_corpus("valid", head("val", 50))
    manifest = build(_options(tmp_path, train=train, valid=valid, vocab_size=500))
    assert manifest["splits"]["train"]["sentences"] == 500
    bundle = open_bundle(tmp_path / "bundle")
    refs = bundle.text_path("valid", "de").read_text(encoding="utf-8").splitlines()
    tok, vocab = bundle.tgt_tokenizers["de"], bundle.tgt_vocabs["de"]
    decoded = [tok.decode(vocab.decode(bundle.target("valid", "de")[i])) for i in range(50)]
    same = sum(d == r for d, r in zip(decoded, refs, strict=True))
    assert same >= 40  # all but lines with characters unseen in 500 training sentences


def test_meta_files_in_memory_are_enough_to_reopen(tmp_path: Path, tiny) -> None:
    from nmt.bundle import open_meta

    build(_options(tmp_path, train=tiny["train"], valid=tiny["valid"], joint=False))
    bundle = open_bundle(tmp_path / "bundle")
    names = bundle.meta_files()
    assert names[0] == "manifest.json" and "spm.de.model" in names and "vocab.src.txt" in names
    files = {name: (tmp_path / "bundle" / name).read_bytes() for name in names}
    again = open_meta(files, Path("meta"))
    assert again.tgt_vocabs["de"] == bundle.tgt_vocabs["de"]
    assert again.has_split("valid") and not again.has_split("test")
    assert again.src_tokenizer.encode("A red car.") == bundle.src_tokenizer.encode("A red car.")
    del files["spm.de.model"]
    with pytest.raises(DataError, match="meta/spm.de.model: missing"):
        open_meta(files, Path("meta"))


def test_joint_word_vocabulary_covers_every_side(tmp_path: Path, tiny) -> None:
    build(_options(tmp_path, tgt=("de", "fr"), train=tiny["train"], tokenizer="word", joint=True))
    bundle = open_bundle(tmp_path / "bundle")
    assert bundle.src_vocab is bundle.tgt_vocabs["de"] is bundle.tgt_vocabs["fr"]
    assert {"horse", "Pferd", "cheval"} <= {
        bundle.src_vocab.token(i) for i in range(len(bundle.src_vocab))
    }


def test_joint_sentencepiece_with_separate_vocabularies(tiny, tmp_path):
    from nmt.bundle import PreprocessOptions, build, open_bundle

    out = tmp_path / "b"
    build(
        PreprocessOptions(
            src="en",
            tgt=("de",),
            out=out,
            train=tiny["train"],
            valid=tiny["valid"],
            vocab_size=60,
            joint_vocab=False,
        )
    )
    bundle = open_bundle(out)
    assert bundle.src_tokenizer is bundle.tgt_tokenizers["de"]  # one sentencepiece model
    assert bundle.src_vocab != bundle.tgt_vocabs["de"]

    def pieces(vocab):
        return "".join(vocab.token(i) for i in range(4, len(vocab)))

    # Each side keeps only its own pieces: "y" occurs only in English, "ä" only in German.
    assert "y" in pieces(bundle.src_vocab) and "y" not in pieces(bundle.tgt_vocabs["de"])
    assert "ä" in pieces(bundle.tgt_vocabs["de"]) and "ä" not in pieces(bundle.src_vocab)
    ids = bundle.target("valid", "de")[0]
    assert (
        bundle.tgt_tokenizers["de"].decode(bundle.tgt_vocabs["de"].decode(ids))
        == "Ein Mann reitet ein Pferd."
    )


# A second en/de corpus with words the first (TINY) never uses.
OTHER = {
    "en": ["A cat sleeps on the sofa.", "Three birds sing.", "The boy eats an apple!"],
    "de": ["Eine Katze schläft auf dem Sofa.", "Drei Vögel singen.", "Der Junge isst einen Apfel!"],
}


def test_given_sentencepiece_model_and_vocabulary_share_ids(tmp_path: Path, tiny, write_corpus):
    from nmt.manifest import verify_files

    first = build(_options(tmp_path, train=tiny["train"], out=tmp_path / "a"))
    other = write_corpus("other", {lang: lines * 3 for lang, lines in OTHER.items()})
    given = {
        "spm_model": str(tmp_path / "a" / "spm.model"),
        "vocab": str(tmp_path / "a" / "vocab.txt"),
    }
    second = build(
        _options(tmp_path, train=other, valid=tiny["valid"], out=tmp_path / "b", **given)
    )
    a, b = open_bundle(tmp_path / "a"), open_bundle(tmp_path / "b")
    assert b.src_vocab == a.src_vocab == b.tgt_vocabs["de"]
    for name in ("spm.model", "vocab.txt"):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
        source = second["given_files"][name]
        assert source["sha256"] == first["checksums"][name]["sha256"]
        assert source["path"] == str((tmp_path / "a" / name).resolve())
    assert second["tokenizer"] == first["tokenizer"] and verify_files(tmp_path / "b") == []
    for text in [*OTHER["en"], *OTHER["de"], "Ein Mann reitet."]:
        pieces = a.src_tokenizer.encode(text)
        assert b.src_tokenizer.encode(text) == b.tgt_tokenizers["de"].encode(text) == pieces
        assert b.src_vocab.encode(pieces) == a.src_vocab.encode(pieces)
    # Pieces of the new corpus that the first one never saw are <unk>, and counted.
    train = b.target("train", "de")
    unknown = sum(int((train[i] == UNK).sum()) for i in range(len(train)))
    assert second["splits"]["train"]["unk"]["de"] == unknown > 0
    # Without --vocab the vocabulary is built from the new corpus: other ids.
    build(_options(tmp_path, train=other, out=tmp_path / "c", spm_model=given["spm_model"]))
    assert open_bundle(tmp_path / "c").src_vocab != a.src_vocab


def test_given_models_and_vocabularies_per_side(tmp_path: Path, tiny, write_corpus) -> None:
    build(
        _options(
            tmp_path,
            tgt=("de", "fr"),
            train=tiny["train"],
            joint=False,
            spm_type="unigram",
            out=tmp_path / "a",
        )
    )
    a = open_bundle(tmp_path / "a")
    other = write_corpus("other", {"en": OTHER["en"], "de": OTHER["de"], "fr": OTHER["en"]})
    files = {name: str(tmp_path / "a" / name) for name in a.meta_files()}
    manifest = build(
        _options(
            tmp_path,
            tgt=("de", "fr"),
            train=other,
            out=tmp_path / "b",
            src_spm_model=files["spm.src.model"],
            tgt_spm_model=(files["spm.de.model"], files["spm.fr.model"]),
            src_vocab=files["vocab.src.txt"],
            tgt_vocab=(files["vocab.de.txt"], files["vocab.fr.txt"]),
        )
    )
    b = open_bundle(tmp_path / "b")
    assert (manifest["joint"], manifest["joint_vocab"]) == (False, False)
    assert manifest["tokenizer"]["de"]["spm_type"] == "unigram"
    assert b.src_vocab == a.src_vocab and b.tgt_vocabs == a.tgt_vocabs
    assert b.tgt_tokenizers["fr"].encode("Un chat.") == a.tgt_tokenizers["fr"].encode("Un chat.")
    # One target file for every target; a side given nothing trains and builds its own.
    manifest = build(
        _options(
            tmp_path,
            tgt=("de", "fr"),
            train=tiny["train"],
            out=tmp_path / "c",
            tgt_spm_model=(files["spm.de.model"],),
            vocab_size=60,
        )
    )
    c = open_bundle(tmp_path / "c")
    assert set(manifest["given_files"]) == {"spm.de.model", "spm.fr.model"}
    for name in ("spm.de.model", "spm.fr.model"):
        assert (tmp_path / "c" / name).read_bytes() == (
            tmp_path / "a" / "spm.de.model"
        ).read_bytes()
    assert (tmp_path / "c" / "spm.src.model").read_bytes() != (
        tmp_path / "a" / "spm.src.model"
    ).read_bytes()
    assert c.src_vocab != a.src_vocab


def test_word_bundle_with_a_given_vocabulary(tmp_path: Path, write_corpus) -> None:
    from nmt.vocab import Vocabulary

    vocab = Vocabulary.build({"cat": 3, "sleeps": 2, "Katze": 2, "￭.": 2, "never": 1, "seen": 1})
    vocab.save(tmp_path / "given.txt")
    train = write_corpus("train", {"en": ["cat sleeps.", "dog runs."], "de": ["Katze.", "Hund."]})
    manifest = build(
        _options(
            tmp_path, train=train, valid=train, tokenizer="word", vocab=str(tmp_path / "given.txt")
        )
    )
    bundle = open_bundle(tmp_path / "bundle")
    # One vocabulary for both sides, the given one, tokens unused by this corpus included.
    assert manifest["joint"] is False and manifest["joint_vocab"] is True
    assert bundle.src_vocab is bundle.tgt_vocabs["de"] and bundle.src_vocab == vocab
    assert (tmp_path / "bundle" / "vocab.txt").read_bytes() == (tmp_path / "given.txt").read_bytes()
    assert bundle.src_vocab.counts == vocab.counts  # as given, not recounted
    assert bundle.source("train")[0].tolist() == vocab.encode(["cat", "sleeps", "￭."])
    assert bundle.source("train")[1].tolist() == [UNK, UNK, vocab.index("￭.")]
    for split in ("train", "valid"):
        assert manifest["splits"][split]["unk"] == {"src": 2, "de": 1}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"vocab": "missing.txt"}, r"missing\.txt: no such file"),
        ({"src_vocab": "{spm}"}, r"spm\.model:1: expected 'token<TAB>count'"),
        ({"spm_model": "missing.model"}, r"missing\.model: no such file"),
        ({"spm_model": "{vocab}"}, r"vocab\.txt: not a readable sentencepiece model"),
        ({"tgt_spm_model": ("{a}",)}, r"\ba: not a readable sentencepiece model"),
    ],
)
def test_given_files_that_are_wrong_are_named(tmp_path: Path, tiny, given, message) -> None:
    build(_options(tmp_path, train=tiny["train"], out=tmp_path / "a"))
    (tmp_path / "a" / "a").write_bytes(b"")
    names = {
        "spm": tmp_path / "a" / "spm.model",
        "vocab": tmp_path / "a" / "vocab.txt",
        "a": tmp_path / "a" / "a",
    }

    def path(value: str) -> str:
        return value.format(**names) if "{" in value else str(tmp_path / value)

    given = {k: tuple(map(path, v)) if isinstance(v, tuple) else path(v) for k, v in given.items()}
    with pytest.raises(DataError, match=message):
        build(_options(tmp_path, train=tiny["train"], **given))
    assert not (tmp_path / "bundle").exists()
