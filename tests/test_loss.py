import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nmt.loss import _loss, sequence_loss
from nmt.vocab import PAD


class OutputOnly(nn.Module):
    """The one part of a Decoder that the loss uses."""

    def __init__(self, hidden_size, vocab_size):
        super().__init__()
        self.out_proj = nn.Linear(hidden_size, vocab_size)

    def output(self, hidden):
        return self.out_proj(hidden)


def setup():
    torch.manual_seed(0)
    decoder = OutputOnly(6, 13)
    hidden = torch.randn(3, 5, 6, requires_grad=True)
    tgt_out = torch.randint(4, 13, (3, 5))
    tgt_out[0, 2:] = PAD
    tgt_out[2, 4:] = PAD
    return decoder, hidden, tgt_out


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_padding_free_equals_full_shape_cross_entropy(smoothing):
    decoder, hidden, tgt_out = setup()
    loss, n_tokens = sequence_loss(decoder, hidden, tgt_out, smoothing)
    assert loss.dim() == 0 and n_tokens.dim() == 0 and int(n_tokens) == 11
    params = [hidden, decoder.out_proj.weight, decoder.out_proj.bias]
    grads = torch.autograd.grad(loss, params)

    logits = decoder.output(hidden)  # (B, T, V)
    expected = F.cross_entropy(
        logits.view(-1, 13),
        tgt_out.view(-1),
        ignore_index=PAD,
        label_smoothing=smoothing,
        reduction="sum",
    )
    expected_grads = torch.autograd.grad(expected, params)
    assert torch.allclose(loss, expected, atol=1e-5)
    for got, want in zip(grads, expected_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    assert torch.all(grads[0][tgt_out == PAD] == 0)


@pytest.mark.parametrize("select_rows", [True, False])
def test_both_paths_agree(select_rows):
    decoder, hidden, tgt_out = setup()
    loss, n_tokens = _loss(decoder, hidden, tgt_out, 0.1, select_rows)
    reference, _ = _loss(decoder, hidden, tgt_out, 0.1, not select_rows)
    assert torch.allclose(loss, reference, atol=1e-5) and int(n_tokens) == 11


def test_label_smoothing_formula():
    decoder, hidden, tgt_out = setup()
    eps = 0.2
    loss, _ = sequence_loss(decoder, hidden, tgt_out, eps)
    log_p = torch.log_softmax(decoder.output(hidden), -1)  # (B, T, V)
    mask = tgt_out != PAD
    nll = -log_p.gather(-1, tgt_out[..., None]).squeeze(-1)
    uniform = -log_p.mean(-1)
    assert torch.allclose(loss, ((1 - eps) * nll + eps * uniform)[mask].sum(), atol=1e-4)


def test_fused_path_gradients_match_on_a_tied_model():
    from nmt.config import ModelConfig
    from nmt.model import build_model

    cfg = ModelConfig(emb_size=6, hidden_size=6, tie_embeddings=True)
    model = build_model(cfg, 9, {"de": 13}).eval()  # no dropout: both passes alike
    decoder = model.decoders["de"]
    _, _, tgt_out = setup()
    src, src_lengths = torch.randint(4, 9, (3, 4)), torch.tensor([4, 4, 4])
    tgt_in = tgt_out.roll(1, dims=1)
    grads = []
    for select_rows in (True, False):
        hidden, _ = model(src, src_lengths, tgt_in, "de")
        loss, _ = _loss(decoder, hidden, tgt_out, 0.1, select_rows)
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    for got, want in zip(*grads, strict=True):
        assert torch.allclose(got, want, atol=1e-5)


def test_autocast_bf16_multiplies_with_float32_softmax():
    """Under bf16 autocast the output layer's multiplies take bf16 and the loss stays close."""
    decoder, hidden, tgt_out = setup()
    decoder.out_proj = nn.Linear(6, 400)  # a vocabulary large enough for rounding to show
    tgt_out = torch.randint(4, 400, tgt_out.shape).masked_fill(tgt_out == PAD, PAD)
    params = [hidden, decoder.out_proj.weight, decoder.out_proj.bias]
    loss, _ = _loss(decoder, hidden, tgt_out, 0.1, True)
    want = torch.autograd.grad(loss, params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, _ = _loss(decoder, hidden, tgt_out, 0.1, True)
    got = torch.autograd.grad(low, params)
    assert low.dtype == torch.float32 and abs(low.item() - loss.item()) < 1e-2 * loss.item()
    for g, w in zip(got, want, strict=True):
        assert g.dtype == torch.float32
        assert (g - w).norm() < 0.02 * w.norm()
