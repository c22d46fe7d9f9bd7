"""The Multi30k recipe's choice of decoding settings on val (recipes/multi30k/choose_search.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "recipes" / "multi30k" / "choose_search.py"


def scores(directory: Path, bleu: dict[str, float]) -> None:
    directory.mkdir(parents=True)
    for name, value in bleu.items():
        (directory / f"{name}.json").write_text(json.dumps({"BLEU": {"score": value}}))


def choose(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(directory)], capture_output=True,
                          text=True)


def test_the_best_validation_score_wins_and_ties_keep_the_first(tmp_path):
    search = tmp_path / "run" / "search"
    scores(search, {"best_b5_a1.0": 40.1, "best_b10_a0.6": 40.3, "averaged_b5_a1.0": 40.3,
                    "averaged_b10_a1.4": 39.0})
    (search / "notes.json").write_text("{}")  # not a score: ignored
    result = choose(search)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["-m", str(tmp_path / "run" / "best.pt"), "--beam", "10",
                                     "--alpha", "0.6"]
    choice = json.loads((search / "choice.json").read_text())
    assert choice["choice"] == {"model": "best", "beam": 10, "alpha": 0.6, "val_bleu": 40.3}
    assert len(choice["grid"]) == 4


def test_no_scores_is_a_clear_error(tmp_path):
    (tmp_path / "search").mkdir()
    result = choose(tmp_path / "search")
    assert result.returncode != 0 and "no MODEL_bBEAM_aALPHA.json scores" in result.stderr
