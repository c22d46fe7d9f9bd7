"""Scoring with sacreBLEU: BLEU and chrF (TER on request) on detokenized, cased text.

The reference is the raw reference file of the split, as the field reports scores; hypothesis and
reference must have the same number of lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nmt.errors import DataError
from nmt.textio import read_lines


@dataclass(frozen=True)
class Score:
    name: str  # "BLEU", "chrF2", "TER"
    score: float
    signature: str
    text: str  # sacrebleu's own one-line summary


def score_lines(
    hyps: list[str], refs: list[str], metrics: tuple[str, ...] = ("bleu", "chrf")
) -> list[Score]:
    """Corpus-level scores of `hyps` against one reference per line."""
    from sacrebleu.metrics import BLEU, CHRF, TER

    if len(hyps) != len(refs):
        raise DataError(f"{len(hyps)} hypotheses but {len(refs)} references")
    makers = {"bleu": BLEU, "chrf": CHRF, "ter": TER}
    scores = []
    for name in metrics:
        metric = makers[name]()
        result = metric.corpus_score(hyps, [refs])
        scores.append(
            Score(result.name, float(result.score), str(metric.get_signature()), str(result))
        )
    return scores


def read_pair(hyp: Path, ref: Path) -> tuple[list[str], list[str]]:
    """Both files as lists of lines; different line counts, or no lines, are an error naming
    both files."""
    hyps = list(read_lines(hyp))
    refs = list(read_lines(ref))
    if len(hyps) != len(refs):
        raise DataError(
            f"line counts differ: {hyp} has {len(hyps)} lines, {ref} has {len(refs)}"
        )
    if not refs:  # sacrebleu cannot score an empty corpus
        raise DataError(f"nothing to score: {hyp} and {ref} are both empty")
    return hyps, refs


def score_files(hyp: Path, ref: Path, metrics: tuple[str, ...] = ("bleu", "chrf")) -> list[Score]:
    hyps, refs = read_pair(hyp, ref)
    return score_lines(hyps, refs, metrics)
