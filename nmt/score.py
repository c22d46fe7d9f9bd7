"""Forced decoding: the log-probability a model gives a given translation (for filtering corpora
and reranking n-best lists).

The target is tokenized as the model's bundle tokenizes it and fed to the decoder's step(), the
path search takes (ensembles included), summed as search sums, one row per sentence. So the
score of greedy (or sampled) output is exactly the score search reported for it, where the text
tokenizes back into the pieces search produced (word and char tokenizers always; sentencepiece
may segment a text otherwise). Beam search steps K rows per sentence, and the attention's sums
over the source round by that row count: its scores agree to rounding (int8, which rounds each
multiply's inputs, magnifies it to about 1e-5 relative).

For a target of n tokens:
  total       log P(y_1 .. y_n, EOS | x), over n + 1 steps (the EOS counts, as in search)
  per_token   total / (n + 1)
  normalised  total / lp(n + 1), search's length penalty with its --alpha: beam search's score

A pair whose source line is empty is not scored (translation gives it an empty output without
the model): its score is None. An empty target is scored as the EOS alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from nmt.data import pad_sequences
from nmt.errors import DataError
from nmt.search import Encoded, StepDecoder, drop_finished, length_penalty
from nmt.textio import normalize, read_lines
from nmt.translate import Translator, batches
from nmt.vocab import BOS, EOS


@dataclass(frozen=True)
class PairScore:
    total: float  # log P of the target and its EOS
    tokens: int  # target tokens + 1 (the EOS)
    normalised: float  # total / length_penalty(tokens, alpha)

    @property
    def per_token(self) -> float:
        return self.total / self.tokens


@torch.inference_mode()
def forced(decoder: StepDecoder, enc: Encoded, targets: list[list[int]]) -> Tensor:
    """(B,) log P of each target (ids without BOS and EOS) and its EOS, given the encoded batch.

    Each step normalises the logits and adds the target token's log-probability in float32, as
    search does; a sentence leaves the batch after its EOS, as in search.
    """
    device = enc.mask.device
    gold = pad_sequences([ids + [EOS] for ids in targets]).to(device)  # (B, T)
    ends = torch.tensor([len(ids) for ids in targets], device=device)  # (B,) step of the EOS
    scores = torch.zeros(len(targets), device=device)  # (B,)
    alive = torch.arange(len(targets), device=device)  # (N,) sentence of each row
    prev = torch.full((len(targets),), BOS, dtype=torch.long, device=device)  # (N,)
    state, memory = decoder.init_state(enc), decoder.memory(enc)
    for t in range(gold.size(1)):
        logits, state, _ = decoder.step(prev, state, memory)  # (N, V)
        logits = logits.float()
        prev = gold[alive, t]  # (N,)
        scores[alive] += logits.gather(1, prev[:, None]).squeeze(1) - logits.logsumexp(-1)
        ended = ends[alive] == t  # (N,)
        kept = drop_finished(ended, alive, prev, state, memory)
        if kept is None:
            break
        alive, prev, state, memory = kept
    return scores


def score_pairs(
    translator: Translator,
    pairs: Iterable[tuple[str, str]],
    task: str | None,
    alpha: float = 1.0,
    batch_size: int = 64,
    batch_tokens: int = 0,
    window: int = 2000,
) -> Iterator[PairScore | None]:
    """The score of each (source, target) pair, in order; None for an empty source."""
    task = translator.check_task(task)
    iterator = iter(pairs)
    for chunk in iter(lambda: list(itertools.islice(iterator, window)), []):
        sources = [translator.prepare(src)[1] for src, _ in chunk]
        targets = [_target_ids(translator, tgt, task) for _, tgt in chunk]
        lengths = [len(ids) for ids in sources]
        order = sorted((i for i in range(len(chunk)) if lengths[i]), key=lambda i: lengths[i])
        totals: dict[int, float] = {}
        for batch in batches(order, lengths, batch_size, batch_tokens):
            with torch.inference_mode():
                decoder, enc = translator.encode([sources[i] for i in batch], task)
                found = forced(decoder, enc, [targets[i] for i in batch]).tolist()
            totals.update(zip(batch, found, strict=True))
        for i in range(len(chunk)):
            if i not in totals:
                yield None
                continue
            tokens = len(targets[i]) + 1
            yield PairScore(totals[i], tokens, totals[i] / length_penalty(tokens, alpha))


def _target_ids(translator: Translator, line: str, task: str) -> list[int]:
    pieces = translator.tgt_tokenizers[task].encode(normalize(line))
    return translator.tgt_vocabs[task].encode(pieces)


def read_pairs(src: Path, tgt: Path, errors: str = "strict") -> Iterator[tuple[str, str]]:
    """The lines of both files side by side; where one ends first, a DataError names it and the
    line the other goes on with."""
    sources, targets = read_lines(src, errors), read_lines(tgt, errors)
    for number, (source, target) in enumerate(itertools.zip_longest(sources, targets), start=1):
        if source is None or target is None:
            short, other = (src, tgt) if source is None else (tgt, src)
            raise DataError(f"{short} has only {number - 1} lines; {other} goes on", other, number)
        yield source, target
