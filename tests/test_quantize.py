"""Int8 decoding (--int8) against the fp32 computation it replaces."""

from __future__ import annotations

import pytest
import torch

from nmt.translate import SearchOptions, load_translator, translate_stream

from conftest import write_reversal


@pytest.fixture(scope="module")
def pair(reversal_run):
    return (load_translator(reversal_run, torch.device("cpu")),
            load_translator(reversal_run, torch.device("cpu"), int8=True))


def test_the_decoder_multiplies_are_int8_and_the_encoder_is_not(pair):
    plain, int8 = pair
    decoder = int8.model.decoders["rev"]
    linears = [decoder.out_proj, decoder.combine, decoder.emb_proj, decoder.feed_proj,
               *decoder.recurrent, decoder.attention.query_proj, decoder.bridge_h]
    for module in linears:
        assert type(module).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert int8.model.encoder.rnn.weight_ih_l0.dtype == torch.float32
    assert type(plain.model.decoders["rev"].out_proj) is torch.nn.Linear  # fp32 model untouched


def test_int8_logits_track_fp32(pair):
    plain, int8 = pair
    hidden = torch.randn(16, plain.model.decoders["rev"].hidden_size)
    with torch.inference_mode():
        expected = plain.model.decoders["rev"].output(hidden)
        got = int8.model.decoders["rev"].output(hidden)
    spread = (expected.max() - expected.min()).item()
    assert (got - expected).abs().max().item() < 0.05 * spread
    assert (got.argmax(1) == expected.argmax(1)).float().mean().item() >= 0.9


def test_int8_translations_are_as_good_as_fp32(pair, tmp_path):
    """Same quality on the (partly learned) reversal task: the int8 rounding may flip a close
    call, but must not cost accuracy."""
    import sacrebleu

    plain, int8 = pair
    write_reversal(tmp_path / "probe", 200, seed=7)
    lines = (tmp_path / "probe.sym").read_text().splitlines()
    refs = (tmp_path / "probe.rev").read_text().splitlines()
    opts = SearchOptions(beam=3)
    fp32 = [t.text for t in translate_stream(plain, lines, None, opts)]
    quant = [t.text for t in translate_stream(int8, lines, None, opts)]
    assert len(quant) == len(lines)
    assert sum(a == b for a, b in zip(fp32, quant, strict=True)) >= 0.8 * len(lines)
    bleu = [sacrebleu.corpus_bleu(hyps, [refs]).score for hyps in (fp32, quant)]
    assert bleu[0] > 5  # the model has learned something (BLEU about 9)
    assert abs(bleu[1] - bleu[0]) < 1.0, bleu
