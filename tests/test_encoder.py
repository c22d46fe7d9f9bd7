import pytest
import torch

from nmt import kernels
from nmt.embeddings import Embeddings
from nmt.encoder import Encoder, EncoderOutput
from nmt.vocab import PAD

from conftest import NEEDS_BF16

LENGTHS = [3, 6, 1, 4]


def make(cell, layers=1):
    torch.manual_seed(0)
    encoder = Encoder(Embeddings(20, 5), hidden_size=8, layers=layers, cell=cell, dropout=0.3)
    tokens = torch.full((len(LENGTHS), max(LENGTHS)), PAD)
    for row, length in enumerate(LENGTHS):
        tokens[row, :length] = torch.randint(4, 20, (length,))
    return encoder.eval(), tokens, torch.tensor(LENGTHS)


@pytest.mark.parametrize(("cell", "layers"), [("lstm", 1), ("gru", 1), ("rnn", 1), ("lstm", 2)])
def test_batch_equals_sentence_alone(cell, layers):
    encoder, tokens, lengths = make(cell, layers)
    enc = encoder(tokens, lengths)
    assert enc.states.shape == (4, 6, 8) and enc.final.shape == (4, 8)
    assert torch.equal(enc.mask, tokens != PAD)
    assert (enc.final_cell is not None) == (cell == "lstm")
    for row, length in enumerate(LENGTHS):
        alone = encoder(tokens[row : row + 1, :length], lengths[row : row + 1])
        assert torch.allclose(enc.states[row, :length], alone.states[0], atol=1e-6)
        assert torch.allclose(enc.final[row], alone.final[0], atol=1e-6)
        if cell == "lstm":
            assert torch.allclose(enc.final_cell[row], alone.final_cell[0], atol=1e-6)
    assert torch.all(enc.states[~enc.mask] == 0)


def test_final_is_last_forward_and_first_backward_state():
    encoder, tokens, lengths = make("gru")
    enc = encoder(tokens, lengths)
    for row, length in enumerate(LENGTHS):
        assert torch.allclose(enc.final[row, :4], enc.states[row, length - 1, :4])  # forward half
        assert torch.allclose(enc.final[row, 4:], enc.states[row, 0, 4:])  # backward half


def test_padding_tokens_do_not_matter():
    encoder, tokens, lengths = make("lstm")
    enc = encoder(tokens, lengths)
    other = tokens.masked_fill(tokens == PAD, 7)
    enc2 = encoder(other, lengths)
    assert torch.allclose(enc.states, enc2.states) and torch.allclose(enc.final, enc2.final)


def test_select_reorders_and_expands():
    encoder, tokens, lengths = make("lstm")
    enc = encoder(tokens, lengths)
    index = torch.tensor([2, 0, 0, 3])
    picked = enc.select(index)
    assert isinstance(picked, EncoderOutput)
    for field in ("states", "mask", "final", "final_cell"):
        assert torch.equal(getattr(picked, field), getattr(enc, field)[index])


def test_dropout_is_active_in_training():
    encoder, tokens, lengths = make("lstm")
    encoder.train()
    assert not torch.allclose(encoder(tokens, lengths).states, encoder(tokens, lengths).states)


def _ragged_batch():
    """7 sentences of lengths 0-6 in 8 columns: an empty one, and columns past every length."""
    lengths = torch.tensor([3, 6, 1, 4, 3, 0, 6])
    tokens = torch.full((7, 8), PAD)
    for row, length in enumerate(lengths.tolist()):
        tokens[row, :length] = torch.randint(4, 20, (length,))
    return tokens, lengths


def _outputs(encoder, tokens, lengths, setting):
    with kernels.use(setting):
        enc = encoder(tokens, lengths)
    return [enc.states, enc.final, *([] if enc.final_cell is None else [enc.final_cell])]


@pytest.mark.parametrize(("cell", "layers", "scale"),
                         [("lstm", 1, 1.0), ("gru", 1, 1.0), ("rnn", 1, 1.0), ("lstm", 2, 1.0),
                          ("gru", 2, 1.0), ("rnn", 2, 1.0), ("lstm", 2, 30.0)])
def test_fast_kernel_equals_the_packed_encoder(cell, layers, scale):
    """The CPU's unpacked calls (nmt/kernels/encoder.py) against the plain encoder, nn.LSTM/GRU/RNN
    on packed sentences: the states, the final summary and every gradient (an empty sentence
    encodes one padded position; columns past every length stay zero). Scaled weights and
    embeddings push the gates' pre-activations far from 0: the LSTM's frozen cell state at
    padding must still be exact."""
    encoder, _, _ = make(cell, layers)
    with torch.no_grad():
        for param in encoder.parameters():
            param.mul_(scale)
    tokens, lengths = _ragged_batch()
    results = []
    for setting in ("auto", "plain"):
        outputs = _outputs(encoder, tokens, lengths, setting)
        torch.manual_seed(1)  # the same loss weights for both
        weights = [torch.randn_like(out) for out in outputs]
        sum((out * w).sum() for out, w in zip(outputs, weights, strict=True)).backward()
        results.append((outputs, [p.grad.clone() for p in encoder.parameters()]))
        encoder.zero_grad()
    (fast, fast_grads), (plain, plain_grads) = results
    for a, b in zip(fast + fast_grads, plain + plain_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5 * scale), (a - b).abs().max()
    assert torch.all(fast[0][:, 6:] == 0)


@NEEDS_BF16
def test_fast_kernel_in_bf16_stays_close():
    encoder, tokens, lengths = make("lstm")
    reference = _outputs(encoder, tokens, lengths, "plain")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = _outputs(encoder, tokens, lengths, "auto")
    for a, b in zip(reference, fast, strict=True):
        assert torch.allclose(a, b.float(), atol=0.03)


def test_word_and_state_dropout_fast_kernel_equals_the_packed_encoder():
    """In training, with word dropout and dropout of the states: the fast kernel and the plain
    encoder draw the same masks and give the same states, summary and gradients; padding stays
    zero; whole source tokens and single state values are dropped. (One layer: between layers
    nn.LSTM draws its own masks.)"""
    torch.manual_seed(0)
    encoder = Encoder(Embeddings(20, 5), hidden_size=8, layers=1, cell="lstm", dropout=0.1,
                      enc_dropout=0.5, word_dropout=0.3).train()
    tokens, lengths = _ragged_batch()
    results = []
    for setting in ("auto", "plain"):
        torch.manual_seed(5)  # the same dropout masks for both
        outputs = _outputs(encoder, tokens, lengths, setting)
        sum((out * torch.linspace(-1, 1, out.size(-1))).sum() for out in outputs).backward()
        results.append((outputs, [p.grad.clone() for p in encoder.parameters()]))
        encoder.zero_grad()
    (fast, fast_grads), (plain, plain_grads) = results
    for a, b in zip(fast + fast_grads, plain + plain_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    states, mask = fast[0], tokens != PAD
    assert torch.all(states[torch.arange(8) >= lengths.clamp(min=1)[:, None]] == 0)  # padding
    dropped = (states[mask] == 0).float().mean().item()
    assert 0.35 < dropped < 0.65  # enc_dropout 0.5 of the real positions' values
    torch.manual_seed(5)
    words = encoder.word_dropout(encoder.embeddings(tokens))  # (B, S, E)
    assert 0 < (words[mask] == 0).all(-1).sum() < mask.sum()  # some whole tokens, not all
    encoder.eval()
    assert torch.equal(encoder(tokens, lengths).states, encoder(tokens, lengths).states)
