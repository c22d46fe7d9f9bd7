import pytest
import torch

from nmt.dropout import Dropout


def test_identity_in_eval_and_at_zero():
    x = torch.randn(4, 5)
    assert Dropout(0.3).eval()(x) is x
    assert Dropout(0.0).train()(x) is x


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_training_drops_a_fraction_p_and_keeps_the_mean(p):
    torch.manual_seed(0)
    x = torch.ones(400, 500)
    out = Dropout(p).train()(x)
    dropped = (out == 0).float().mean().item()
    assert abs(dropped - p) < 0.01
    assert torch.allclose(out[out != 0], torch.full_like(out[out != 0], 1 / (1 - p)))
    assert abs(out.mean().item() - 1.0) < 0.02


def test_gradient_is_the_mask():
    torch.manual_seed(0)
    x = torch.randn(50, 60, requires_grad=True)
    out = Dropout(0.4).train()(x)
    out.sum().backward()
    assert torch.equal(x.grad == 0, out == 0)
    assert torch.allclose(x.grad[x.grad != 0], torch.full_like(x.grad[x.grad != 0], 1 / 0.6))


def test_always_drop():
    assert torch.equal(Dropout(1.0).train()(torch.ones(3)), torch.zeros(3))


def test_whole_tokens_drops_every_value_of_a_token_together():
    """Word dropout: one draw per token, so a token's vector is all zero or all scaled."""
    torch.manual_seed(0)
    x = torch.ones(40, 50, 6, requires_grad=True)
    out = Dropout(0.2, whole_tokens=True).train()(x)
    zero = out == 0  # (40, 50, 6)
    assert torch.equal(zero.all(-1), zero.any(-1))
    assert abs(zero.all(-1).float().mean().item() - 0.2) < 0.03
    assert torch.allclose(out[~zero], torch.full_like(out[~zero], 1 / 0.8))
    out.sum().backward()
    assert torch.equal(x.grad == 0, zero)
