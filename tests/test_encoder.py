import pytest
import torch

from nmt.embeddings import Embeddings
from nmt.encoder import Encoder, EncoderOutput
from nmt.vocab import PAD

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
