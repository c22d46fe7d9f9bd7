"""Low-precision decoding (--precision int8 / bf16) against the fp32 computation it replaces."""

from __future__ import annotations

import pytest
import torch

from nmt.config import ModelConfig
from nmt.errors import ConfigError
from nmt.kernels.shapes import PaddedLinear
from nmt.model import build_model
from nmt.precision import (
    Bf16Linear,
    Fp32Linear,
    Int8Linear,
    auto_precision,
    bf16_decoders,
    int8_available,
    int8_decoders,
)
from nmt.translate import SearchOptions, load_translator, translate_stream

from conftest import write_reversal

LOW = ["int8", "bf16"]


@pytest.fixture(scope="module")
def translators(reversal_run):
    return {p: load_translator(reversal_run, torch.device("cpu"), p) for p in ("fp32", *LOW)}


def _output_multiply(decoder):
    """The Linear inside the output layer (shapes.PaddedLinear wraps it where V % 8 != 0)."""
    out = decoder.out_proj
    return out.linear if isinstance(out, PaddedLinear) else out


def _swapped(module, precision: str) -> bool:
    if precision == "bf16":
        return type(module) is Bf16Linear and module.weight.dtype == torch.bfloat16
    return type(module) is Int8Linear and module.weight_t.dtype == torch.int8


@pytest.mark.parametrize("precision", LOW)
def test_the_decoder_multiplies_are_swapped_and_the_encoder_is_not(translators, precision):
    low = translators[precision]
    decoder = low.model.decoders["rev"]
    linears = [_output_multiply(decoder), decoder.combine, decoder.emb_proj, decoder.feed_proj,
               *decoder.recurrent, decoder.attention.query_proj, decoder.bridge_h]
    for module in linears:
        assert _swapped(module, precision), module
    assert low.model.encoder.rnn.weight_ih_l0.dtype == torch.float32
    energy = decoder.attention.energy  # its (N, S, A) input is larger than its multiply
    assert type(energy) is torch.nn.Linear and energy.weight.dtype == torch.float32
    plain = _output_multiply(translators["fp32"].model.decoders["rev"])
    assert type(plain) is Fp32Linear and plain.linear.weight.dtype == torch.float32


@pytest.mark.parametrize("precision", LOW)
def test_the_input_table_is_the_float32_projection(translators, precision):
    """Taken before the swap: the table is float32 and exact, not an int8/bf16 product."""
    plain = translators["fp32"].model.decoders["rev"]
    table = translators[precision].model.decoders["rev"].input_table
    assert table.dtype == torch.float32
    assert torch.equal(table, plain.input_table)
    with torch.inference_mode():
        assert torch.allclose(table, plain.emb_proj(plain.embeddings.weight), atol=1e-6)


@pytest.mark.parametrize("swap", [int8_decoders, bf16_decoders])
def test_an_output_layer_that_decoders_share_is_swapped_in_each(swap):
    if swap is int8_decoders and not int8_available():
        pytest.skip("this PyTorch has no dynamic int8")
    cfg = ModelConfig(emb_size=8, hidden_size=8, share_decoder_embeddings=True)
    model = swap(build_model(cfg, 11, {"de": 13, "fr": 13}))
    for decoder in model.decoders.values():
        assert _swapped(decoder.out_proj, "bf16" if swap is bf16_decoders else "int8")
        assert type(decoder.attention.energy) is torch.nn.Linear


@pytest.mark.parametrize("precision", LOW)
def test_low_precision_logits_track_fp32(translators, precision):
    plain, low = translators["fp32"], translators[precision]
    # Its own generator: the fraction below must not depend on what other tests drew before.
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(256, plain.model.decoders["rev"].hidden_size, generator=gen)
    with torch.inference_mode():
        expected = plain.model.decoders["rev"].output(hidden)
        got = low.model.decoders["rev"].output(hidden)
    assert got.dtype == torch.float32
    spread = (expected.max() - expected.min()).item()
    assert (got - expected).abs().max().item() < 0.05 * spread
    assert (got.argmax(1) == expected.argmax(1)).float().mean().item() >= 0.9


@pytest.mark.parametrize("precision", LOW)
def test_low_precision_translations_are_as_good_as_fp32(translators, precision, tmp_path):
    """Same quality on the (partly learned) reversal task: the rounding may flip a close call,
    but must not cost accuracy."""
    import sacrebleu

    plain, low = translators["fp32"], translators[precision]
    write_reversal(tmp_path / "probe", 200, seed=7)
    lines = (tmp_path / "probe.sym").read_text().splitlines()
    refs = (tmp_path / "probe.rev").read_text().splitlines()
    opts = SearchOptions(beam=3)
    fp32 = [t.text for t in translate_stream(plain, lines, None, opts)]
    quant = [t.text for t in translate_stream(low, lines, None, opts)]
    assert len(quant) == len(lines)
    assert sum(a == b for a, b in zip(fp32, quant, strict=True)) >= 0.8 * len(lines)
    bleu = [sacrebleu.corpus_bleu(hyps, [refs]).score for hyps in (fp32, quant)]
    assert bleu[0] > 5  # the model has learned something (BLEU about 9)
    assert abs(bleu[1] - bleu[0]) < 1.0, bleu


def _rows_of_different_scales(rows: int, size: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    scales = torch.logspace(-3, 2, rows)[torch.randperm(rows, generator=gen)]
    return torch.randn(rows, size, generator=gen) * scales[:, None]


def test_int8_linear_is_its_equation():
    """y = s_x s_w (q_x q_w^T) + b, computed in float64 from the same integers."""
    linear = torch.nn.Linear(48, 24)
    x = _rows_of_different_scales(37, 48)
    low = Int8Linear(linear)
    with torch.inference_mode():
        got = low(x.view(37, 1, 48)).view(37, 24)
        s_x = x.abs().amax(1, keepdim=True) / 127
        q_x = torch.round(x / s_x).clamp(-127, 127)
        s_w = linear.weight.abs().amax(1) / 127
        q_w = torch.round(linear.weight / s_w[:, None])
        want = (q_x.double() @ q_w.double().t()) * s_x.double() * s_w.double() + linear.bias
        assert torch.equal(low.weight_t.t().float(), q_w)
        torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
        # and close to the float32 layer: a rounding error per row of its own scale
        error = (got - linear(x)).abs().amax(1)
        assert bool((error <= 0.02 * x.abs().amax(1) * linear.weight.abs().sum(1).max()).all())


@pytest.mark.parametrize("layer", [Int8Linear, Fp32Linear])
def test_a_row_gives_the_same_bits_alone_or_among_others(layer):
    """Rows of very different scales, 1 to 300 at a time: each row's result is bit-identical."""
    torch.set_num_threads(2)  # the CPU kernels split work between threads by the row count
    linear = torch.nn.Linear(512, 512)
    swapped = layer(linear)
    x = _rows_of_different_scales(300, 512)
    with torch.inference_mode():
        together = swapped(x)
        for rows in (1, 5, 15, 16, 33, 299):
            assert torch.equal(swapped(x[-rows:]), together[-rows:]), rows
        if layer is Fp32Linear:  # the same products as the plain layer, summed in block order
            torch.testing.assert_close(together, linear(x), rtol=1e-5, atol=1e-5)


def test_unknown_precision_is_refused(reversal_run):
    with pytest.raises(ConfigError, match="precision must be one of"):
        load_translator(reversal_run, torch.device("cpu"), "fp8")


@pytest.mark.parametrize(("native", "int8", "want"), [
    (True, True, "int8"), (False, True, "int8"), (False, False, "fp32")])
def test_auto_is_int8_on_the_cpu_even_with_bf16(reversal_run, monkeypatch, native, int8, want):
    monkeypatch.setattr("nmt.device.native_bf16", lambda device: native)
    monkeypatch.setattr("nmt.precision.int8_available", lambda: int8)
    assert auto_precision(torch.device("cpu")) == want
    out = _output_multiply(load_translator(reversal_run, torch.device("cpu"), "auto").model
                           .decoders["rev"])
    for precision in LOW:
        assert _swapped(out, precision) is (precision == want)


@pytest.mark.parametrize(("native", "want"), [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_gpu_is_bf16_where_it_has_it(monkeypatch, native, want):
    monkeypatch.setattr("nmt.device.native_bf16", lambda device: native)
    assert auto_precision(torch.device("cuda")) == want  # int8 is for the CPU


def test_this_pytorch_has_int8():
    assert int8_available()  # torch 2.11-2.14 on x86 and ARM all ship it
