"""Translation of streams: order, one line per input line, batching invariance, beam 1 = greedy."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmt.data import pad_sequences
from nmt.errors import ConfigError
from nmt.translate import SearchOptions, load_translator, translate_stream

from conftest import REVERSAL_SYMBOLS


@pytest.fixture(scope="module")
def translator(reversal_run):
    return load_translator(reversal_run, torch.device("cpu"))


SENTENCES = ["a b c d e", "s r q", "", "a a a a a a a a a b", "   ", "k l m n o p q r s a b"]


def texts(translator, lines, **kw):
    opts = SearchOptions(**{k: v for k, v in kw.items() if k in SearchOptions.__annotations__})
    rest = {k: v for k, v in kw.items() if k not in SearchOptions.__annotations__}
    return [t.text for t in translate_stream(translator, lines, None, opts, **rest)]


def test_batched_equals_one_by_one(translator):
    for beam in (1, 4):
        together = texts(translator, SENTENCES, beam=beam, batch_size=64)
        alone = [texts(translator, [line], beam=beam)[0] for line in SENTENCES]
        assert together == alone
        small_windows = texts(translator, SENTENCES, beam=beam, batch_size=2, window=3)
        assert small_windows == together


def test_beam_one_equals_greedy_on_the_trained_model(translator):
    """beam_search with beam 1 and greedy agree token for token on a real (partly trained) model."""
    from nmt import search

    batch = [translator.prepare(line)[1] for line in SENTENCES if line.strip()]
    lengths = torch.tensor([len(ids) for ids in batch])
    src = pad_sequences(batch)
    model = translator.model.eval()
    with torch.inference_mode():
        enc = model.encode(src, lengths)
        decoder = model.decoders["rev"]
        max_lengths = lengths * 2 + 5
        greedy = search.greedy(decoder, enc, max_lengths)
        beam1 = search.beam_search(decoder, enc, 1, max_lengths, alpha=0.0)
    assert greedy.tokens == beam1.tokens
    assert any(len(hyp[0]) for hyp in greedy.tokens)  # not a trivially empty comparison


def test_n_best_through_translate(translator):
    out = translate_stream(translator, SENTENCES, None, SearchOptions(beam=2, n_best=2, alpha=0.0))
    for result, line in zip(out, SENTENCES, strict=True):
        assert len(result.hyps) == (2 if line.strip() else 0)
        if result.hyps:
            assert result.hyps[0][2] >= result.hyps[1][2]


def test_empty_lines_give_empty_output(translator):
    out = texts(translator, SENTENCES, beam=3)
    assert out[2] == "" and out[4] == ""
    assert out[0] != ""


line = st.text(alphabet=REVERSAL_SYMBOLS + " \t\u00a0", max_size=30)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(line, max_size=12), st.integers(1, 5), st.integers(1, 4))
def test_one_output_per_input_line(translator, lines, batch_size, window):
    out = list(translate_stream(translator, lines, None, SearchOptions(beam=2),
                                batch_size=batch_size, window=window))
    assert len(out) == len(lines)
    for text, result in zip(lines, out, strict=True):
        assert "\n" not in result.text
        if not text.split():
            assert result.text == ""


def test_overlong_line_is_truncated_and_reported(translator):
    long_line = " ".join(["a"] * (translator.max_src_len + 20))
    cut = []
    out = list(translate_stream(translator, ["b c", long_line], None, SearchOptions(beam=1),
                                on_truncate=cut.append))
    assert len(out) == 2 and cut == [2]
    assert len(out[1].source_pieces) == translator.max_src_len


def test_unknown_task_lists_tasks(translator):
    with pytest.raises(ConfigError, match="rev"):
        list(translate_stream(translator, ["a"], "cs", SearchOptions()))


def test_loaded_model_equals_a_freshly_built_one(translator, reversal_run):
    """The fast load (meta-device build, mapped checkpoint) gives the plain build's computation."""
    from nmt import checkpoint
    from nmt.config import resolve
    from nmt.model import build_model
    state = checkpoint.load(checkpoint.find(reversal_run))
    model_cfg, _ = resolve(state["model_config"], state["train_config"])
    vocabs = {t: state["model"][f"decoders.{t}.out_proj.weight"].shape[0] for t in state["tasks"]}
    plain = build_model(model_cfg, state["model"]["encoder.embeddings.weight"].shape[0], vocabs)
    plain.load_state_dict(state["model"])
    plain.eval()
    fast = translator.model
    assert not any(t.is_meta for t in [*fast.parameters(), *fast.buffers()])
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 2, 0]])
    lengths = torch.tensor([4, 3])
    tgt = torch.tensor([[1, 5, 6], [1, 7, 8]])
    with torch.inference_mode():
        expected, _ = plain.decoders["rev"](tgt, plain.encode(src, lengths))
        got, _ = fast.decoders["rev"](tgt, fast.encode(src, lengths))
    # Translation multiplies rows in fixed blocks (precision.Fp32Linear): sums round differently.
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_translate_file_writes_n_best_and_resumes_without_a_subprocess(translator, tmp_path):
    from nmt.config import DecodeOptions
    from nmt.translate import translate_file

    source = tmp_path / "in.txt"
    source.write_text("".join(line + "\n" for line in SENTENCES))
    opts = DecodeOptions(beam=2, window=2)
    full, done = tmp_path / "full.txt", []
    translate_file(translator, source, full, opts, n_best=2, on_line=done.append)
    lines = full.read_text().splitlines(keepends=True)
    assert len(lines) == 2 * len(SENTENCES) and done == list(range(len(SENTENCES) + 1))
    assert [line.split(" ||| ")[0] for line in lines] == [str(i // 2) for i in range(len(lines))]
    out = tmp_path / "out.txt"
    (tmp_path / "out.txt.partial").write_text("".join(lines[:5]) + lines[5][:4])
    done.clear()
    translate_file(translator, source, out, opts, n_best=2, resume=True, on_line=done.append)
    assert out.read_text() == full.read_text()
    assert done[0] == 2  # two whole groups were kept
    with pytest.raises(ConfigError, match="--resume needs"):
        translate_file(translator, None, out, opts, resume=True)
