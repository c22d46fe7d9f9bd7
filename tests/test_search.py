"""Search tests on fake decoders that implement only the step() protocol.

ScriptedDecoder (fairseq's scripted-decoder idea): the next-token distribution is looked up by
the prefix recorded in the decoder state, so a table of prefixes states the expected outcome by
hand. RandomDecoder: a tiny random recurrent decoder with attention, in float64, for properties
(beam 1 == greedy, batched == one by one, reordered states) over many sentences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from nmt.errors import ConfigError
from nmt.search import beam_search, greedy, length_penalty
from nmt.vocab import BOS, EOS, PAD

A, B, C = 4, 5, 6  # ordinary tokens of the scripted tables


@dataclass
class FakeEnc:
    states: Tensor  # (B, S, H)
    mask: Tensor  # (B, S) bool, True = real token

    def select(self, index: Tensor) -> FakeEnc:
        return FakeEnc(self.states.index_select(0, index), self.mask.index_select(0, index))

    def rows(self, n: int) -> FakeEnc:
        """The memory as the n rows of a step see it: each sentence's row for its n / B
        consecutive rows (search.py's contract: the memory is never expanded over the beam)."""
        batch = self.mask.size(0)
        assert n % batch == 0, f"{n} step rows for {batch} memory rows"
        return self.select(torch.arange(batch).repeat_interleave(n // batch))


@dataclass
class FakeState:
    h: Tensor  # (N, H)
    history: Tensor  # (N, t) tokens fed so far, BOS first

    def select(self, index: Tensor) -> FakeState:
        return FakeState(self.h.index_select(0, index), self.history.index_select(0, index))


def make_enc(lengths: list[int], hidden: int = 6, seed: int = 0) -> FakeEnc:
    gen = torch.Generator().manual_seed(seed)
    states = torch.randn(len(lengths), max(lengths), hidden, generator=gen, dtype=torch.float64)
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return FakeEnc(states * mask[:, :, None], mask)


def one_sentence(enc: FakeEnc, b: int) -> FakeEnc:
    """Sentence b alone, its padding trimmed."""
    n = int(enc.mask[b].sum())
    return FakeEnc(enc.states[b : b + 1, :n], enc.mask[b : b + 1, :n])


class HistoryDecoder:
    """A decoder whose next-token logits depend only on the tokens fed so far (`logits`), with
    uniform attention."""

    def memory(self, enc: FakeEnc) -> FakeEnc:
        return enc

    def init_state(self, enc: FakeEnc) -> FakeState:
        batch = enc.mask.size(0)
        return FakeState(torch.zeros(batch, 1), torch.empty(batch, 0, dtype=torch.long))

    def step(self, prev: Tensor, state: FakeState, enc: FakeEnc):
        enc = enc.rows(len(prev))
        history = torch.cat([state.history, prev[:, None]], 1)  # (N, t+1)
        attn = enc.mask.double() / enc.mask.sum(1, keepdim=True)  # (N, S) uniform
        return self.logits(history), FakeState(state.h, history), attn

    def logits(self, history: Tensor) -> Tensor:
        """(N, t+1) tokens fed so far, BOS first -> (N, V) logits of the next token."""
        raise NotImplementedError


class ScriptedDecoder(HistoryDecoder):
    """p(next | prefix) = table[prefix] (else default); unlisted tokens get EPS."""

    EPS = 1e-6

    def __init__(
        self,
        table: dict[tuple[int, ...], dict[int, float]],
        vocab: int = 8,
        default: dict[int, float] | None = None,
    ):
        self.table, self.vocab, self.default = table, vocab, default or {EOS: 1.0}
        self.steps = 0

    def logits(self, history: Tensor) -> Tensor:
        probs = torch.full((len(history), self.vocab), self.EPS, dtype=torch.float64)
        for row, prefix in enumerate(history[:, 1:].tolist()):
            for token, p in self.table.get(tuple(prefix), self.default).items():
                probs[row, token] = p
        self.steps += 1
        return probs.log()

    def log_prob(self, tokens: list[int]) -> float:
        """Teacher-forced log P(tokens, EOS), with the search's renormalisation."""
        total = 0.0
        for i, token in enumerate([*tokens, EOS]):
            dist = self.table.get(tuple(tokens[:i]), self.default)
            probs = [dist.get(v, self.EPS) for v in range(self.vocab)]
            total += math.log(probs[token] / sum(probs))
        return total


class RandomDecoder:
    """Tiny random recurrent decoder with dot-product attention; its state is what it depends on."""

    def __init__(
        self, vocab: int = 10, hidden: int = 6, seed: int = 0, eos_bias: float = 0.0, scale=2.0
    ):
        gen = torch.Generator().manual_seed(seed)

        def rand(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=gen, dtype=torch.float64)

        self.emb, self.out = rand(vocab, hidden), rand(hidden, vocab)
        self.w = rand(3 * hidden, hidden) / (3 * hidden) ** 0.5
        self.out *= scale  # a small scale gives near-ties, as in an untrained model
        self.out[:, EOS] = 0.0
        self.bias = torch.zeros(vocab, dtype=torch.float64)
        self.bias[EOS] = eos_bias
        self.seen: set[tuple[int, ...]] = set()  # every history the decoder stepped on
        self.rows: list[int] = []  # N of every step

    def memory(self, enc: FakeEnc) -> FakeEnc:
        return enc

    def init_state(self, enc: FakeEnc) -> FakeState:
        mean = enc.states.sum(1) / enc.mask.sum(1, keepdim=True)  # (B, H)
        return FakeState(torch.tanh(mean), torch.empty(len(mean), 0, dtype=torch.long))

    def step(self, prev: Tensor, state: FakeState, enc: FakeEnc):
        enc = enc.rows(len(prev))
        energy = (enc.states @ state.h[:, :, None]).squeeze(2)  # (N, S)
        attn = energy.masked_fill(~enc.mask, float("-inf")).softmax(-1)  # (N, S)
        context = (attn[:, :, None] * enc.states).sum(1)  # (N, H)
        h = torch.tanh(torch.cat([self.emb[prev], context, state.h], 1) @ self.w)  # (N, H)
        history = torch.cat([state.history, prev[:, None]], 1)
        self.seen.update(map(tuple, history.tolist()))
        self.rows.append(len(prev))
        return h @ self.out + self.bias, FakeState(h, history), attn

    def log_prob(self, enc: FakeEnc, tokens: list[int]) -> float:
        """Teacher-forced log P(tokens, EOS) of a one-sentence enc, with PAD and BOS allowed."""
        state, total = self.init_state(enc), 0.0
        for prev, token in zip([BOS, *tokens], [*tokens, EOS], strict=True):
            logits, state, _ = self.step(torch.tensor([prev]), state, enc)
            total += float(logits.log_softmax(-1)[0, token])
        return total


def test_beam_finds_what_greedy_misses():
    # Greedy takes A (0.5) and then ends with p 0.5 * 0.4 = 0.20; the beam also keeps B (0.4),
    # which ends with 0.4 * 0.9 = 0.36, the best sequence.
    table = {
        (): {A: 0.5, B: 0.4, EOS: 0.1},
        (A,): {EOS: 0.4, B: 0.3, C: 0.3},
        (B,): {EOS: 0.9, C: 0.1},
    }
    dec, enc, max_len = ScriptedDecoder(table), make_enc([3]), torch.tensor([5])
    assert greedy(dec, enc, max_len).tokens == [[[A]]]
    out = beam_search(dec, enc, 2, max_len, alpha=0.0)
    assert out.tokens == [[[B]]]
    assert out.scores[0][0] == pytest.approx(math.log(0.36), abs=1e-4)


def test_length_normalisation_changes_ranking():
    # [] ends at once with p 0.45; [A, B] has p 0.55 * 0.9 * 0.9 = 0.4455 and [A, C] 0.055.
    # alpha = 0 ranks the short one first; with alpha = 1, -0.809 / lp(3) = -0.607 beats -0.799.
    table = {(): {EOS: 0.45, A: 0.55}, (A,): {B: 0.9, C: 0.1}, (A, B): {EOS: 0.9, C: 0.1}}
    dec, enc, max_len = ScriptedDecoder(table), make_enc([2]), torch.tensor([6])
    raw = beam_search(dec, enc, 2, max_len, alpha=0.0, n_best=2)
    assert raw.tokens == [[[], [A, B]]]
    assert raw.scores[0] == pytest.approx([math.log(0.45), math.log(0.4455)], abs=1e-4)
    normed = beam_search(dec, enc, 2, max_len, alpha=1.0, n_best=2)
    assert normed.tokens == [[[A, B], []]]
    assert normed.scores[0] == pytest.approx(
        [math.log(0.4455) / length_penalty(3, 1.0), math.log(0.45)], abs=1e-4
    )


def test_stops_when_beam_hypotheses_have_finished():
    # [] has p 0.52: log P = -0.654 (lp(1) = 1). [A, B] has p 0.48: -0.734 / lp(3) = -0.551 with
    # alpha = 1, the better score. Beam 1 stops at its first finished hypothesis, like greedy;
    # beam 2 keeps A alive until two hypotheses have finished (other prefixes never end).
    table = {(): {EOS: 0.52, A: 0.48}, (A,): {B: 1.0}, (A, B): {EOS: 1.0}}
    dec = ScriptedDecoder(table, default={A: 0.5, B: 0.5})
    enc, max_len = make_enc([2]), torch.tensor([8])
    assert beam_search(dec, enc, 1, max_len, alpha=1.0).tokens == [[[]]]
    assert beam_search(dec, enc, 2, max_len, alpha=1.0).tokens == [[[A, B]]]


def test_stops_when_nothing_live_can_win():
    # After step 1, [] (p 0.9) beats both live prefixes (p 0.05), which only get less likely, and
    # never end (default: A or B). Without this rule the beam would wait for 3 finished ones,
    # i.e. run to the max length.
    table = {(): {EOS: 0.9, A: 0.05, B: 0.05}}
    dec = ScriptedDecoder(table, default={A: 0.5, B: 0.5})
    out = beam_search(dec, make_enc([2]), 3, torch.tensor([10]), alpha=0.0)
    assert out.tokens == [[[]]] and dec.steps == 1


def test_immediate_eos_gives_empty_hypothesis():
    dec, enc = ScriptedDecoder({(): {EOS: 0.9, A: 0.1}}), make_enc([2, 3])
    max_len = torch.tensor([4, 4])
    for out in (greedy(dec, enc, max_len), beam_search(dec, enc, 3, max_len)):
        assert out.tokens == [[[]], [[]]]
    # A zero max length forces EOS first, even where the model prefers A.
    dec, max_len = ScriptedDecoder({(): {A: 0.9, EOS: 0.1}}), torch.tensor([0, 1])
    for out in (greedy(dec, enc, max_len), beam_search(dec, enc, 3, max_len)):
        assert out.tokens[0] == [[]] and out.scores[0][0] == pytest.approx(math.log(0.1), abs=1e-4)
        assert out.tokens[1] == [[A]]


def test_pad_and_bos_never_produced():
    # The model prefers PAD (0.6) and BOS (0.3); the search takes the best allowed token, A, and
    # keeps the model's own probability 0.1 * 1.0 as the score.
    dec = ScriptedDecoder({(): {PAD: 0.6, BOS: 0.3, A: 0.1}, (A,): {EOS: 1.0}})
    enc, max_len = make_enc([2]), torch.tensor([4])
    for out in (greedy(dec, enc, max_len), beam_search(dec, enc, 2, max_len, alpha=0.0)):
        assert out.tokens == [[[A]]]
        assert out.scores[0][0] == pytest.approx(math.log(0.1), abs=1e-4)

    lengths, max_len = [3, 5, 2, 4], torch.tensor([0, 3, 7, 1])
    dec, enc = RandomDecoder(eos_bias=-20.0, seed=1), make_enc(lengths)  # EOS almost never chosen
    for out in (greedy(dec, enc, max_len), beam_search(dec, enc, 3, max_len, alpha=0.0, n_best=3)):
        for b, hyps in enumerate(out.tokens):
            assert [len(h) for h in hyps] == [int(max_len[b])] * len(hyps)
            for hyp, score in zip(hyps, out.scores[b], strict=True):
                assert not {PAD, BOS, EOS} & set(hyp)
                assert score == pytest.approx(dec.log_prob(one_sentence(enc, b), hyp), rel=1e-6)


@pytest.mark.parametrize("scale", [2.0, 1e-5])
def test_beam_one_is_greedy(scale: float):
    # Exactly: same tokens, same float32 scores, same attention, also with logits that differ
    # by less than the rounding of a long hypothesis's score (scale 1e-5).
    for seed in range(4):
        lengths = [1 + (7 * i + seed) % 6 for i in range(12)]
        max_len = torch.tensor([(3 * i + seed) % 30 for i in range(12)])
        dec = RandomDecoder(seed=seed, eos_bias=1.0 if scale > 1 else -0.1, scale=scale)
        enc = make_enc(lengths, seed=seed)
        gold = greedy(dec, enc, max_len, return_attention=True)
        out = beam_search(dec, enc, 1, max_len, alpha=0.0, return_attention=True)
        assert out.tokens == gold.tokens and out.scores == gold.scores
        for mine, theirs in zip(out.attention, gold.attention, strict=True):
            assert torch.equal(mine[0], theirs[0])
        assert sum(len(h[0]) > 1 for h in gold.tokens) > 3  # the outputs are not trivial


class TieDecoder(HistoryDecoder):
    """25 steps where C is barely best of 10 (log p ~ -2.3 each), then A and B whose logits are
    one float apart (`high` the higher one), then EOS. Their log-probabilities round to a tie,
    and so do score + log p after 25 steps (~ -57): beam 1 must still take `high`, as greedy."""

    def __init__(self, high: int):
        self.high = high

    def logits(self, history: Tensor) -> Tensor:
        logits, done = torch.zeros(len(history), 10), history.size(1) - 1
        if done < 25:
            logits[:, C] = 1e-3
        elif done == 25:
            logits[:, [A, B]] = 1e-3
            logits[:, self.high] = torch.nextafter(torch.tensor(1e-3), torch.tensor(1.0))
        else:
            logits[:, EOS] = 10.0
        return logits


@pytest.mark.parametrize("high", [A, B])
def test_beam_one_is_greedy_on_ties_of_rounding(high: int):
    dec, enc, max_len = TieDecoder(high), make_enc([2]), torch.tensor([40])
    gold = greedy(dec, enc, max_len)
    assert gold.tokens == [[[C] * 25 + [high]]]
    out = beam_search(dec, enc, 1, max_len, alpha=0.0)
    assert out.tokens == gold.tokens and out.scores == gold.scores


@pytest.mark.parametrize("beam", [1, 3])
def test_batched_equals_one_by_one(beam: int):
    lengths, max_len = [4, 1, 6, 3, 5, 2], torch.tensor([5, 2, 9, 0, 7, 4])
    dec, enc = RandomDecoder(seed=3, eos_bias=0.5), make_enc(lengths, seed=3)
    batched = beam_search(dec, enc, beam, max_len, alpha=0.8, n_best=beam, return_attention=True)
    gbatched = greedy(dec, enc, max_len)
    for b in range(len(lengths)):
        alone = beam_search(
            dec,
            one_sentence(enc, b),
            beam,
            max_len[b : b + 1],
            alpha=0.8,
            n_best=beam,
            return_attention=True,
        )
        assert batched.tokens[b] == alone.tokens[0]
        assert batched.scores[b] == pytest.approx(alone.scores[0], abs=1e-6)
        for mine, theirs in zip(batched.attention[b], alone.attention[0], strict=True):
            assert mine.shape[0] == theirs.shape[0]
            assert torch.allclose(mine[:, : lengths[b]], theirs, atol=1e-6)
            assert not mine[:, lengths[b] :].any()  # no attention on padding
        assert gbatched.tokens[b] == greedy(dec, one_sentence(enc, b), max_len[b : b + 1]).tokens[0]


def test_n_best_sorted_and_distinct():
    dec, enc = RandomDecoder(seed=5, eos_bias=0.5), make_enc([3, 5, 4])
    max_len = torch.tensor([6, 8, 7])
    out = beam_search(dec, enc, 5, max_len, alpha=1.0, n_best=4, return_attention=True)
    for hyps, scores, attn in zip(out.tokens, out.scores, out.attention, strict=True):
        assert len(hyps) == 4 and len({tuple(h) for h in hyps}) == 4
        assert scores == sorted(scores, reverse=True)
        assert [a.shape[0] for a in attn] == [len(h) for h in hyps]


def test_states_are_reordered_not_recomputed():
    # The decoder depends on its state: a state moved with the wrong hypothesis would give
    # scores that a teacher-forced rescoring of the returned tokens does not reproduce.
    lengths, max_len = [5, 2, 4], torch.tensor([6, 6, 6])
    dec, enc = RandomDecoder(seed=7, eos_bias=-1.0), make_enc(lengths, seed=7)
    out = beam_search(dec, enc, 4, max_len, alpha=0.0, n_best=4)
    for b, (hyps, scores) in enumerate(zip(out.tokens, out.scores, strict=True)):
        for hyp, score in zip(hyps, scores, strict=True):
            assert (BOS, *hyp) in dec.seen  # some state's history was exactly this hypothesis
            assert score == pytest.approx(dec.log_prob(one_sentence(enc, b), hyp), rel=1e-6)


def test_finished_sentences_leave_the_batch():
    dec, enc = RandomDecoder(eos_bias=-20.0), make_enc([2, 2, 2])
    beam_search(dec, enc, 2, torch.tensor([1, 3, 5]))
    assert dec.rows == [6, 6, 4, 4, 2, 2]  # B*K rows, minus K each time a sentence ends
    dec.rows.clear()
    greedy(dec, enc, torch.tensor([1, 3, 5]))
    assert dec.rows == [3, 3, 2, 2, 1, 1]


def test_bad_beam_settings():
    dec, enc = RandomDecoder(), make_enc([2])
    for beam, n_best in [(0, 1), (2, 3), (2, 0)]:
        with pytest.raises(ConfigError):
            beam_search(dec, enc, beam, torch.tensor([3]), n_best=n_best)
