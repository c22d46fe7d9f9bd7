"""Ensemble decoding: several models translate as one, on the step() protocol of search.py.

At each step every model computes its next-token log-probabilities log p_m(y) from its own state,
and the ensemble's are their mean, renormalised as search normalises one model's logits:

    log p(y) = mean_m log p_m(y) - log sum_y' exp(mean_m log p_m(y'))

(a normalised geometric mean, so scores stay log-probabilities). Its attention is the mean of
the models' attention (what the plots show). An ensemble of one is the model itself: its logits
pass through unchanged, and search's normalisation makes them the same distribution.

The models read one encoding of the source and write one target vocabulary: they must share the
source tokenizer and vocabulary and, for every task, the target vocabulary (check_compatible).
Different source vocabularies would need a batch and a source length per model, and attention
weights that could not be averaged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Self

import torch
from torch import Tensor

from nmt.checkpoint import LoadedModel
from nmt.errors import ConfigError


@dataclass(frozen=True)
class Joint:
    """One value per model (encoder output, decoder state or memory), selected together."""

    parts: tuple[Any, ...]

    @property
    def mask(self) -> Tensor:
        """(B, S) the source mask: the same for every model, which all read the same source."""
        return self.parts[0].mask

    def select(self, index: Tensor) -> Self:
        return type(self)(tuple(part.select(index) for part in self.parts))


class Ensemble:
    """The decoders of one task in several models, stepped as one decoder (module docstring)."""

    def __init__(self, decoders: list[Any]):
        self.decoders = decoders

    def init_state(self, enc: Joint) -> Joint:
        return Joint(tuple(d.init_state(e) for d, e in zip(self.decoders, enc.parts, strict=True)))

    def memory(self, enc: Joint) -> Joint:
        return Joint(tuple(d.memory(e) for d, e in zip(self.decoders, enc.parts, strict=True)))

    def step(self, prev: Tensor, state: Joint, memory: Joint) -> tuple[Tensor, Joint, Tensor]:
        """prev (N,) -> mean log-probabilities (N, V), next state, mean attention (N, S)."""
        outs = [
            d.step(prev, s, m)
            for d, s, m in zip(self.decoders, state.parts, memory.parts, strict=True)
        ]
        states = Joint(tuple(out[1] for out in outs))
        if len(outs) == 1:
            return outs[0][0], states, outs[0][2]
        log_probs = torch.stack([out[0].float().log_softmax(-1) for out in outs]).mean(0)
        attention = torch.stack([out[2].float() for out in outs]).mean(0)
        return log_probs, states, attention


def check_compatible(models: list[LoadedModel]) -> None:
    """A ConfigError naming both models unless every model has the first one's tasks, source
    tokenizer and vocabulary, and target vocabulary of each task."""
    first = models[0]
    for other in models[1:]:
        pair = f"{first.path} and {other.path}"
        if set(other.tasks) != set(first.tasks):
            raise ConfigError(
                f"{pair} cannot form an ensemble: their tasks differ "
                f"({', '.join(first.tasks)} against {', '.join(other.tasks)})"
            )
        if _side(first, "src", True) != _side(other, "src", True):
            raise ConfigError(
                f"{pair} cannot form an ensemble: their source tokenizers or vocabularies differ"
            )
        for task in first.tasks:
            if _side(first, task, False) != _side(other, task, False):
                raise ConfigError(
                    f"{pair} cannot form an ensemble: their target vocabularies ({task}) differ"
                )


def _side(loaded: LoadedModel, side: str, tokenizer: bool) -> tuple[str, bytes, bytes]:
    """What fixes a side's ids: its vocabulary file and (source) its tokenizer's settings and
    model file, by content (bundles name their files differently)."""
    manifest = loaded.meta.manifest
    vocab = loaded.files[manifest["vocab"][side]["file"]]
    if not tokenizer:
        return "", b"", vocab
    entry = dict(manifest["tokenizer"][side])
    model = loaded.files.get(entry.pop("model", ""), b"")
    return json.dumps(entry, sort_keys=True), model, vocab
