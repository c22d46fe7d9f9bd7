"""Encoder: a stacked bidirectional LSTM/GRU/RNN over padded source sentences (Bahdanau 2015, 3.2).

Padding must never leak into the states or the final summary: the backward direction starts at
each sentence's last real token. On a GPU the sentences are packed, which cuDNN runs as one fused
kernel. On the CPU oneDNN fuses the whole sequence too, but only without packing (PyTorch runs
packed sequences on the CPU one step at a time). So there `_unpacked` runs each
direction as one call over the padded batch, the backward one on every sentence reversed within
its length, so that padding always comes after the real tokens and cannot reach them. Each
sentence's final h is its output at its last real token. The LSTM's final cell state is not an
output: it is carried through the padding unchanged, by one extra input column, 1 at padding and
0 elsewhere, whose weight (+/-FREEZE on the forget/input gates) makes f exactly 1 and i exactly 0
there, so c_t = c_{t-1} exactly and no gradient reaches the padding steps, in one call per
direction (cutting the time axis at each distinct length was slower).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.dropout import Dropout
from nmt.embeddings import Embeddings
from nmt.vocab import PAD

RNN_CLASSES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
# The multi-step kernels nn.LSTM / GRU / RNN call, for one direction of one layer.
KERNELS = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}
# A gate pre-activation of +/-FREEZE saturates the float32 (and bf16) sigmoid to exactly 1 / 0,
# whatever the rest of it: at padding the inputs are PAD's zero embedding or the outputs of the
# layer below, and the states, all bounded by the cell's tanh.
FREEZE = 1e4

# A recurrent state, or a final summary: (h, c) for the LSTM, h otherwise.
State = Tensor | tuple[Tensor, Tensor]


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
    """Embeddings -> dropout -> bidirectional recurrent layers (H/2 per direction)."""

    def __init__(
        self,
        embeddings: Embeddings,
        hidden_size: int,
        layers: int = 1,
        cell: str = "lstm",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.embeddings = embeddings
        self.dropout = Dropout(dropout)
        self.hidden_size = hidden_size
        self.layers = layers
        self.cell = cell
        # Holds the parameters (and runs the packed path); `_unpacked` calls its kernel itself.
        self.rnn = RNN_CLASSES[cell](
            embeddings.embedding_dim,
            hidden_size // 2,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,  # between layers only
        )

    def forward(self, src_tokens: Tensor, src_lengths: Tensor) -> EncoderOutput:
        """Encode (B, S) token ids, PAD exactly at padding, with their (B,) lengths on the CPU."""
        emb = self.dropout(self.embeddings(src_tokens))  # (B, S, E)
        # An empty sentence would make packing fail: it is encoded as its (padded) first position.
        lengths = src_lengths.cpu().clamp(min=1)
        # Mask from the tokens, not the CPU lengths: no host-to-device copy (and wait) per batch.
        mask = src_tokens != PAD  # (B, S)
        if emb.device.type == "cpu":
            states, final = self._unpacked(emb, lengths)
        else:
            states, final = self._packed(emb, lengths)
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

    def _unpacked(self, emb: Tensor, lengths: Tensor) -> tuple[Tensor, State]:
        """One unpacked call per layer and direction (module docstring)."""
        batch, src_len = emb.shape[:2]
        steps = torch.arange(src_len).expand(batch, -1)  # (B, S)
        inside = steps < lengths[:, None]  # (B, S)
        # Reversal within each length (padding stays in place); its own inverse.
        flip = torch.where(inside, lengths[:, None] - 1 - steps, steps).to(emb.device)  # (B, S)
        inside = inside.to(emb.device)
        last = (lengths - 1).to(emb.device)  # (B,) each sentence's last real position
        x = emb
        for layer in range(self.layers):
            if layer:
                x = self.dropout(x)
            forward_out, forward_final = self._direction(x, layer, "", inside, last)
            backward_out, backward_final = self._direction(_gather(x, flip), layer, "_reverse",
                                                           inside, last)
            x = torch.cat([forward_out, _gather(backward_out, flip)], dim=-1)  # (B, S, H)
        states = x * inside.unsqueeze(2)  # zero at padding, as packing gives
        if self.cell == "lstm":
            return states, (torch.cat([forward_final[0], backward_final[0]], dim=-1),
                            torch.cat([forward_final[1], backward_final[1]], dim=-1))
        return states, torch.cat([forward_final, backward_final], dim=-1)

    def _direction(self, x: Tensor, layer: int, suffix: str, inside: Tensor,
                   last: Tensor) -> tuple[Tensor, State]:
        """One direction of one layer over x (B, S, in), padding after the real tokens.

        Returns the outputs (B, S, H/2), wrong at padding, and each sentence's state after its
        last real token.
        """
        rnn = self.rnn
        names = [f"weight_ih_l{layer}", f"weight_hh_l{layer}", f"bias_ih_l{layer}",
                 f"bias_hh_l{layer}"]
        params = [getattr(rnn, name + suffix) for name in names]
        if self.cell == "lstm":
            x, params[0] = _with_freeze_column(x, params[0], inside)
        h = x.new_zeros(1, x.size(0), rnn.hidden_size)  # (1, B, H/2)
        state: State = (h, h) if self.cell == "lstm" else h
        out, *new = KERNELS[self.cell](x, state, params, True, 1, 0.0, self.training, False, True)
        final_h = out[torch.arange(x.size(0), device=x.device), last]  # (B, H/2)
        if self.cell == "lstm":
            return out, (final_h, new[1][0])  # c, frozen since the last real token
        return out, final_h


def _with_freeze_column(x: Tensor, weight_ih: Tensor, inside: Tensor) -> tuple[Tensor, Tensor]:
    """x (B, S, in) and the LSTM's W_ih (4H, in), each with the extra column that freezes the
    cell state at padding (module docstring): (B, S, in + 1), (4H, in + 1). Gates are i, f, g, o."""
    size = weight_ih.size(0) // 4
    column = weight_ih.new_zeros(4 * size, 1)  # a constant: it gets no gradient
    column[:size], column[size : 2 * size] = -FREEZE, FREEZE
    padding = (~inside).to(x.dtype).unsqueeze(2)  # (B, S, 1)
    return torch.cat([x, padding], dim=2), torch.cat([weight_ih, column], dim=1)


def _gather(x: Tensor, index: Tensor) -> Tensor:
    """x (B, S, D) with its time steps taken as index (B, S) says, per sentence."""
    return x.gather(1, index.unsqueeze(2).expand(-1, -1, x.size(2)))
