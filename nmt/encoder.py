"""Encoder: a stacked bidirectional LSTM/GRU/RNN over padded source sentences (Bahdanau 2015, 3.2).

    h_j = [forward h_j; backward h_j]   the states of the top layer at each source position j
    summary = [forward h_{last}; backward h_1]

Padding must never leak into the states or the summary: the sentences are packed
(pack_padded_sequence), so each direction starts and ends at the sentence's real tokens. On the
CPU the fast kernels run the same layers without packing (nmt/kernels/encoder.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt import kernels
from nmt.dropout import Dropout
from nmt.embeddings import Embeddings
from nmt.kernels.encoder import State, encode_unpacked
from nmt.vocab import PAD

RNN_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@dataclass
class EncoderOutput:
    """What the decoder reads from the source side.

    states: (B, S, H) top-layer outputs, forward and backward halves concatenated (zero at padding)
    mask: (B, S) bool, True at real tokens (src_tokens != PAD; an empty sentence has none)
    final: (B, H) last layer's final forward and backward hidden states (the sentence summary)
    final_cell: (B, H) the same for the LSTM cell state; None for gru/rnn
    """

    states: Tensor
    mask: Tensor
    final: Tensor
    final_cell: Tensor | None = None

    def select(self, index: Tensor) -> EncoderOutput:
        """Rows `index` (N,) of the batch: expands sentences over beams or reorders them."""
        return EncoderOutput(
            self.states.index_select(0, index),  # (N, S, H)
            self.mask.index_select(0, index),  # (N, S)
            self.final.index_select(0, index),  # (N, H)
            None if self.final_cell is None else self.final_cell.index_select(0, index),
        )


class Encoder(nn.Module):
    """Embeddings -> word dropout -> dropout -> bidirectional recurrent layers (H/2 per
    direction) -> dropout of the states (`enc_dropout`)."""

    def __init__(self, embeddings: Embeddings, hidden_size: int, layers: int = 1,
                 cell: str = "lstm", dropout: float = 0.0, enc_dropout: float = 0.0,
                 word_dropout: float = 0.0):
        super().__init__()
        self.embeddings = embeddings
        self.word_dropout = Dropout(word_dropout, whole_tokens=True)
        self.dropout = Dropout(dropout)
        self.state_dropout = Dropout(enc_dropout)
        self.layers = layers
        self.rnn = RNN_CLASSES[cell](embeddings.embedding_dim, hidden_size // 2, num_layers=layers,
                                     batch_first=True, bidirectional=True,
                                     dropout=dropout if layers > 1 else 0.0)  # between layers

    def forward(self, src_tokens: Tensor, src_lengths: Tensor) -> EncoderOutput:
        """Encode (B, S) token ids, PAD exactly at padding, with their (B,) lengths on the CPU."""
        emb = self.dropout(self.word_dropout(self.embeddings(src_tokens)))  # (B, S, E)
        # An empty sentence would make packing fail: it is encoded as its (padded) first position.
        lengths = src_lengths.cpu().clamp(min=1)
        # Mask from the tokens, not the CPU lengths: no host-to-device copy (and wait) per batch.
        mask = src_tokens != PAD  # (B, S)
        if kernels.enabled() and emb.device.type == "cpu":
            states, final = encode_unpacked(self.rnn, emb, lengths, self.dropout)
        else:
            states, final = self._packed(emb, lengths)
        states = self.state_dropout(states)  # padding stays zero; the summary is not dropped
        if isinstance(final, tuple):  # LSTM: (h, c)
            return EncoderOutput(states, mask, final[0], final[1])
        return EncoderOutput(states, mask, final)

    def _packed(self, emb: Tensor, lengths: Tensor) -> tuple[Tensor, State]:
        """All layers and directions in one call of the packed kernel."""
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=emb.size(1))
        if isinstance(final, tuple):
            return states, (self._summary(final[0]), self._summary(final[1]))
        return states, self._summary(final)

    def _summary(self, final: Tensor) -> Tensor:
        """(2L, B, H/2) final states in the input order -> last layer's directions (B, H)."""
        last = final.view(self.layers, 2, final.size(1), -1)[-1]  # (2, B, H/2)
        return torch.cat([last[0], last[1]], dim=-1)  # (B, H)
