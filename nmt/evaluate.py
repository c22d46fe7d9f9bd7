"""Scoring with sacreBLEU: BLEU and chrF (TER on request) on detokenized text, per corpus, per
sentence, and paired significance tests between systems.

The references are the raw reference files of the split, as the field reports scores; every
hypothesis and reference file must have the same number of lines. The paired tests are sacreBLEU's
own (paired bootstrap resampling, Koehn 2004; paired approximate randomization, Riezler and
Maxwell 2005), run through `sacrebleu.significance.PairedTest`.
"""

from __future__ import annotations

import contextlib
import os
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nmt.errors import ConfigError, DataError
from nmt.textio import read_lines

# sacreBLEU's BLEU tokenizers (`sacrebleu --tokenize`); ja-mecab and ko-mecab need sacrebleu[ja]
# or sacrebleu[ko], flores101 and flores200 download a sentencepiece model on first use.
Tokenize = Literal[
    "13a", "intl", "zh", "char", "none", "ja-mecab", "ko-mecab", "flores101", "flores200"
]
TOKENIZERS: tuple[str, ...] = typing.get_args(Tokenize)

METRIC_NAMES: tuple[str, ...] = ("bleu", "chrf", "ter")


@dataclass(frozen=True)
class Metrics:
    """Which metrics, and sacreBLEU's settings for them: one set for every kind of score, so
    that each signature tells the same story. TER is case-insensitive by sacreBLEU's default,
    so `lowercase` changes BLEU and chrF."""

    names: tuple[str, ...] = ("bleu", "chrf")
    lowercase: bool = False
    tokenize: Tokenize = "13a"

    def build(self, sentence: bool = False) -> list[Any]:
        """sacreBLEU metric objects; `sentence` scores BLEU with effective order, as sacreBLEU
        recommends for single sentences (a short line has no 4-gram match)."""
        from sacrebleu.metrics import BLEU, CHRF, TER

        if self.tokenize not in TOKENIZERS:
            raise ConfigError(
                f"tokenize must be one of {', '.join(TOKENIZERS)}, got {self.tokenize!r}"
            )
        unknown = [name for name in self.names if name not in METRIC_NAMES]
        if unknown:
            raise ConfigError(f"unknown metric {unknown[0]!r}; known: {', '.join(METRIC_NAMES)}")
        built = []
        for name in self.names:
            if name == "bleu":
                try:
                    built.append(
                        BLEU(
                            lowercase=self.lowercase,
                            tokenize=self.tokenize,
                            effective_order=sentence,
                        )
                    )
                except (ImportError, RuntimeError, OSError) as err:  # a missing extra, offline
                    message = " ".join(str(err).split())
                    raise ConfigError(f"--tokenize {self.tokenize}: {message}") from None
            elif name == "chrf":
                built.append(CHRF(lowercase=self.lowercase))
            else:
                built.append(TER())
        return built


@dataclass(frozen=True)
class Score:
    name: str  # "BLEU", "chrF2", "TER"
    score: float
    signature: str
    text: str  # sacrebleu's own one-line summary


def score_corpus(hyps: list[str], refs: list[list[str]], metrics: Metrics) -> list[Score]:
    """Corpus-level scores of `hyps` against one or more reference streams (each a list with
    one line per hypothesis)."""
    _check_lengths(hyps, refs)
    scores = []
    for metric in metrics.build():
        result = metric.corpus_score(hyps, refs)
        scores.append(
            Score(result.name, float(result.score), str(metric.get_signature()), str(result))
        )
    return scores


def score_lines(hyps: list[str], refs: list[str], metrics: Metrics | None = None) -> list[Score]:
    """Corpus-level scores against a single reference (validation, `nmt evaluate -m`)."""
    return score_corpus(hyps, [refs], metrics or Metrics())


def score_sentences(
    hyps: list[str], refs: list[list[str]], metrics: Metrics
) -> Iterator[dict[str, float]]:
    """Each line's scores, in order: {"BLEU": ..., "chrF2": ...}."""
    _check_lengths(hyps, refs)
    built = metrics.build(sentence=True)
    for number, hyp in enumerate(hyps):
        line_refs = [stream[number] for stream in refs]
        scores = {}
        for metric in built:
            result = metric.sentence_score(hyp, line_refs)
            scores[result.name] = float(result.score)
        yield scores


@dataclass(frozen=True)
class SystemScore:
    """One system's score in a paired comparison. `mean` and `ci` (half the width of the 95%
    interval) come from the bootstrap resamples; the p-values, of the difference from the
    baseline, are None for the baseline itself."""

    name: str
    score: float
    mean: float
    ci: float
    p_bootstrap: float | None
    p_ar: float | None


@dataclass(frozen=True)
class Comparison:
    """One metric's paired tests: the signatures name the resamples, trials and seed."""

    metric: str
    bootstrap_signature: str
    ar_signature: str
    systems: list[SystemScore]


def compare(
    systems: list[tuple[str, list[str]]],
    refs: list[list[str]],
    metrics: Metrics,
    resamples: int = 1000,
    trials: int = 10000,
    seed: int = 12345,
) -> list[Comparison]:
    """Paired bootstrap resampling (`resamples`) and paired approximate randomization
    (`trials`) of every system against the first (the baseline), for each metric.

    sacreBLEU's defaults are 1000 resamples, 10000 trials and seed 12345: with them the numbers
    are those of `sacrebleu -pbs` and `sacrebleu -par`."""
    from sacrebleu.significance import PairedTest

    if len(systems) < 2:
        raise ConfigError("a comparison needs at least two systems")
    if resamples < 1 or trials < 1:
        raise ConfigError("resamples and trials must be at least 1")
    if seed < 1:  # sacreBLEU reads a seed of 0 as "no seed": the run could not be repeated
        raise ConfigError(f"seed must be at least 1, got {seed}")
    for _, hyps in systems:
        _check_lengths(hyps, refs)
    built = dict(zip(metrics.names, metrics.build(), strict=True))
    results = {}
    with _sacrebleu_seed(seed):
        for kind, samples in (("bs", resamples), ("ar", trials)):
            results[kind] = PairedTest(systems, built, refs, test_type=kind, n_samples=samples)()
    signatures_bs, scores_bs = results["bs"]
    signatures_ar, scores_ar = results["ar"]
    comparisons = []
    for metric, rows in scores_bs.items():
        if metric == "System":
            continue
        p_ar = [row.p_value for row in scores_ar[metric]]
        comparisons.append(
            Comparison(
                metric,
                str(signatures_bs[metric]),
                str(signatures_ar[metric]),
                [
                    SystemScore(
                        name,
                        float(row.score),
                        float(row.mean),
                        float(row.ci),
                        _float_or_none(row.p_value),
                        _float_or_none(p),
                    )
                    for (name, _), row, p in zip(systems, rows, p_ar, strict=True)
                ],
            )
        )
    return comparisons


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


@contextlib.contextmanager
def _sacrebleu_seed(seed: int) -> Iterator[None]:
    """sacreBLEU takes the seed of its paired tests (and of the baseline's bootstrap) only from
    the environment variable SACREBLEU_SEED; set it for the call and restore it."""
    before = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if before is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = before


def _check_lengths(hyps: list[str], refs: list[list[str]]) -> None:
    for stream in refs:
        if len(hyps) != len(stream):
            raise DataError(f"{len(hyps)} hypotheses but {len(stream)} references")


def read_aligned(*paths: Path) -> list[list[str]]:
    """Each file as a list of lines; different line counts, or no lines at all, are an error
    naming every file (and its count)."""
    texts = [list(read_lines(path)) for path in paths]
    counts = [len(lines) for lines in texts]
    if len(set(counts)) > 1:
        each = [f"{path} has {n}" for path, n in zip(paths, counts, strict=True)]
        raise DataError(f"line counts differ: {each[0]} lines, {', '.join(each[1:])}")
    if counts[0] == 0:  # sacrebleu cannot score an empty corpus
        names = [str(path) for path in paths]
        listed = " and ".join(filter(None, [", ".join(names[:-1]), names[-1]]))
        state = {1: "is", 2: "are both"}.get(len(names), "are all")
        raise DataError(f"nothing to score: {listed} {state} empty")
    return texts


def read_pair(hyp: Path, ref: Path) -> tuple[list[str], list[str]]:
    """Two aligned files as lists of lines (see read_aligned)."""
    hyps, refs = read_aligned(hyp, ref)
    return hyps, refs
