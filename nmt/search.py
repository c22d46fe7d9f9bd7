"""Greedy and beam search, batched over sentences and beams, on the decoder's step() protocol.

Both searches use only `decoder.init_state(enc)`, `decoder.memory(enc)`,
`decoder.step(prev, state, memory)`, `state.select(index)` and `memory.select(index)`: the
reorder contract of fairseq's `reorder_incremental_state` / `reorder_encoder_out`. The encoder
runs once, before the search; beam search expands the state over the beam once, then reorders it
with index_select at every step. The memory (what is fixed per sentence, such as the attention
keys) keeps one row per sentence, selected only when sentences leave the batch: step() gets N
rows of state and B' rows of memory, the N / B' consecutive rows of a sentence (its beams) reading
its one row of memory. Expanding the memory over the beam instead cost K copies of it and of
every selection.

Lengths. Sentence b gets at most `max_lengths[b]` output tokens (the caller computes a*|src|+b).
A hypothesis that reaches it is made to end: EOS is the only allowed next token, and its
probability is scored, so every hypothesis pays for a real EOS. PAD and BOS are never produced.
Returned tokens exclude BOS and EOS; an immediate EOS gives an empty list.

Scores. A hypothesis y of n tokens has log P = log p(y_1 .. y_n, EOS | x), summed over n + 1
steps. Beam search ranks finished hypotheses by the length-normalised score of GNMT (Wu et al.
2016, eq. 14, without the coverage term)

    score = log P / lp(n + 1),    lp(len) = ((5 + len) / 6) ** alpha

alpha = 0 gives the raw log-probability, which prefers short outputs; larger alpha favours longer
ones. `Hypotheses.scores` holds this score (greedy: log P).

Beam search (K = beam) follows fairseq: each step takes the top 2K of the (B, K*V) candidate
scores (in two stages: each row's 2K best tokens by logit, then the 2K best of a sentence's K*2K
by score); EOS candidates ranked within the top K become finished hypotheses, and the K best
other candidates are the next beam. A sentence is done when
  1. K of its hypotheses have finished (fairseq's rule: with alpha > 0 a live hypothesis could in
     principle still overtake them; stopping here is the accepted price of a bounded search), or
  2. no live hypothesis can beat its n_best-th finished one: log-probabilities only fall, so a
     live hypothesis of log P = s can at best score s / lp(longest allowed length) (for alpha >= 0).
     This rule only ends sooner what rule 1 would end with the same n-best list, or
  3. it reached its max length (all its live hypotheses were made to end).
With K = 1 the first finished hypothesis ends the sentence and the beam is exactly greedy,
float32 scores included: both rank by logits, and a stable sort keeps that order where adding a
long hypothesis's score would round two candidates to a tie.

Finished sentences leave the batch: their rows are dropped with select (OpenNMT-py, fairseq,
Marian), so later steps compute live sentences only. On CPU this beats fixed shapes with masking
(Sockeye 3), which keep paying for finished rows; its price is one host sync per step on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Self

import torch
from torch import Tensor

from nmt.errors import ConfigError
from nmt.vocab import BOS, EOS, PAD

if TYPE_CHECKING:
    from nmt.sampling import Sampler

_NEG_INF = float("-inf")


class Encoded(Protocol):
    """What search needs of an EncoderOutput, and of the decoder's memory."""

    mask: Tensor  # (B, S) bool, True = real token

    def select(self, index: Tensor) -> Self: ...  # rows `index`: dropping finished sentences


class StepDecoder(Protocol):
    """What search needs of a Decoder; its state has `select(index) -> state` for reordering."""

    def init_state(self, enc: Any) -> Any: ...

    def memory(self, enc: Any) -> Encoded: ...

    def step(self, prev: Tensor, state: Any, memory: Any) -> tuple[Tensor, Any, Tensor]:
        """prev (N,) -> logits (N, V), next state, attention (N, S); memory has one row per
        sentence, for its N / B' consecutive rows (module docstring)."""
        ...


@dataclass
class Hypotheses:
    """Search output for a batch, best hypothesis first for every sentence."""

    tokens: list[list[list[int]]]  # B x n_best x len, without BOS/EOS
    scores: list[list[float]]  # B x n_best
    attention: list[list[Tensor]] | None = None  # B x n_best x (len, S), on the CPU


def length_penalty(length: Any, alpha: float) -> Any:
    """GNMT length penalty ((5 + length) / 6) ** alpha; length counts the EOS."""
    return ((5.0 + length) / 6.0) ** alpha


def _candidates(logits: Tensor, must_end: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """The `width` best allowed next tokens of each row and their log-probabilities, (N, W) each.

    Allowed: anything but PAD and BOS; only EOS in rows that must_end (N,). Ranking by logits
    orders exactly as the softmax does, where log-probabilities could round two logits to a tie;
    only the chosen ones are normalised (by the model's own normaliser, before the bans).
    """
    logits = logits.float()  # (N, V); bf16/fp16 under autocast would round the scores
    norm = logits.logsumexp(-1, keepdim=True)  # (N, 1)
    logits[:, [PAD, BOS]] = _NEG_INF  # in place: the decoder keeps no reference to its logits
    top, token = logits.topk(min(width, logits.size(1)), dim=1)  # (N, W), best first
    # Rows that must end get EOS first and -inf after it, on the (N, W) result: masking the
    # whole (N, V) logits instead was 3% of a beam step.
    end = must_end[:, None]  # (N, 1)
    first = torch.arange(top.size(1), device=top.device) == 0  # (W,)
    top = torch.where(end, torch.where(first, logits[:, EOS, None], _NEG_INF), top)
    token = torch.where(end & first, EOS, token)
    return top - norm, token


def _max_lengths(max_lengths: Tensor, device: torch.device) -> tuple[Tensor, int]:
    """Per-sentence max lengths on the device, and the number of steps the longest may take."""
    max_len = max_lengths.to(device=device, dtype=torch.long).clamp(min=0)  # (B,)
    return max_len, int(max_len.max()) + 1 if max_len.numel() else 0


def drop_finished(ended: Tensor, alive: Tensor, token: Tensor, state: Any,
                  memory: Any) -> tuple[Tensor, Tensor, Any, Any] | None:
    """The rows whose sentence has not ended (ended (N,) bool): their sentence numbers, tokens,
    state and memory, the same objects when none ended; None when none is left. One host sync."""
    if not bool(ended.any()):
        return alive, token, state, memory
    keep = (~ended).nonzero().squeeze(1)  # (N',)
    if keep.numel() == 0:
        return None
    return alive[keep], token[keep], state.select(keep), memory.select(keep)


@torch.inference_mode()
def greedy(
    decoder: StepDecoder,
    enc: Encoded,
    max_lengths: Tensor,
    return_attention: bool = False,
    sampler: Sampler | None = None,
) -> Hypotheses:
    """Most probable token at each step, for all sentences at once; scores are log P.

    The choice is an argmax of the logits (a softmax would not change it); only the chosen
    token is normalised, for its score. Finished sentences leave the batch. With a sampler
    (sampling.py), each token is drawn from the sampler's candidates instead.
    """
    batch, src_len = enc.mask.shape
    device = enc.mask.device
    max_len, steps = _max_lengths(max_lengths, device)
    tokens = torch.full((batch, steps), EOS, dtype=torch.long, device=device)  # (B, T)
    scores = torch.zeros(batch, device=device)  # (B,)
    attention = torch.zeros(batch, steps, src_len, device=device) if return_attention else None
    alive = torch.arange(batch, device=device)  # (N,) sentence of each row still decoding
    prev = torch.full((batch,), BOS, dtype=torch.long, device=device)  # (N,)
    state = decoder.init_state(enc) if batch else None
    memory = decoder.memory(enc) if batch else None
    for t in range(steps):
        logits, state, attn = decoder.step(prev, state, memory)  # (N, V), (N, S)
        must_end = t >= max_len[alive]  # (N,)
        if sampler is None:
            logp, token = _candidates(logits, must_end, 1)  # (N, 1) each
            logp, token = logp.squeeze(1), token.squeeze(1)  # (N,)
        else:
            width = sampler.width or logits.size(1)
            logp, token = sampler.choose(*_candidates(logits, must_end, width), alive, t)
        scores[alive] += logp
        tokens[alive, t] = token
        if attention is not None:
            attention[alive, t] = attn.float()
        ended = token == EOS  # (N,)
        kept = drop_finished(ended, alive, token, state, memory)
        if kept is None:
            break
        alive, prev, state, memory = kept
    lengths = (tokens != EOS).sum(1).tolist()  # tokens before the first EOS
    rows = tokens.cpu().tolist()
    attn = None
    if attention is not None:
        attn = [[a[:n]] for a, n in zip(attention.cpu(), lengths, strict=True)]
    return Hypotheses(
        [[row[:n]] for row, n in zip(rows, lengths, strict=True)],
        [[s] for s in scores.tolist()],
        attn,
    )


class _Finished:
    """Finished hypotheses of every sentence, kept in fixed tensors of 2K slots per sentence.

    Before a step a live sentence has fewer than K finished hypotheses, and a step adds at most
    K more, so 2K slots never overflow.
    """

    def __init__(
        self, batch: int, beam: int, steps: int, src_len: int, device: torch.device, attention: bool
    ):
        slots = 2 * beam
        self.count = torch.zeros(batch, dtype=torch.long, device=device)  # (B,)
        self.scores = torch.full((batch, slots), _NEG_INF, device=device)  # (B, 2K) normalised
        self.lengths = torch.zeros(batch, slots, dtype=torch.long, device=device)  # (B, 2K)
        self.tokens = torch.full((batch, slots, steps), EOS, dtype=torch.long, device=device)
        self.attention = (
            torch.zeros(batch, slots, steps, src_len, device=device) if attention else None
        )  # (B, 2K, T, S)

    def add(
        self,
        sent: Tensor,
        ended: Tensor,
        log_p: Tensor,
        rows: Tensor,
        t: int,
        alpha: float,
        history: Tensor,
        history_attn: Tensor | None,
    ) -> None:
        """Store the hypotheses flagged in ended (B', K): row rows[i, j], then EOS at step t."""
        slot = self.count[sent, None] + ended.cumsum(1) - 1  # (B', K)
        i, j = ended.nonzero(as_tuple=True)  # (M,) each
        b, s, r = sent[i], slot[i, j], rows[i, j]
        self.scores[b, s] = (log_p[i, j] / length_penalty(t + 1, alpha)).float()
        self.lengths[b, s] = t
        self.tokens[b, s] = history[r]
        if self.attention is not None and history_attn is not None:
            self.attention[b, s] = history_attn[r]
        self.count[sent] += ended.sum(1)

    def nth_best(self, sent: Tensor, n: int) -> Tensor:
        """(B',) n-th best finished score of each sentence; -inf while fewer than n finished."""
        return self.scores[sent].topk(n, dim=1).values[:, -1]

    def best(self, n_best: int) -> Hypotheses:
        """Up to n_best hypotheses per sentence, best first (ties: the earlier finished)."""
        order = self.scores.argsort(dim=1, descending=True, stable=True)[:, :n_best].tolist()
        scores, lengths = self.scores.tolist(), self.lengths.tolist()
        tokens = self.tokens.cpu()
        attention = self.attention.cpu() if self.attention is not None else None
        out_tokens, out_scores, out_attn = [], [], []
        for b, slots in enumerate(order):
            slots = [s for s in slots if scores[b][s] > _NEG_INF]
            out_tokens.append([tokens[b, s, : lengths[b][s]].tolist() for s in slots])
            out_scores.append([scores[b][s] for s in slots])
            if attention is not None:
                out_attn.append([attention[b, s, : lengths[b][s]] for s in slots])
        return Hypotheses(out_tokens, out_scores, out_attn if attention is not None else None)


@torch.inference_mode()
def beam_search(
    decoder: StepDecoder,
    enc: Encoded,
    beam: int,
    max_lengths: Tensor,
    alpha: float = 1.0,
    n_best: int = 1,
    return_attention: bool = False,
) -> Hypotheses:
    """Beam search over all sentences at once: one (B*K, ...) batch, one selection per step.

    Returns up to n_best hypotheses per sentence (fewer only if fewer could finish), ranked by
    the length-normalised score described in the module docstring.
    """
    if beam < 1 or not 1 <= n_best <= beam:
        raise ConfigError(f"need beam >= 1 and 1 <= n-best <= beam, got {beam} and {n_best}")
    k = beam
    batch, src_len = enc.mask.shape
    device = enc.mask.device
    max_len, steps = _max_lengths(max_lengths, device)
    finished = _Finished(batch, k, steps, src_len, device, return_attention)
    if batch == 0:
        return finished.best(n_best)
    expand = torch.arange(batch, device=device).repeat_interleave(k)  # (N,) = (B*K,)
    state = decoder.init_state(enc).select(expand)  # the bridge once per sentence
    memory = decoder.memory(enc)  # one row per sentence, for its K rows
    sent = torch.arange(batch, device=device)  # (B',) sentence of each live group of K rows
    scores = torch.full((batch, k), _NEG_INF, device=device)  # (B', K) log P of live hypotheses
    scores[:, 0] = 0.0  # all K rows start equal: let only the first one expand
    history = torch.full((batch * k, steps), EOS, dtype=torch.long, device=device)  # (N, T)
    history_attn = None
    if return_attention:
        history_attn = torch.zeros(batch * k, steps, src_len, device=device)  # (N, T, S)
    prev = torch.full((batch * k,), BOS, dtype=torch.long, device=device)  # (N,)
    for t in range(steps):
        logits, state, attn = decoder.step(prev, state, memory)  # (N, V), (N, S)
        live = sent.numel()
        # Two stages: each row's 2K best tokens hold the sentence's 2K best of K*V candidates.
        logp, token = _candidates(logits, (t >= max_len[sent]).repeat_interleave(k), 2 * k)
        width = logp.size(1)  # W = 2K (fewer only for a vocabulary below 2K)
        cand = (scores.view(-1, 1) + logp).view(live, k * width)  # (B', K*W)
        # A stable sort keeps each row's logit order where adding the score rounds to a tie.
        top, index = cand.sort(dim=1, descending=True, stable=True)  # (B', K*W)
        top, index = top[:, : 2 * k], index[:, : 2 * k]  # (B', 2K) best first
        token = token.view(live, k * width).gather(1, index)  # (B', 2K)
        rows = index // width + (torch.arange(live, device=device) * k)[:, None]  # (B', 2K) parent
        is_eos = token == EOS  # (B', 2K)
        ended = is_eos[:, :k] & (top[:, :k] > _NEG_INF)  # (B', K)
        finished.add(sent, ended, top[:, :k], rows[:, :k], t, alpha, history, history_attn)
        # The K best non-EOS candidates, in rank order (a stable sort puts False first); there
        # are at most K EOS among the 2K, one per parent.
        pick = is_eos.sort(dim=1, stable=True).indices[:, :k]  # (B', K)
        scores, rows, token = top.gather(1, pick), rows.gather(1, pick), token.gather(1, pick)
        lp_max = length_penalty(max_len[sent] + 1, alpha).clamp(min=length_penalty(t + 2, alpha))
        done = (
            (finished.count[sent] >= k)
            | (t >= max_len[sent])
            | (finished.nth_best(sent, n_best) >= scores[:, 0] / lp_max)
        )  # (B',)
        keep = (~done).nonzero().squeeze(1)  # (B'',) host sync: finished sentences leave
        if keep.numel() == 0:
            break
        rows, token = rows[keep].view(-1), token[keep].view(-1)  # (N',)
        history = history[rows]
        history[:, t] = token
        if history_attn is not None:
            history_attn = history_attn[rows]
            history_attn[:, t] = attn[rows].float()
        state = state.select(rows)
        if keep.numel() < live:
            memory = memory.select(keep)
        scores, sent, prev = scores[keep], sent[keep], token
    return finished.best(n_best)
