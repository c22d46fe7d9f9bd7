"""The encoder's recurrent layers on the CPU: one call per layer and direction over the padded
batch, instead of packed sentences (which PyTorch runs on the CPU one time step at a time).

Plain twin: Encoder._packed (nmt/encoder.py), nn.LSTM / GRU / RNN on packed sentences. Tests:
tests/test_encoder.py::test_fast_kernel_equals_the_packed_encoder (values, final states and every
gradient) and ::test_fast_kernel_in_bf16_stays_close.

Padding must never leak into the states or the final summary. The backward direction runs on every
sentence reversed within its length, so that padding always comes after the real tokens and
cannot reach them. Each sentence's final h is its output at its last real token. The LSTM's final
cell state is not an output: it is carried through the padding unchanged, by one extra input
column, 1 at padding and 0 elsewhere, whose weight (+/-FREEZE on the forget/input gates) makes f
exactly 1 and i exactly 0 there, so c_t = c_{t-1} exactly and no gradient reaches the padding
steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

# A gate pre-activation of +/-FREEZE saturates the float32 (and bf16) sigmoid to exactly 1 / 0,
# whatever the rest of it: at padding the inputs are PAD's zero embedding or the outputs of the
# layer below, and the states, all bounded by the cell's tanh.
FREEZE = 1e4

# A recurrent state, or a final summary: (h, c) for the LSTM, h otherwise.
State = Tensor | tuple[Tensor, Tensor]


def encode_unpacked(rnn: nn.RNNBase, emb: Tensor, lengths: Tensor,
                    dropout: Callable[[Tensor], Tensor]) -> tuple[Tensor, State]:
    """rnn's layers (bidirectional, batch first) over emb (B, S, E) with (B,) lengths >= 1 on the
    CPU; `dropout` between layers. Returns states (B, S, H), zero at padding, and the last
    layer's final states (B, H) (h, or (h, c) for the LSTM)."""
    batch, src_len = emb.shape[:2]
    steps = torch.arange(src_len).expand(batch, -1)  # (B, S)
    inside = steps < lengths[:, None]  # (B, S)
    # Reversal within each length (padding stays in place); its own inverse.
    flip = torch.where(inside, lengths[:, None] - 1 - steps, steps).to(emb.device)  # (B, S)
    inside = inside.to(emb.device)
    last = (lengths - 1).to(emb.device)  # (B,) each sentence's last real position
    x = emb
    for layer in range(rnn.num_layers):
        if layer:
            x = dropout(x)
        forward_out, forward_final = _direction(rnn, x, layer, "", inside, last)
        backward_out, backward_final = _direction(rnn, _gather(x, flip), layer, "_reverse",
                                                  inside, last)
        x = torch.cat([forward_out, _gather(backward_out, flip)], dim=-1)  # (B, S, H)
    states = x * inside.unsqueeze(2)  # zero at padding, as packing gives
    if rnn.mode == "LSTM":
        return states, (torch.cat([forward_final[0], backward_final[0]], dim=-1),
                        torch.cat([forward_final[1], backward_final[1]], dim=-1))
    return states, torch.cat([forward_final, backward_final], dim=-1)


def _direction(rnn: nn.RNNBase, x: Tensor, layer: int, suffix: str, inside: Tensor,
               last: Tensor) -> tuple[Tensor, State]:
    """One direction of one layer over x (B, S, in), padding after the real tokens.

    Returns the outputs (B, S, H/2), wrong at padding, and each sentence's state after its
    last real token.
    """
    names = [f"weight_ih_l{layer}", f"weight_hh_l{layer}", f"bias_ih_l{layer}",
             f"bias_hh_l{layer}"]
    params = [getattr(rnn, name + suffix) for name in names]
    lstm = rnn.mode == "LSTM"
    if lstm:
        x, params[0] = _with_freeze_column(x, params[0], inside)
    h = x.new_zeros(1, x.size(0), rnn.hidden_size)  # (1, B, H/2)
    out, *new = _one_direction(rnn.mode, x, (h, h) if lstm else h, params, rnn.training)
    final_h = out[torch.arange(x.size(0), device=x.device), last]  # (B, H/2)
    if lstm:
        return out, (final_h, new[1][0])  # c, frozen since the last real token
    return out, final_h


# The multi-step kernels that nn.LSTM / GRU / RNN call, by nn.RNNBase.mode.
_KERNELS = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh}


def _one_direction(mode: str, x: Tensor, state: State, params: list[Tensor],
                   training: bool) -> tuple[Tensor, ...]:
    """The kernel nn.LSTM / GRU / RNN runs, for one direction of one layer with the given weights.

    Not the module itself: it runs its own parameters, and the LSTM's here carry the extra
    freeze column (`_with_freeze_column`).
    """
    return _KERNELS[mode](x, state, params, has_biases=True, num_layers=1, dropout=0.0,
                          train=training, bidirectional=False, batch_first=True)


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
