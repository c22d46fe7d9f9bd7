"""Translation of streams: order, one line per input line, batching invariance, beam 1 = greedy."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def test_beam_one_equals_greedy_path(translator):
    greedy = translate_stream(translator, SENTENCES, None, SearchOptions(beam=1))
    beam1 = translate_stream(translator, SENTENCES, None, SearchOptions(beam=1, n_best=1, alpha=0.0))
    assert [t.text for t in greedy] == [t.text for t in beam1]
    # and through the beam code path itself (n_best forces beam_search)
    via_beam = translate_stream(translator, SENTENCES, None, SearchOptions(beam=2, n_best=2, alpha=0.0))
    assert all(len(t.hyps) == 2 for t, line in zip(via_beam, SENTENCES) if line.strip())


def test_empty_lines_give_empty_output(translator):
    out = texts(translator, SENTENCES, beam=3)
    assert out[2] == "" and out[4] == ""
    assert out[0] != ""


line = st.text(alphabet=REVERSAL_SYMBOLS + " \t\u00a0", max_size=30)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(line, max_size=12), st.integers(1, 5), st.integers(1, 4))
def test_one_output_per_input_line(translator, lines, batch_size, window):
    out = list(translate_stream(translator, lines, None, SearchOptions(beam=2), batch_size=batch_size,
                                window=window))
    assert len(out) == len(lines)
    for text, result in zip(lines, out):
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
