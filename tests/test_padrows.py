import torch
from torch import nn

from nmt import padrows


def test_buckets_are_few_and_never_smaller():
    sizes = {padrows.bucket(m) for m in range(1, 4097)}
    assert all(padrows.bucket(m) >= m for m in range(1, 4097))
    assert len(sizes) <= 8 + 14  # multiples of 64 up to 512, of 256 up to 4096
    assert padrows.bucket(64) == 64 and padrows.bucket(65) == 128 and padrows.bucket(513) == 768


def test_padding_only_for_bf16_on_the_cpu():
    x = torch.randn(3, 4)
    assert not padrows.needs_padding(x, None)
    assert not padrows.needs_padding(x, torch.float32)
    assert padrows.needs_padding(x, torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert padrows.needs_padding(x, None)


def test_padded_linear_equals_the_layer_with_gradients():
    torch.manual_seed(0)
    layer = nn.Linear(4, 6)
    x = torch.randn(5, 7, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = layer(x)
        got = padrows.linear(layer, x)
    assert got.shape == want.shape == (5, 7, 6)
    assert torch.equal(got, want)
    g_want = torch.autograd.grad(want.float().sum(), [x, layer.weight])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = padrows.linear(layer, x)
    g_got = torch.autograd.grad(got.float().sum(), [x, layer.weight])
    for a, b in zip(g_got, g_want, strict=True):
        assert torch.allclose(a, b, atol=1e-2)
