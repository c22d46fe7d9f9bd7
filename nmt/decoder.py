"""Decoder: recurrent layers with additive attention and input feeding (Luong et al. 2015, 3.3).

Per target step t, with a_0 = 0 and h_0 = tanh(W_b summary) (the bridge):
    h_t     = Cell([y_{t-1}; a_{t-1}], h_{t-1})      stacked layers; dropout between them
    c_t     = Attention(query = top-layer h_t, encoder states)
    a_t     = tanh(W_c [h_t; c_t])                    the attentional vector; dropout(a_t) is fed
    logits  = W_o o_t + b_o                           o_t = the fed dropout(a_t), or with
                                                      out-dropout a dropout of a_t of its own
With layer normalisation (Ba et al. 2016, 3.1), a cell's two pre-activations are normalised
apart: Cell(LN(W_x x_t), LN(W_h h_{t-1})), each LN with a gain and bias of its own.
Or, with a readout (tied embeddings of another size than H), logits = W_o (W_r o_t) + b_o,
where W_o is the target embedding table (V, E) and W_r is (E, H); a tanh on the readout learns
the toy task far slower (recipes/multi30k/EXPERIMENTS.md).
The conditional decoder (Sennrich et al. 2017, Nematus' cGRU, with any cell here) feeds no
attentional vector; instead the top layer's state advances twice per step, the second time on
the context:
    s'_t    = Cell(y_{t-1}, s_{t-1})                  stacked layers
    c_t     = Attention(query = top-layer s'_t, encoder states)
    s_t     = Cell_c(c_t, s'_t)                       the top layer's state for step t+1
    a_t     = tanh(W_c [s_t; c_t])                    read by the output layer as above
Scheduled sampling (Bengio et al. 2015), in training only: with probability p, drawn per token,
the y_{t-1} fed at step t is the model's own greedy choice argmax logits_{t-1} instead of the
reference; the choice is not differentiated, its embedding is.

Input feeding makes step t depend on step t-1, so training loops over target steps too (as every
toolkit does). What does not depend on the loop is taken out of it: the embedding part of the
first layer's input multiply for all steps at once, the attention keys once per sentence, and the
output layer and loss once after the loop (loss.py); in search, the embedding part is read from a
table of every token's (`tabulate_inputs`). Inside, each layer is two multiplies (input,
recurrent) and the cell's pointwise math; `forward` and `step` share that one function,
`_advance`. With the fast kernels the loop's multiplies take their weight gradients once over all
steps (nmt/kernels/steplinear.py, nmt/kernels/attention.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nmt import kernels
from nmt.attention import AdditiveAttention, Attend, Memory
from nmt.dropout import Dropout
from nmt.embeddings import Embeddings
from nmt.encoder import EncoderOutput
from nmt.kernels import shapes
from nmt.kernels.steplinear import step_linear

GATES = {"lstm": 4, "gru": 3, "rnn": 1}  # gate blocks of H in a layer's pre-activation
# The largest input table (V x G float32 values) a decoder keeps for search: 128 MB, a
# vocabulary of 16k with the reference model's 2,048 gates.
INPUT_TABLE_LIMIT = 2**25


@dataclass
class DecoderState:
    """The recurrent state step t+1 needs; `select` reorders it for beam search. (What is fixed
    per sentence, the attention's memory, is apart: it is reordered only when sentences leave.)

    h: (L, N, H) hidden state of every layer; c: (L, N, H) LSTM cell state, None for gru/rnn
    feed: (N, H) previous attentional vector
    """

    h: Tensor
    c: Tensor | None
    feed: Tensor

    def select(self, index: Tensor) -> DecoderState:
        """Rows `index` (N',) of the batch (beam back-pointers or expansion)."""
        c = None if self.c is None else self.c.index_select(1, index)  # (L, N', H)
        return DecoderState(self.h.index_select(1, index), c, self.feed.index_select(0, index))


# Cells: x_gates (N, G) is the input side of the pre-activation, bias included, h_gates (N, G)
# the recurrent side W_hh h (+ b_hh for the GRU). The multiplies are the caller's, as module
# calls, so that int8 translation (precision.py) can swap them. Each returns (h, c); c is None
# except for the LSTM.
Cell = Callable[[Tensor, Tensor, Tensor, Tensor | None], tuple[Tensor, Tensor | None]]


def lstm_cell(x_gates: Tensor, h_gates: Tensor, h: Tensor,
              c: Tensor | None) -> tuple[Tensor, Tensor]:
    """Gates ordered i, f, o, g so that one sigmoid covers three of them and one tanh the last."""
    size = h.size(1)
    gates = x_gates + h_gates  # (N, 4H)
    ifo = torch.sigmoid(gates[:, : 3 * size])  # (N, 3H)
    g = torch.tanh(gates[:, 3 * size :])  # (N, H)
    i, f, o = ifo.chunk(3, dim=1)  # 3 x (N, H)
    c = torch.addcmul(f * c, i, g)  # (N, H)
    return o * torch.tanh(c), c


def gru_cell(x_gates: Tensor, h_gates: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, None]:
    """Gates r, z, n as in torch.nn.GRU: n = tanh(x_n + r * (W_hn h + b_hn))."""
    size = h.size(1)
    rz = torch.sigmoid(x_gates[:, : 2 * size] + h_gates[:, : 2 * size])  # (N, 2H)
    r, z = rz.chunk(2, dim=1)  # 2 x (N, H)
    n = torch.tanh(torch.addcmul(x_gates[:, 2 * size :], r, h_gates[:, 2 * size :]))  # (N, H)
    return torch.lerp(n.to(h.dtype), h, z.to(h.dtype)), None  # (1 - z) n + z h


def rnn_cell(x_gates: Tensor, h_gates: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, None]:
    """Elman: h = tanh(x_gates + W_hh h)."""
    return torch.tanh(x_gates + h_gates), None


CELLS: dict[str, Cell] = {"lstm": lstm_cell, "gru": gru_cell, "rnn": rnn_cell}

Linear = Callable[[Tensor], Tensor]


@dataclass
class StepOps:
    """What a decoder step calls, prepared once per pass: the modules, or with the fast kernels in
    training their loop forms (nmt/kernels/steplinear.py, AdditiveAttention.loop)."""

    inputs: list[Linear | None]  # layer 0: W_feed a_{t-1} (None: nothing fed); l > 0: W_x x
    recurrent: list[Linear]  # per layer: W_hh h
    query: Linear  # attention W_s
    attend: Attend  # projected query -> context, attention weights
    combine: Linear  # W_c
    context: tuple[Linear, Linear] | None  # the conditional decoder's Cell_c: W_x c_t, W_hh s'_t


class Decoder(nn.Module):
    """Attentional recurrent decoder for one target side (task)."""

    def __init__(self, embeddings: Embeddings, hidden_size: int, enc_size: int, attention_size: int,
                 layers: int = 1, cell: str = "lstm", dropout: float = 0.0,
                 out_proj: nn.Linear | None = None, out_dropout: float | None = None,
                 readout: bool = False, layer_norm: bool = False, conditional: bool = False):
        """`out_proj` (H -> V, or E -> V with `readout`) may be given to share it between
        decoders; by default it is new. `out_dropout`: the output layer reads the attentional
        vector through a dropout of this rate, not fed back; None: it reads the fed vector.
        `readout` puts W_r o_t (H -> E) before the output layer. `layer_norm` normalises each
        cell's input and recurrent pre-activations; `conditional` makes the conditional decoder
        (module docstring)."""
        super().__init__()
        gates = GATES[cell] * hidden_size
        self.embeddings = embeddings
        self.hidden_size = hidden_size
        self.layers = layers
        self.cell = cell
        self._cell = CELLS[cell]
        self.dropout = Dropout(dropout)
        self.out_dropout = None if out_dropout is None else Dropout(out_dropout)
        self.bridge_h = nn.Linear(enc_size, layers * hidden_size)
        self.bridge_c = nn.Linear(enc_size, layers * hidden_size) if cell == "lstm" else None
        # Layer 0's input [y; a] is multiplied as emb_proj(y) (hoisted, with bias) + feed_proj(a).
        self.emb_proj = nn.Linear(embeddings.embedding_dim, gates)
        self.feed_proj = None if conditional else nn.Linear(hidden_size, gates, bias=False)
        self.input_proj = nn.ModuleList(nn.Linear(hidden_size, gates) for _ in range(layers - 1))
        # Only the GRU needs a recurrent bias of its own (inside r * (W_hn h + b_hn)).
        self.recurrent = nn.ModuleList(nn.Linear(hidden_size, gates, bias=cell == "gru")
                                       for _ in range(layers))
        # Cell_c of the conditional decoder: its input multiply, then its recurrent one.
        self.context_cell = nn.ModuleList(
            [nn.Linear(enc_size, gates), nn.Linear(hidden_size, gates, bias=cell == "gru")]
            if conditional else [])
        norms = 2 * (layers + conditional) if layer_norm else 0  # per cell: input, recurrent side
        self.norms = nn.ModuleList(nn.LayerNorm(gates) for _ in range(norms))
        self.attention = AdditiveAttention(enc_size, hidden_size, attention_size)
        self.combine = nn.Linear(hidden_size + enc_size, hidden_size, bias=False)  # W_c
        out_size = embeddings.embedding_dim if readout else hidden_size
        self.readout = nn.Linear(hidden_size, out_size, bias=False) if readout else None  # W_r
        self.out_proj = out_proj or nn.Linear(out_size, embeddings.num_embeddings)
        self.input_table: Tensor | None = None  # (V, G) for search; see tabulate_inputs

    def tabulate_inputs(self) -> None:
        """For search with frozen weights: layer 0's embedding part emb_proj(E[y]) for every token
        y, so that a step looks its rows up instead of multiplying (N, E) x (E, G), a lookup
        many times cheaper than the multiply (recipes/README.md). Taken in float32 before any
        int8/bf16 swap (precision.py), so it is also the more exact. Not made for tables over
        INPUT_TABLE_LIMIT values; `train()` drops it, as the weights will change."""
        rows, gates = self.embeddings.num_embeddings, self.emb_proj.out_features
        if rows * gates > INPUT_TABLE_LIMIT:
            return
        with torch.no_grad():
            self.input_table = self.emb_proj(self.embeddings.weight).float().contiguous()

    def train(self, mode: bool = True) -> Decoder:
        if mode:
            self.input_table = None
        return super().train(mode)

    def init_state(self, enc: EncoderOutput) -> DecoderState:
        """Bridge the encoder summary into every layer's state."""
        batch = enc.final.size(0)
        # The recurrent state stays float32 under autocast (bf16 would round it at every step);
        # only the multiplies take the autocast dtype.
        h = torch.tanh(self.bridge_h(enc.final)).float().view(batch, self.layers, -1)  # (N, L, H)
        c = None
        if self.bridge_c is not None:
            c = torch.tanh(self.bridge_c(enc.final_cell)).float().view(batch, self.layers, -1)
            c = c.transpose(0, 1)  # (L, N, H)
        feed = enc.final.new_zeros(batch, self.hidden_size)  # (N, H)
        return DecoderState(h.transpose(0, 1), c, feed)

    def memory(self, enc: EncoderOutput) -> Memory:
        """What the attention reads at every step: keys projected once per sentence."""
        return self.attention.memory(enc.states, enc.mask)

    def forward(self, tgt_in: Tensor, enc: EncoderOutput,
                sampling: float = 0.0) -> tuple[Tensor, Tensor]:
        """Teacher forcing over tgt_in (B, T); with `sampling` > 0, scheduled sampling at that
        probability p (module docstring).

        Returns:
            the output layer's inputs (B, T, H), or (B, T, E) with a readout; attention weights
            (B, T, S).
        """
        state = self.init_state(enc)
        emb = self.dropout(self.embeddings(tgt_in.t()))  # (T, B, E)
        # One large multiply for every step's embedding part; unbind (not [t]) so that backward
        # gathers the per-step gradients with one stack instead of T full-size zero tensors.
        if kernels.enabled():
            emb_gates = shapes.linear(self.emb_proj, emb)  # (T, B, G), rows padded for oneDNN
        else:
            emb_gates = self.emb_proj(emb)  # (T, B, G)
        h = list(state.h.unbind(0))
        c = None if state.c is None else list(state.c.unbind(0))
        feed = state.feed
        ops = self._ops(self.memory(enc))
        outputs, weights = [], []
        for x_gates in emb_gates.unbind(0):
            if sampling and outputs:
                x_gates = self._sampled(x_gates, outputs[-1], sampling)
            attentional, h, c, attn = self._advance(x_gates, feed, h, c, ops)
            feed = self.dropout(attentional)
            outputs.append(self._read(attentional, feed))
            weights.append(attn)
        return self.pre_output(torch.stack(outputs, dim=1)), torch.stack(weights, dim=1)

    def _sampled(self, x_gates: Tensor, read: Tensor, rate: float) -> Tensor:
        """Scheduled sampling: the reference inputs' gates x_gates (B, G), each row replaced with
        probability `rate` by those of the greedy choice from the step before, whose output
        layer read `read` (B, H)."""
        own = torch.rand(read.size(0), device=read.device) < rate  # (B,)
        # Only the drawn rows are read out on the CPU (the output layer is the step's largest
        # multiply); on a GPU selecting them would wait for the device at every step.
        rows = own.nonzero().squeeze(1) if _selects_rows(read.device) else None  # (R,)
        with torch.no_grad():
            choice = self.output(read if rows is None else read.index_select(0, rows))
        gates = self.emb_proj(self.dropout(self.embeddings(choice.argmax(dim=-1))))  # (R|B, G)
        if rows is None:
            return torch.where(own.unsqueeze(1), gates, x_gates)
        return x_gates.index_copy(0, rows, gates.to(x_gates.dtype))

    def pre_output(self, hidden: Tensor) -> Tensor:
        """Attentional vectors (..., H) -> the output layer's inputs (..., H or E)."""
        return hidden if self.readout is None else self.readout(hidden)

    def output(self, hidden: Tensor) -> Tensor:
        """Attentional vectors (..., H) -> logits (..., V)."""
        return self.out_proj(self.pre_output(hidden))

    def step(self, prev: Tensor, state: DecoderState,
             memory: Memory) -> tuple[Tensor, DecoderState, Tensor]:
        """One search step from the previous tokens prev (N,).

        Returns:
            logits (N, V), the new state, attention weights (N, S).
        """
        if self.input_table is not None:
            x_gates = self.input_table.index_select(0, prev)  # (N, G)
        else:
            x_gates = self.emb_proj(self.dropout(self.embeddings(prev)))  # (N, G)
        c = None if state.c is None else list(state.c.unbind(0))
        h = list(state.h.unbind(0))
        attentional, h, c, attn = self._advance(x_gates, state.feed, h, c, self._ops(memory))
        feed = self.dropout(attentional)
        new_state = DecoderState(torch.stack(h), None if c is None else torch.stack(c), feed)
        return self.output(self._read(attentional, feed)), new_state, attn

    def _read(self, attentional: Tensor, feed: Tensor) -> Tensor:
        """o_t, what the output layer reads of a step's attentional vector (module docstring)."""
        return feed if self.out_dropout is None else self.out_dropout(attentional)

    def _ops(self, memory: Memory) -> StepOps:
        loop = step_linear if kernels.enabled() else _module
        feed = None if self.feed_proj is None else loop(self.feed_proj)
        context = None
        if self.context_cell:
            context = loop(self.context_cell[0]), loop(self.context_cell[1])
        return StepOps([feed, *(loop(m) for m in self.input_proj)],
                       [loop(m) for m in self.recurrent], loop(self.attention.query_proj),
                       self.attention.loop(memory), loop(self.combine), context)

    def _advance(self, x_gates: Tensor, feed: Tensor, h: list[Tensor], c: list[Tensor] | None,
                 ops: StepOps) -> tuple[Tensor, list[Tensor], list[Tensor] | None, Tensor]:
        """The body of one decoder step, shared by `forward` and `step`.

        x_gates (N, G) is layer 0's embedding part (bias included); h / c hold one (N, H) per layer.
        Returns the attentional vector (N, H), the new h and c, and the attention weights (N, S).
        """
        new_h, new_c = [], []
        x = feed
        for layer, rec in enumerate(ops.recurrent):
            if layer > 0:
                gates = ops.inputs[layer](self.dropout(x))  # (N, G)
            elif ops.inputs[0] is not None:
                gates = x_gates + ops.inputs[0](x)  # (N, G)
            else:
                gates = x_gates  # the conditional decoder feeds nothing
            cell_state = None if c is None else c[layer]
            x, cell_state = self._run_cell(layer, gates, rec(h[layer]), h[layer], cell_state)
            new_h.append(x)
            new_c.append(cell_state)
        context, attn = ops.attend(ops.query(x))  # (N, H_enc), (N, S)
        if ops.context is not None:  # s_t = Cell_c(c_t, s'_t)
            x_in, rec = ops.context
            x, new_c[-1] = self._run_cell(len(new_h), x_in(context), rec(x), x, new_c[-1])
            new_h[-1] = x
        hidden = torch.tanh(ops.combine(torch.cat([x, context], dim=1)))  # (N, H)
        return hidden, new_h, None if c is None else new_c, attn

    def _run_cell(self, index: int, gates: Tensor, h_gates: Tensor, h: Tensor,
                  c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Cell `index` (the layers', then Cell_c) on its pre-activations (N, G), each
        layer-normalised apart when the decoder has norms; returns h (N, H) and c."""
        if self.norms:
            gates, h_gates = self.norms[2 * index](gates), self.norms[2 * index + 1](h_gates)
        return self._cell(gates, h_gates, h, c)


def _selects_rows(device: torch.device) -> bool:
    return device.type == "cpu"


def _module(module: nn.Module) -> Linear:
    return module
