import gc
import weakref

import pytest
import torch
from torch import nn

from nmt import decoder as decoder_module
from nmt import kernels
from nmt.decoder import Decoder, DecoderState, gru_cell, lstm_cell, rnn_cell
from nmt.embeddings import Embeddings
from nmt.encoder import EncoderOutput
from nmt.vocab import PAD

V, E, H, A, S = 11, 6, 8, 5, 7
SRC_LENGTHS = torch.tensor([7, 3, 5])


def make(cell="lstm", layers=1, dropout=0.3, seed=0, layer_norm=False, conditional=False):
    torch.manual_seed(seed)
    decoder = Decoder(Embeddings(V, E), H, H, A, layers=layers, cell=cell, dropout=dropout,
                      layer_norm=layer_norm, conditional=conditional)
    for param in decoder.parameters():
        nn.init.uniform_(param, -0.5, 0.5)  # larger than the model's init: differences show
    batch = len(SRC_LENGTHS)
    enc = EncoderOutput(
        states=torch.randn(batch, S, H),
        mask=torch.arange(S) < SRC_LENGTHS[:, None],
        final=torch.randn(batch, H),
        final_cell=torch.randn(batch, H) if cell == "lstm" else None,
    )
    tgt_in = torch.randint(4, V, (batch, 5))
    tgt_in[1, 3:] = PAD
    return decoder.eval(), enc, tgt_in


# cell, layers, layer norm, conditional
CELLS = [("lstm", 1, False, False), ("gru", 1, False, False), ("rnn", 1, False, False),
         ("lstm", 2, False, False), ("gru", 2, False, False), ("lstm", 2, True, False),
         ("gru", 1, True, False), ("lstm", 1, False, True), ("gru", 2, False, True),
         ("lstm", 2, True, True)]


@pytest.mark.parametrize(("cell", "layers", "layer_norm", "conditional"), CELLS)
def test_forward_equals_step_by_step(cell, layers, layer_norm, conditional):
    decoder, enc, tgt_in = make(cell, layers, layer_norm=layer_norm, conditional=conditional)
    hidden, attn = decoder(tgt_in, enc)
    assert hidden.shape == (3, 5, H) and attn.shape == (3, 5, S)
    logits = decoder.output(hidden)  # (B, T, V)
    state, memory = decoder.init_state(enc), decoder.memory(enc)
    for t in range(tgt_in.size(1)):
        step_logits, state, step_attn = decoder.step(tgt_in[:, t], state, memory)
        assert torch.allclose(step_logits, logits[:, t], atol=1e-5)
        assert torch.allclose(step_attn, attn[:, t], atol=1e-6)
    assert torch.allclose(state.feed, hidden[:, -1], atol=1e-6)
    assert state.h.shape == (layers, 3, H)
    assert (state.c is not None) == (cell == "lstm")


@pytest.mark.parametrize(("cell", "layers", "layer_norm", "conditional"), CELLS)
def test_sampling_at_rate_one_feeds_the_greedy_choices(cell, layers, layer_norm, conditional):
    """Scheduled sampling at rate 1 feeds, after the first reference token, the argmax of the
    step before: what greedy search computes, step by step."""
    decoder, enc, tgt_in = make(cell, layers, layer_norm=layer_norm, conditional=conditional)
    hidden, attn = decoder(tgt_in, enc, sampling=1.0)
    logits = decoder.output(hidden)  # (B, T, V)
    state, memory = decoder.init_state(enc), decoder.memory(enc)
    prev = tgt_in[:, 0]
    for t in range(tgt_in.size(1)):
        step_logits, state, step_attn = decoder.step(prev, state, memory)
        assert torch.allclose(step_logits, logits[:, t], atol=1e-5)
        assert torch.allclose(step_attn, attn[:, t], atol=1e-6)
        prev = step_logits.argmax(dim=-1)
    teacher, _ = decoder(tgt_in, enc)
    assert not torch.allclose(teacher[:, 1:], hidden[:, 1:])  # the references were not fed


def test_sampling_at_rate_zero_is_teacher_forcing_and_draws_nothing():
    decoder, enc, tgt_in = make()
    rng = torch.get_rng_state()
    assert torch.equal(decoder(tgt_in, enc, sampling=0.0)[0], decoder(tgt_in, enc)[0])
    assert torch.equal(torch.get_rng_state(), rng)


def test_sampling_mixes_reference_and_own_inputs_per_token():
    """At rate 0.5 each fed token is the reference or the greedy choice, drawn per row and step:
    the outputs differ from both teacher forcing and rate 1 beyond the first step."""
    decoder, enc, tgt_in = make(dropout=0.0)
    tgt_in = torch.randint(4, V, (64, 5))
    enc = EncoderOutput(states=torch.randn(64, S, H), mask=torch.ones(64, S, dtype=torch.bool),
                        final=torch.randn(64, H), final_cell=torch.randn(64, H))
    teacher, _ = decoder(tgt_in, enc)
    greedy, _ = decoder(tgt_in, enc, sampling=1.0)
    torch.manual_seed(3)
    mixed, _ = decoder(tgt_in, enc, sampling=0.5)
    step1 = mixed[:, 1]  # its input is one draw: the reference's or the choice's row, exactly
    as_teacher = (step1 - teacher[:, 1]).abs().amax(1) < 1e-6
    as_greedy = (step1 - greedy[:, 1]).abs().amax(1) < 1e-6
    assert bool((as_teacher | as_greedy).all())
    own = (as_greedy & ~as_teacher).sum().item()
    assert 16 <= own and (as_teacher & ~as_greedy).sum().item() >= 16  # about 32 each


def test_sampling_on_drawn_rows_equals_sampling_on_all_rows(monkeypatch):
    """The CPU reads out only the drawn rows, a GPU all of them: the same outputs and gradients
    for the same draws."""
    decoder, enc, tgt_in = make(dropout=0.0)

    def grads():
        torch.manual_seed(11)
        hidden, _ = decoder(tgt_in, enc, sampling=0.5)
        return hidden, torch.autograd.grad(hidden.sin().sum(), list(decoder.parameters()),
                                           allow_unused=True)

    hidden, got = grads()
    monkeypatch.setattr(decoder_module, "_selects_rows", lambda device: False)
    all_rows, want = grads()
    assert torch.allclose(hidden, all_rows, atol=1e-6)
    for g, w in zip(got, want, strict=True):
        assert (g is None) == (w is None)
        if g is not None:
            assert torch.allclose(g, w, atol=1e-6)


def test_padded_source_positions_have_no_effect():
    decoder, enc, tgt_in = make()
    hidden, attn = decoder(tgt_in, enc)
    noisy = EncoderOutput(
        enc.states.masked_fill(~enc.mask[..., None], 100.0), enc.mask, enc.final, enc.final_cell
    )
    hidden2, attn2 = decoder(tgt_in, noisy)
    assert torch.all(attn[~enc.mask[:, None, :].expand_as(attn)] == 0)
    assert torch.equal(attn, attn2)
    assert torch.allclose(hidden, hidden2)


def test_state_and_memory_select_reorder():
    decoder, enc, tgt_in = make()
    state, memory = decoder.init_state(enc), decoder.memory(enc)
    _, state, _ = decoder.step(tgt_in[:, 0], state, memory)
    index = torch.tensor([2, 2, 0, 1])
    picked = state.select(index)
    assert isinstance(picked, DecoderState)
    for field in ("h", "c"):
        assert torch.equal(getattr(picked, field), getattr(state, field)[:, index])
    assert torch.equal(picked.feed, state.feed[index])
    picked_memory = memory.select(index)
    for field in ("keys", "values", "mask"):
        assert torch.equal(getattr(picked_memory, field), getattr(memory, field)[index])
    # Stepping the selected rows equals selecting the stepped rows.
    logits, _, attn = decoder.step(tgt_in[index, 1], picked, picked_memory)
    logits_all, _, attn_all = decoder.step(tgt_in[:, 1], state, memory)
    assert torch.allclose(logits, logits_all[index], atol=1e-6)
    assert torch.allclose(attn, attn_all[index], atol=1e-6)


def test_beams_share_their_sentence_memory():
    """K rows per sentence reading its one memory row step as if the memory were copied K times."""
    decoder, enc, tgt_in = make()
    k = 4
    expand = torch.arange(len(SRC_LENGTHS)).repeat_interleave(k)  # (B*K,)
    state = decoder.init_state(enc).select(expand)
    shared, copied = decoder.memory(enc), decoder.memory(enc).select(expand)
    prev = torch.randint(4, V, (len(expand),))  # a different token on every row
    with torch.inference_mode():  # as in search
        logits, next_state, attn = decoder.step(prev, state, shared)
        logits_copied, next_copied, attn_copied = decoder.step(prev, state, copied)
    assert torch.allclose(logits, logits_copied, atol=1e-6)
    assert torch.allclose(attn, attn_copied, atol=1e-6)
    assert torch.allclose(next_state.feed, next_copied.feed, atol=1e-6)
    assert torch.all(attn.view(-1, k, S)[1, :, SRC_LENGTHS[1] :] == 0)  # its own sentence's mask


def test_steps_from_the_input_table_equal_steps_that_multiply():
    decoder, enc, tgt_in = make()
    state, memory = decoder.init_state(enc), decoder.memory(enc)
    with torch.inference_mode():
        logits, next_state, attn = decoder.step(tgt_in[:, 0], state, memory)
        decoder.tabulate_inputs()
        assert decoder.input_table.shape == (V, 4 * H)
        decoder.emb_proj.weight.mul_(2)  # the table, taken before, must be what the step reads
        tabulated, tabulated_state, tabulated_attn = decoder.step(tgt_in[:, 0], state, memory)
    assert torch.allclose(tabulated, logits, atol=1e-6)
    assert torch.allclose(tabulated_attn, attn, atol=1e-6)
    assert torch.allclose(tabulated_state.c, next_state.c, atol=1e-6)


def test_training_drops_the_input_table_and_a_large_one_is_not_made(monkeypatch):
    decoder, _, _ = make()
    decoder.tabulate_inputs()
    assert decoder.input_table is not None
    decoder.train()  # its weights are about to change
    assert decoder.input_table is None
    decoder.eval()
    monkeypatch.setattr("nmt.decoder.INPUT_TABLE_LIMIT", V * 4 * H - 1)
    decoder.tabulate_inputs()
    assert decoder.input_table is None


def test_dropout_in_training_only():
    decoder, enc, tgt_in = make()
    assert torch.equal(decoder(tgt_in, enc)[0], decoder(tgt_in, enc)[0])
    decoder.train()
    assert not torch.equal(decoder(tgt_in, enc)[0], decoder(tgt_in, enc)[0])


def _torch_weights(cell_module, order):
    """Rows of torch's gate blocks rearranged into our gate order."""
    blocks_ih = cell_module.weight_ih.chunk(len(order))
    blocks_hh = cell_module.weight_hh.chunk(len(order))
    bias_ih, bias_hh = cell_module.bias_ih.chunk(len(order)), cell_module.bias_hh.chunk(len(order))
    cat = lambda blocks: torch.cat([blocks[i] for i in order])  # noqa: E731
    return cat(blocks_ih), cat(blocks_hh), cat(bias_ih), cat(bias_hh)


def test_cells_match_torch():
    torch.manual_seed(0)
    x, h, c = torch.randn(4, 3), torch.randn(4, 5), torch.randn(4, 5)
    with torch.no_grad():
        lstm = nn.LSTMCell(3, 5)
        w_ih, w_hh, b_ih, b_hh = _torch_weights(lstm, [0, 1, 3, 2])  # torch i,f,g,o -> i,f,o,g
        ours = lstm_cell(torch.addmm(b_ih + b_hh, x, w_ih.t()), h @ w_hh.t(), h, c)
        expected = lstm(x, (h, c))
        assert torch.allclose(ours[0], expected[0], atol=1e-6)
        assert torch.allclose(ours[1], expected[1], atol=1e-6)

        gru = nn.GRUCell(3, 5)
        w_ih, w_hh, b_ih, b_hh = _torch_weights(gru, [0, 1, 2])
        ours, _ = gru_cell(torch.addmm(b_ih, x, w_ih.t()), torch.addmm(b_hh, h, w_hh.t()), h, None)
        assert torch.allclose(ours, gru(x, h), atol=1e-6)

        rnn = nn.RNNCell(3, 5)
        ours, _ = rnn_cell(
            torch.addmm(rnn.bias_ih + rnn.bias_hh, x, rnn.weight_ih.t()),
            h @ rnn.weight_hh.t(),
            h,
            None,
        )
        assert torch.allclose(ours, rnn(x, h), atol=1e-6)


def test_bridge_sets_every_layer_and_feed_starts_at_zero():
    decoder, enc, _ = make("lstm", layers=2)
    state = decoder.init_state(enc)
    assert state.h.shape == (2, 3, H) and state.c.shape == (2, 3, H)
    expected_h = torch.tanh(decoder.bridge_h(enc.final)).view(3, 2, H).transpose(0, 1)
    assert torch.allclose(state.h, expected_h)
    assert torch.all(state.feed == 0)
    keys = decoder.attention.key_proj(enc.states)
    with kernels.use("plain"):
        assert torch.allclose(decoder.memory(enc).keys, keys)
    assert torch.allclose(decoder.memory(enc).keys, 2 * keys)  # the sigmoid form (nmt/kernels)


@pytest.mark.parametrize(("cell", "layers", "layer_norm", "conditional"), CELLS)
@pytest.mark.parametrize("sampling", [0.0, 0.5])
def test_fast_kernels_equal_the_plain_decoder(cell, layers, layer_norm, conditional, sampling):
    """forward() with gradients takes the loop forms (nmt/kernels/steplinear.py and attention.py):
    the outputs and every parameter's gradient equal the plain decoder's autograd, under
    scheduled sampling too (the same draws)."""
    decoder, enc, tgt_in = make(cell, layers, layer_norm=layer_norm, conditional=conditional)
    enc.states.requires_grad_(True)

    def grads():
        torch.manual_seed(5)
        hidden, attn = decoder(tgt_in, enc, sampling)
        loss = (hidden * torch.linspace(-1, 1, H)).sin().sum() + attn.pow(2).sum()
        return loss, torch.autograd.grad(loss, [enc.states, *decoder.parameters()],
                                         allow_unused=True)

    loss, got = grads()
    assert decoder._ops(decoder.memory(enc)).combine is not decoder.combine  # a loop form
    with kernels.use("plain"):
        assert decoder._ops(decoder.memory(enc)).combine is decoder.combine
        plain_loss, want = grads()
    assert torch.allclose(loss, plain_loss, atol=1e-5)
    for g, w in zip(got, want, strict=True):
        assert (g is None) == (w is None)
        if g is not None:
            assert torch.allclose(g, w, atol=1e-5), (g - w).abs().max()


def test_a_forward_pass_without_backward_frees_its_graph():
    """The loop forms (nmt/kernels) must not keep a forward pass alive: one
    with gradients that is never followed by backward (an exception, a user's evaluation with
    grad on) is freed as soon as its outputs are."""
    decoder, enc, tgt_in = make()
    decoder.train()
    states = enc.states.clone().requires_grad_()
    watched = weakref.ref(states)
    hidden, attn = decoder(tgt_in, EncoderOutput(states, enc.mask, enc.final, enc.final_cell))
    assert hidden.grad_fn is not None
    del hidden, attn, states
    gc.collect()
    assert watched() is None


def test_out_dropout_drops_what_the_output_layer_reads_and_not_the_fed_vector():
    """--out-dropout: with dropout 0 elsewhere, about that fraction of the output layer's inputs
    is zero in training, none in eval, and the steps (what is fed back) are those of the
    decoder without it; the fast and plain decoders agree."""
    torch.manual_seed(0)
    decoder = Decoder(Embeddings(V, E), H, H, A, dropout=0.0, out_dropout=0.5).train()
    _, enc, tgt_in = make()
    outputs = []
    for setting in ("auto", "plain"):
        torch.manual_seed(3)
        with kernels.use(setting):
            outputs.append(decoder(tgt_in, enc)[0])
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)
    dropped = outputs[0] == 0
    assert 0.4 < dropped.float().mean().item() < 0.6
    decoder.out_dropout = None  # the same weights, the output layer reading the fed vector
    undropped = decoder(tgt_in, enc)[0]
    assert torch.allclose(outputs[0][~dropped], 2 * undropped[~dropped], atol=1e-6)
    assert not (undropped == 0).any()


def test_layer_norm_normalises_each_pre_activation_apart():
    """With layer norm, a cell reads LN(W_x x) and LN(W_h h): scaling the recurrent weights
    leaves the outputs as they were (up to LN's epsilon), where without it they change."""

    def change_when_recurrent_weights_scale(layer_norm: bool) -> float:
        decoder, enc, tgt_in = make("lstm", layers=2, layer_norm=layer_norm)
        hidden, _ = decoder(tgt_in, enc)
        with torch.no_grad():
            for rec in decoder.recurrent:
                rec.weight.mul_(3.0)
        return (decoder(tgt_in, enc)[0] - hidden).abs().max().item()

    decoder = make("lstm", layers=2, layer_norm=True)[0]
    assert [norm.normalized_shape for norm in decoder.norms] == [(4 * H,)] * 4
    assert change_when_recurrent_weights_scale(True) < 1e-3
    assert change_when_recurrent_weights_scale(False) > 0.05


def test_conditional_step_is_its_equations():
    """--conditional, one LSTM layer: s' = Cell(y, s), c = Attention(s'), s_t = Cell_c(c, s'),
    a = tanh(W_c [s_t; c]), written out with the decoder's own modules; the fed vector is not
    read (the decoder has no W_feed)."""
    decoder, enc, tgt_in = make("lstm", conditional=True)
    assert decoder.feed_proj is None and len(decoder.context_cell) == 2
    state, memory = decoder.init_state(enc), decoder.memory(enc)
    y = tgt_in[:, 0]
    logits, new_state, attn = decoder.step(y, state, memory)

    h0, c0 = state.h[0], state.c[0]
    gates = decoder.emb_proj(decoder.embeddings(y))
    s1, c1 = lstm_cell(gates, decoder.recurrent[0](h0), h0, c0)  # s'_t
    context, weights = decoder.attention(s1, memory)  # c_t
    x_in, rec = decoder.context_cell
    s2, c2 = lstm_cell(x_in(context), rec(s1), s1, c1)  # s_t
    a = torch.tanh(decoder.combine(torch.cat([s2, context], dim=1)))
    assert torch.allclose(logits, decoder.out_proj(a), atol=1e-5)
    assert torch.allclose(attn, weights, atol=1e-6)
    assert torch.allclose(new_state.h[0], s2, atol=1e-6)
    assert torch.allclose(new_state.c[0], c2, atol=1e-6)
    other = DecoderState(state.h, state.c, torch.randn_like(state.feed))
    assert torch.allclose(decoder.step(y, other, memory)[0], logits)
