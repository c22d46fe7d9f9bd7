import gzip
import json
from pathlib import Path

import pytest

from nmt.corpus import JsonlFile, TextFiles, TsvFile, open_hf_splits, open_source, open_sources
from nmt.errors import ConfigError, DataError, SystemFailure


def test_text_files_read_plain_and_gz_in_lockstep(tmp_path: Path) -> None:
    (tmp_path / "train.en").write_text("a\nb\n", encoding="utf-8")
    with gzip.open(tmp_path / "train.de.gz", "wt", encoding="utf-8") as handle:
        handle.write("x\ny\n")
    source = open_source(str(tmp_path / "train"), ["en", "de"], "auto", ["en", "de"], "strict")
    assert isinstance(source, TextFiles)
    assert source.check() == 2
    assert list(source.rows()) == [("a", "x"), ("b", "y")]
    files = source.describe()["files"]
    assert [Path(f["path"]).name for f in files] == ["train.en", "train.de.gz"]
    assert all(len(f["sha256"]) == 64 for f in files)


def test_text_files_line_count_mismatch_names_both(tmp_path: Path) -> None:
    (tmp_path / "t.en").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "t.de").write_text("x\ny\n", encoding="utf-8")
    source = open_source(str(tmp_path / "t"), ["en", "de"], "text", ["en", "de"], "strict")
    for action in (source.check, lambda: list(source.rows())):
        with pytest.raises(DataError, match=r"t\.de: has 2 lines but .*t\.en has 3"):
            action()


def test_missing_language_file(tmp_path: Path) -> None:
    (tmp_path / "t.en").write_text("a\n", encoding="utf-8")
    source = open_source(str(tmp_path / "t"), ["en", "fr"], "auto", ["en", "fr"], "strict")
    with pytest.raises(DataError, match=r"t\.fr: no such file"):
        source.check()


def test_tsv_positional_and_header(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_text("hello\thallo\nbye\ttschüss\n", encoding="utf-8")
    source = open_source(str(path), ["en", "de"], "auto", ["en", "de"], "strict")
    assert isinstance(source, TsvFile)
    assert list(source.rows()) == [("hello", "hallo"), ("bye", "tschüss")]
    path.write_text("id\tde\ten\n1\thallo\thello\n", encoding="utf-8")
    assert list(source.rows()) == [("hello", "hallo")]  # header: picked by name, id ignored


def test_tsv_wrong_field_count_names_line(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_text("a\tb\nonly one field\n", encoding="utf-8")
    source = TsvFile(path, ("en", "de"))
    with pytest.raises(DataError, match=r"data\.tsv:2: expected 2 tab-separated fields, found 1"):
        list(source.rows())


def test_jsonl_flat_translation_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    rows = [{"translation": {"en": "hi", "de": "hallo"}}, {"en": "yes", "de": None}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    source = open_source(str(path), ["en", "de"], "auto", ["en", "de"], "strict")
    assert isinstance(source, JsonlFile)
    assert list(source.rows()) == [("hi", "hallo"), ("yes", "")]
    path.write_text(json.dumps({"english": "hi", "german": "hallo"}) + "\n", encoding="utf-8")
    renamed = JsonlFile(path, ("english", "german"))
    assert list(renamed.rows()) == [("hi", "hallo")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"en": "a"}', r"data\.jsonl:2: no field 'de'"),
        ("{not json", r"data\.jsonl:2: invalid JSON"),
        ('["a", "b"]', r"data\.jsonl:2: expected a JSON object"),
        ('{"en": "a", "de": 3}', r"data\.jsonl:2: field 'de' is not a string"),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"en": "a", "de": "b"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message):
        list(JsonlFile(path, ("en", "de")).rows())


def test_unknown_suffix_asks_for_format(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="--format"):
        open_source(str(path), ["en", "de"], "auto", ["en", "de"], "strict")


def test_hf_saved_dataset_dict_with_translation_column(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    pairs = [{"en": "a cat", "de": "eine Katze"}, {"en": "a dog", "de": "ein Hund"}]
    data = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"translation": pairs}),
        validation=datasets.Dataset.from_dict({"translation": pairs[:1]}),
    )
    data.save_to_disk(str(tmp_path / "ds"))
    splits = open_hf_splits(
        str(tmp_path / "ds"),
        "",
        {"train": "train", "valid": "validation", "test": "test"},
        ["en", "de"],
        ["train"],
    )
    assert set(splits) == {"train", "valid"}  # test: absent, not required
    assert splits["train"].check() == 2
    assert list(splits["train"].rows()) == [("a cat", "eine Katze"), ("a dog", "ein Hund")]
    with pytest.raises(DataError, match="no split 'test'"):
        open_hf_splits(str(tmp_path / "ds"), "", {"test": "test"}, ["en", "de"], ["test"])


def test_hf_flat_columns_and_missing_columns(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"en": ["hi"], "fr": ["salut"]}).save_to_disk(str(tmp_path / "d"))
    splits = open_hf_splits(str(tmp_path / "d"), "", {"train": "train"}, ["en", "fr"], ["train"])
    assert list(splits["train"].rows()) == [("hi", "salut")]
    bad = open_hf_splits(str(tmp_path / "d"), "", {"train": "train"}, ["en", "de"], ["train"])
    with pytest.raises(DataError, match="no columns en, de"):
        bad["train"].check()


def test_hf_unloadable_dataset_is_a_data_error(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    with pytest.raises(DataError, match="cannot load dataset"):
        open_hf_splits(str(tmp_path / "nothing-here"), "", {"train": "train"}, ["en"], ["train"])


@pytest.mark.parametrize(
    ("langs", "kwargs", "message"),
    [
        (["en", "de/x"], {}, "language code"),
        (["en", "de", "de"], {}, "distinct"),
        (["en", "src"], {}, "distinct"),
        (["en", "de"], {"columns": ["a"]}, "--columns names 1"),
        (["en", "de"], {"paths": {"train": ""}}, "--train is required"),
        (["en", "de"], {"fmt": "hf"}, "needs --hf-dataset"),
        (["en", "de"], {"hf_dataset": "x"}, "not --train"),
        (["en", "de"], {"hf_dataset": "x", "paths": {}, "hf_split": [("dev", "v")]}, "--hf-split"),
    ],
)
def test_open_sources_rejects_bad_options(langs: list[str], kwargs: dict, message: str) -> None:
    args = {"paths": {"train": "data/train"}, "fmt": "auto", "columns": [], "errors": "strict"}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        open_sources(langs, **args)


def test_hf_load_dataset_on_a_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.jsonl").write_text('{"en": "hi", "de": "hallo"}\n', encoding="utf-8")
    splits = open_hf_splits(str(folder), "", {"train": "train"}, ["en", "de"], ["train"])
    assert list(splits["train"].rows()) == [("hi", "hallo")]
    assert not (Path.home() / ".cache" / "huggingface" / "datasets" / "corpus").exists()


def test_hf_column_per_language_with_the_default_splits(tmp_path: Path) -> None:
    """The layout of Multi30k on the hub (bentrevett/multi30k): en/de columns, three splits."""
    datasets = pytest.importorskip("datasets")
    rows = {"en": ["a cat", "a dog", "two birds"], "de": ["eine Katze", "ein Hund", "zwei Vögel"]}
    datasets.DatasetDict(
        train=datasets.Dataset.from_dict(rows),
        validation=datasets.Dataset.from_dict({k: v[:2] for k, v in rows.items()}),
        test=datasets.Dataset.from_dict({k: v[2:] for k, v in rows.items()}),
    ).save_to_disk(str(tmp_path / "ds"))
    sources = open_sources(["en", "de"], {}, "auto", [], "strict", hf_dataset=str(tmp_path / "ds"))
    assert {split: source.check() for split, source in sources.items()} == {
        "train": 3,
        "valid": 2,
        "test": 1,
    }
    assert list(sources["test"].rows()) == [("two birds", "zwei Vögel")]
    assert sources["valid"].describe()["split"] == "validation"


def test_hf_hub_out_of_reach_is_a_system_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline mode makes `datasets` fail as it does without a network, whatever the machine."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemFailure, match="nmt-tests/absent: cannot reach the Hugging Face hub"):
        open_hf_splits("nmt-tests/absent", "", {"train": "train"}, ["en", "de"], ["train"])
    with pytest.raises(DataError, match="cannot load dataset"):  # a local folder: not the network
        open_hf_splits(str(tmp_path / "absent"), "", {"train": "train"}, ["en"], ["train"])
