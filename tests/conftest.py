"""Shared fixtures: tiny corpora written to tmp_path, the Multi30k data when present, a runner."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

MULTI30K = Path(__file__).parents[2] / "shared" / "data" / "multi30k"

# Six short aligned sentences in three languages (enough for every tokenizer and sentencepiece).
TINY = {
    "en": [
        "A man rides a horse.",
        "Two dogs play.",
        "The girl, smiling, reads!",
        "A red car.",
        "Children run in the park.",
        "An old man sleeps.",
    ],
    "de": [
        "Ein Mann reitet ein Pferd.",
        "Zwei Hunde spielen.",
        "Das Mädchen liest lächelnd!",
        "Ein rotes Auto.",
        "Kinder laufen im Park.",
        "Ein alter Mann schläft.",
    ],
    "fr": [
        "Un homme monte un cheval.",
        "Deux chiens jouent.",
        "La fille lit en souriant !",
        "Une voiture rouge.",
        "Des enfants courent au parc.",
        "Un vieil homme dort.",
    ],
}

WriteCorpus = Callable[..., str]


@pytest.fixture
def write_corpus(tmp_path: Path) -> WriteCorpus:
    """write_corpus(name, {lang: lines or bytes}) -> prefix; writes tmp_path/name.LANG.

    Lines (str) are joined with "\\n" and a final newline; bytes are written as given.
    """

    def write(name: str, sides: dict[str, Sequence[str] | bytes]) -> str:
        prefix = tmp_path / name
        for lang, content in sides.items():
            path = Path(f"{prefix}.{lang}")
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text("".join(line + "\n" for line in content), encoding="utf-8")
        return str(prefix)

    return write


@pytest.fixture
def tiny(write_corpus: WriteCorpus) -> dict[str, str]:
    """Prefixes of a tiny en/de/fr corpus: train (the six sentences twice) and valid."""
    train = write_corpus("train", {lang: lines * 2 for lang, lines in TINY.items()})
    valid = write_corpus("valid", {lang: lines[:3] for lang, lines in TINY.items()})
    return {"train": train, "valid": valid}


@pytest.fixture
def multi30k() -> Path:
    if not (MULTI30K / "train.en.gz").is_file():
        pytest.skip(f"Multi30k not found at {MULTI30K}")
    return MULTI30K


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()
