"""The padded output layer (padcols.py) against the plain Linear it replaces."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nmt import padcols
from nmt.config import ModelConfig
from nmt.model import build_model
from nmt.padcols import PaddedLinear, pad_output_layers
from nmt.precision import Fp32Linear
from nmt.translate import SearchOptions, load_translator, translate_stream

from conftest import write_reversal


@pytest.mark.parametrize(("size", "want"), [(1, 8), (13, 16), (16, 16), (5477, 5480)])
def test_padded_is_the_next_multiple_of_8(size, want):
    assert padcols.padded(size) == want


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


def test_translations_are_those_of_the_unpadded_model(reversal_run, tmp_path, monkeypatch):
    padded = load_translator(reversal_run, torch.device("cpu"))
    assert isinstance(padded.model.decoders["rev"].out_proj, PaddedLinear)  # 21 target ids
    monkeypatch.setattr(padcols, "pad_output_layers", lambda model: model)
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
