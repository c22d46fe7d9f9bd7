import pytest
import torch

from nmt import kernels
from nmt.attention import AdditiveAttention

BOTH = pytest.mark.parametrize("setting", ["auto", "plain"])


def setup(seed=0):
    torch.manual_seed(seed)
    attention = AdditiveAttention(key_size=6, query_size=4, attention_size=5)
    values = torch.randn(3, 7, 6)  # (N, S, H)
    mask = torch.arange(7) < torch.tensor([7, 4, 1])[:, None]  # (N, S)
    query = torch.randn(3, 4)
    return attention, query, values, mask


@BOTH
def test_matches_the_equation(setting):
    attention, query, values, mask = setup()
    with kernels.use(setting):
        context, weights = attention(query, attention.memory(values, mask))
    W_h, W_s, v = attention.key_proj.weight, attention.query_proj.weight, attention.energy.weight[0]
    for n in range(3):
        real = int(mask[n].sum())
        scores = torch.stack(
            [v @ torch.tanh(W_h @ values[n, j] + W_s @ query[n]) for j in range(real)]
        )
        expected = torch.softmax(scores, dim=0)
        assert torch.allclose(weights[n, :real], expected, atol=1e-6)
        assert torch.allclose(context[n], expected @ values[n, :real], atol=1e-6)


@BOTH
def test_padding_gets_no_weight_and_has_no_effect(setting):
    attention, query, values, mask = setup()
    with kernels.use(setting):
        context, weights = attention(query, attention.memory(values, mask))
        noisy = values.masked_fill(~mask[..., None], 1e4)  # garbage at the padded positions
        context2, weights2 = attention(query, attention.memory(noisy, mask))
    assert torch.all(weights[~mask] == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(3))
    assert torch.equal(weights, weights2)
    assert torch.allclose(context, context2)


@BOTH
def test_fully_masked_row_is_not_nan(setting):
    attention, query, values, mask = setup()
    mask[1] = False
    with kernels.use(setting):
        context, weights = attention(query, attention.memory(values, mask))
    assert torch.isfinite(context).all() and torch.isfinite(weights).all()


@BOTH
def test_shapes_and_gradients(setting):
    attention, query, values, mask = setup()
    query.requires_grad_(True)
    values.requires_grad_(True)
    with kernels.use(setting):
        context, weights = attention(query, attention.memory(values, mask))
    assert context.shape == (3, 6) and weights.shape == (3, 7)
    context.sum().backward()
    assert query.grad.abs().sum() > 0
    assert values.grad[~mask].abs().sum() == 0


def test_sigmoid_form_equals_the_plain_equation():
    """The fast kernel's sigmoid form (nmt/kernels/attention.py) against the plain tanh equation,
    with two query rows (beams) reading each sentence's one row of memory."""
    attention, _, values, mask = setup()
    queries = torch.randn(6, 4)  # (N, Hd), N = 2 B
    results = []
    for setting in ("auto", "plain"):
        with kernels.use(setting), torch.no_grad():
            memory = attention.memory(values, mask)
            assert memory.sigmoid == (setting == "auto")
            picked = memory.select(torch.tensor([2, 0, 1]))
            results.append([*attention(queries, memory), *attention(queries, picked)])
    for fast, plain in zip(*results, strict=True):
        assert torch.allclose(fast, plain, atol=1e-6)


@pytest.mark.parametrize(
    ("use_context", "use_weights"), [(True, False), (True, True), (False, True)]
)
def test_loop_form_equals_plain_autograd(use_context, use_weights):
    """The training loop with the hand-written backward (gradients summed over steps) against
    the plain model's autograd, through the kernels setting."""
    attention, _, values, mask = setup()
    values.requires_grad_(True)
    queries = torch.randn(4, 3, 4, requires_grad=True)  # 4 steps
    params = [values, queries, *attention.parameters()]

    def total(setting: str) -> torch.Tensor:
        with kernels.use(setting):
            memory = attention.memory(values, mask)
            attend = attention.loop(memory)
        assert memory.sigmoid == (setting == "auto")  # the fast kernel is what "auto" takes
        loss = torch.zeros(())
        for t, query in enumerate(queries):
            context, weights = attend(attention.query_proj(query))
            if use_context:
                loss = loss + (context * (t + 1)).sin().sum()
            if use_weights:
                loss = loss + (weights * torch.arange(7.0)).sum()
        return loss

    plain = total("plain")
    want = torch.autograd.grad(plain, params)
    looped = total("auto")
    got = torch.autograd.grad(looped, params)
    assert torch.allclose(looped, plain, atol=1e-6)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-5), (g - w).abs().max()
    assert got[0][~mask].abs().sum() == 0  # padding gets no gradient
