"""Shared fixtures: tiny corpora written to tmp_path, the Multi30k data when present, a runner."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from hypothesis import settings
from typer.testing import CliRunner

from nmt.device import native_bf16

# CI draws the same examples on every run (a landing never depends on luck); elsewhere each run
# draws new ones, which is how the property tests keep finding bugs.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# bf16 training on the CPU is refused where it is not native (device.autocast_dtype).
NEEDS_BF16 = pytest.mark.skipif(not native_bf16(torch.device("cpu")),
                                reason="this CPU has neither AMX-BF16 nor AVX512-BF16")

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


REVERSAL_SYMBOLS = "abcdefghijklmnopqrs"
# A small model and one-thread training for the reversal task (`nmt train` option: value).
SMALL_TRAIN = {"emb-size": 32, "hidden-size": 64, "dropout": 0.0, "lr": 0.003, "batch-size": 32,
               "threads": 1}


def symbol_lines(n: int, seed: int, longest: int = 40) -> list[str]:
    """`n` seeded lines of 1-`longest` reversal symbols: probes whose batches mix lengths."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(REVERSAL_SYMBOLS) for _ in range(rng.randint(1, longest)))
            for _ in range(n)]


def write_reversal(prefix: Path, n: int, seed: int) -> None:
    """The toy task: random symbol sequences (length 5-12) -> their reversal (PREFIX.sym/.rev)."""
    import random

    rng = random.Random(seed)
    with open(f"{prefix}.sym", "w") as src, open(f"{prefix}.rev", "w") as tgt:
        for _ in range(n):
            seq = [rng.choice(REVERSAL_SYMBOLS) for _ in range(rng.randint(5, 12))]
            src.write(" ".join(seq) + "\n")
            tgt.write(" ".join(reversed(seq)) + "\n")


@pytest.fixture(scope="session")
def reversal_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A word-level bundle of the reversal task (6,000 training pairs, 200 valid)."""
    from nmt.bundle import PreprocessOptions, build

    root = tmp_path_factory.mktemp("reversal")
    write_reversal(root / "train", 6000, seed=0)
    write_reversal(root / "valid", 200, seed=1)
    out = root / "bundle"
    build(PreprocessOptions(src="sym", tgt=("rev",), out=out, train=str(root / "train"),
                            valid=str(root / "valid"), tokenizer="word"))
    return out


@pytest.fixture(scope="session")
def reversal_run(reversal_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained briefly on the reversal task (partly learned: outputs vary)."""
    from nmt.config import resolve
    from nmt.train import train

    run = tmp_path_factory.mktemp("runs") / "reversal"
    model_cfg, train_cfg = resolve({
        "data": str(reversal_bundle), "emb-size": 32, "hidden-size": 64, "dropout": 0.0,
        "lr": 0.003, "batch-size": 32, "max-steps": 150, "valid-every": 50, "threads": 1,
    })
    train(run, model_cfg, train_cfg)
    return run


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors gain nothing from a second thread and thrash when the other core is busy;
    tests that train set their own thread count through the config."""
    import torch

    torch.set_num_threads(1)
