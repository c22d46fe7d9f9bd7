"""Padded shapes (nmt/kernels/shapes.py) against the bare multiplies they replace."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nmt import kernels
from nmt.config import ModelConfig
from nmt.kernels import shapes
from nmt.kernels.shapes import PaddedLinear, pad_output_layers
from nmt.model import build_model
from nmt.precision import Fp32Linear
from nmt.translate import SearchOptions, load_translator, translate_stream

from conftest import write_reversal


def test_buckets_are_few_and_never_smaller():
    sizes = {shapes.bucket(m) for m in range(1, 4097)}
    assert all(shapes.bucket(m) >= m for m in range(1, 4097))
    assert len(sizes) <= 8 + 14  # multiples of 64 up to 512, of 256 up to 4096
    assert shapes.bucket(64) == 64 and shapes.bucket(65) == 128 and shapes.bucket(513) == 768


def test_padding_only_for_bf16_on_the_cpu():
    x = torch.randn(3, 4)
    assert not shapes.needs_padding(x, None)
    assert not shapes.needs_padding(x, torch.float32)
    assert shapes.needs_padding(x, torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert shapes.needs_padding(x, None)


def test_padded_rows_equal_the_layer_with_gradients():
    torch.manual_seed(0)
    layer = nn.Linear(4, 6)
    x = torch.randn(5, 7, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = layer(x)
        got = shapes.linear(layer, x)
    assert got.shape == want.shape == (5, 7, 6)
    assert torch.equal(got, want)
    g_want = torch.autograd.grad(want.float().sum(), [x, layer.weight])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = shapes.linear(layer, x)
    g_got = torch.autograd.grad(got.float().sum(), [x, layer.weight])
    for a, b in zip(g_got, g_want, strict=True):
        assert torch.allclose(a, b, atol=1e-2)


def test_a_batch_of_one_multiplies_as_it_would_inside_a_larger_batch():
    """Attention's context for one sentence's beams (K = 5 rows, 2 threads: the case whose sums
    split differently on a Zen 4 CPU) is the same bits alone as among 7 sentences."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        gen = torch.Generator().manual_seed(3)
        weights = torch.randn(7, 5, 32, generator=gen).softmax(-1)  # (B, K, S)
        values = torch.randn(7, 32, 512, generator=gen)  # (B, S, H)
        inside = torch.bmm(weights, values)
        alone = shapes.bmm(weights[:1], values[:1])
        assert torch.equal(alone, inside[:1])
        assert torch.equal(shapes.bmm(weights[:3], values[:3]), inside[:3])
        assert torch.allclose(alone[0], weights[0] @ values[0], atol=1e-5)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(("size", "want"), [(1, 8), (13, 16), (16, 16), (5477, 5480)])
def test_padded_is_the_next_multiple_of_8(size, want):
    assert shapes.padded(size) == want


def test_padded_linear_computes_the_same_logits():
    torch.manual_seed(0)
    plain = nn.Linear(12, 13)
    layer = PaddedLinear(plain)
    assert layer.linear.weight.shape == (16, 12)
    assert torch.all(layer.linear.weight[13:] == 0) and torch.all(layer.linear.bias[13:] == 0)
    x = torch.randn(3, 5, 12)
    with torch.inference_mode():
        got, want = layer(x), plain(x)
    assert got.shape == want.shape == (3, 5, 13)
    assert torch.allclose(got, want, atol=1e-6)


def test_only_unaligned_output_layers_are_swapped_and_shared_ones_stay_shared():
    cfg = ModelConfig(emb_size=8, hidden_size=8, share_decoder_embeddings=True)
    shared = pad_output_layers(build_model(cfg, 9, {"de": 13, "fr": 13}))
    de, fr = shared.decoders["de"].out_proj, shared.decoders["fr"].out_proj
    assert isinstance(de, PaddedLinear) and de is fr
    aligned = pad_output_layers(build_model(ModelConfig(emb_size=8, hidden_size=8), 9, {"de": 16}))
    assert type(aligned.decoders["de"].out_proj) is nn.Linear


def test_translations_are_those_of_the_unpadded_model(reversal_run, tmp_path):
    padded = load_translator(reversal_run, torch.device("cpu"))
    assert isinstance(padded.model.decoders["rev"].out_proj, PaddedLinear)  # 21 target ids
    with kernels.use("plain"):
        plain = load_translator(reversal_run, torch.device("cpu"))
    out = plain.model.decoders["rev"].out_proj  # fp32 translation wraps each Linear (precision.py)
    assert type(out) is Fp32Linear and type(out.linear) is nn.Linear
    write_reversal(tmp_path / "probe", 60, seed=3)
    lines = (tmp_path / "probe.sym").read_text().splitlines()
    for beam in (1, 4):
        opts = SearchOptions(beam=beam, n_best=min(beam, 2))
        got = [t.hyps for t in translate_stream(padded, lines, None, opts)]
        want = [t.hyps for t in translate_stream(plain, lines, None, opts)]
        assert [[h[0] for h in hyps] for hyps in got] == [[h[0] for h in hyps] for hyps in want]
        scores = [[h[2] for h in hyps] for hyps in got], [[h[2] for h in hyps] for hyps in want]
        for row_got, row_want in zip(*scores, strict=True):
            assert row_got == pytest.approx(row_want, abs=1e-4)
