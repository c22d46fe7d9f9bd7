"""step_linear: the loop form of a Linear layer equals the layer, gradients included."""

import pytest
import torch
from torch import nn

from nmt.kernels.steplinear import step_linear

STEPS, BATCH, IN, OUT = 6, 3, 5, 5


def recurrence(cell_in: nn.Linear, cell_rec: nn.Linear, xs: torch.Tensor, loop: bool,
               skip_last: bool = False) -> torch.Tensor:
    """A toy RNN h_t = tanh(W x_t + b + U h_{t-1}); returns a loss of its states."""
    f = step_linear(cell_in) if loop else cell_in
    g = step_linear(cell_rec) if loop else cell_rec
    h = torch.zeros(BATCH, OUT)
    states = []
    for x in xs:
        h = torch.tanh(f(x) + g(h))
        states.append(h)
    if skip_last:  # the last step's output gets no gradient at all
        states = states[:-1]
    return (torch.stack(states) * torch.linspace(-1, 2, OUT)).pow(2).sum()


def make(bias=True):
    torch.manual_seed(0)
    cell_in, cell_rec = nn.Linear(IN, OUT, bias=bias), nn.Linear(OUT, OUT, bias=False)
    return cell_in, cell_rec, torch.randn(STEPS, BATCH, IN)


@pytest.mark.parametrize("skip_last", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_values_and_gradients_equal_plain_linear(bias, skip_last):
    cell_in, cell_rec, xs = make(bias)
    xs.requires_grad_(True)
    params = [*cell_in.parameters(), *cell_rec.parameters()]
    plain = recurrence(cell_in, cell_rec, xs, loop=False, skip_last=skip_last)
    want = torch.autograd.grad(plain, [xs, *params])
    looped = recurrence(cell_in, cell_rec, xs, loop=True, skip_last=skip_last)
    got = torch.autograd.grad(looped, [xs, *params])
    assert torch.allclose(looped, plain, atol=1e-6)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-5), (g - w).abs().max()


def test_plain_layer_when_no_gradient_is_needed():
    cell_in, _, _ = make()
    with torch.no_grad():
        assert step_linear(cell_in) is cell_in
    cell_in.requires_grad_(False)
    assert step_linear(cell_in) is cell_in


def test_autocast_casts_once_and_stays_close():
    cell_in, cell_rec, xs = make()
    params = [*cell_in.parameters(), cell_rec.weight]
    want = torch.autograd.grad(recurrence(cell_in, cell_rec, xs, loop=False), params)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        looped = recurrence(cell_in, cell_rec, xs, loop=True)
    got = torch.autograd.grad(looped, params)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == torch.float32
        assert torch.allclose(g, w, rtol=0.05, atol=0.05 * w.abs().max())


def test_two_passes_keep_their_own_records():
    """Gradient accumulation: two forward passes, then one backward of their sum."""
    cell_in, cell_rec, xs = make()
    def two(loop: bool) -> torch.Tensor:
        return (recurrence(cell_in, cell_rec, xs, loop=loop)
                + recurrence(cell_in, cell_rec, xs * 2, loop=loop))

    total = two(loop=True)
    got = torch.autograd.grad(total, [cell_in.weight])
    plain = two(loop=False)
    want = torch.autograd.grad(plain, [cell_in.weight])
    assert torch.allclose(got[0], want[0], atol=1e-5)
