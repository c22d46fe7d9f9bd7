import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nmt import kernels
from nmt.loss import sequence_loss
from nmt.vocab import PAD


def setup():
    torch.manual_seed(0)
    output = nn.Linear(6, 13)
    hidden = torch.randn(3, 5, 6, requires_grad=True)
    tgt_out = torch.randint(4, 13, (3, 5))
    tgt_out[0, 2:] = PAD
    tgt_out[2, 4:] = PAD
    return output, hidden, tgt_out


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_fast_kernel_equals_the_plain_loss(smoothing):
    """The fused output layer + cross-entropy on the real rows (nmt/kernels/loss.py) against the
    plain F.cross_entropy over every position: value and every gradient."""
    output, hidden, tgt_out = setup()
    params = [hidden, output.weight, output.bias]
    loss, n_tokens = sequence_loss(output, hidden, tgt_out, smoothing)
    assert loss.grad_fn.name() == "_OutputCrossEntropyBackward"
    assert loss.dim() == 0 and n_tokens.dim() == 0 and int(n_tokens) == 11
    grads = torch.autograd.grad(loss, params)
    with kernels.use("plain"):
        expected, plain_tokens = sequence_loss(output, hidden, tgt_out, smoothing)
    assert int(plain_tokens) == 11
    expected_grads = torch.autograd.grad(expected, params)
    assert torch.allclose(loss, expected, atol=1e-5)
    for got, want in zip(grads, expected_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    assert torch.all(grads[0][tgt_out == PAD] == 0)


@pytest.mark.parametrize("setting", ["auto", "plain"])
def test_label_smoothing_formula(setting):
    output, hidden, tgt_out = setup()
    eps = 0.2
    with kernels.use(setting):
        loss, _ = sequence_loss(output, hidden, tgt_out, eps)
    log_p = torch.log_softmax(output(hidden), -1)  # (B, T, V)
    mask = tgt_out != PAD
    nll = -log_p.gather(-1, tgt_out[..., None]).squeeze(-1)
    uniform = -log_p.mean(-1)
    assert torch.allclose(loss, ((1 - eps) * nll + eps * uniform)[mask].sum(), atol=1e-4)


def test_plain_loss_is_the_cross_entropy_of_the_output_layer():
    output, hidden, tgt_out = setup()
    with kernels.use("plain"):
        loss, _ = sequence_loss(output, hidden, tgt_out, 0.1)
    want = F.cross_entropy(output(hidden).view(-1, 13), tgt_out.view(-1), ignore_index=PAD,
                           label_smoothing=0.1, reduction="sum")
    assert torch.equal(loss, want)


def test_fast_kernel_gradients_match_on_a_tied_model():
    from nmt.config import ModelConfig
    from nmt.model import build_model

    cfg = ModelConfig(emb_size=6, hidden_size=6, tie_embeddings=True)
    model = build_model(cfg, 9, {"de": 13}).eval()  # no dropout: both passes alike
    output = model.decoders["de"].out_proj
    _, _, tgt_out = setup()
    src, src_lengths = torch.randint(4, 9, (3, 4)), torch.tensor([4, 4, 4])
    tgt_in = tgt_out.roll(1, dims=1)
    grads = []
    for setting in ("auto", "plain"):
        with kernels.use(setting):
            hidden, _ = model(src, src_lengths, tgt_in, "de")
            loss, _ = sequence_loss(output, hidden, tgt_out, 0.1)
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    for got, want in zip(*grads, strict=True):
        assert torch.allclose(got, want, atol=1e-5)


def test_autocast_bf16_multiplies_with_float32_softmax():
    """Under bf16 autocast the output layer's multiplies take bf16 and the loss stays close."""
    _, hidden, tgt_out = setup()
    output = nn.Linear(6, 400)  # a vocabulary large enough for rounding to show
    tgt_out = torch.randint(4, 400, tgt_out.shape).masked_fill(tgt_out == PAD, PAD)
    params = [hidden, output.weight, output.bias]
    loss, _ = sequence_loss(output, hidden, tgt_out, 0.1)
    want = torch.autograd.grad(loss, params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, _ = sequence_loss(output, hidden, tgt_out, 0.1)
    got = torch.autograd.grad(low, params)
    assert low.dtype == torch.float32 and abs(low.item() - loss.item()) < 1e-2 * loss.item()
    for g, w in zip(got, want, strict=True):
        assert g.dtype == torch.float32
        assert (g - w).norm() < 0.02 * w.norm()
