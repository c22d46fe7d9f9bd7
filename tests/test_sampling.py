"""Sampling (--sample): the drawn distribution, reproducibility, batch invariance, and the
options' checks."""

from __future__ import annotations

import pytest
import torch
from test_search import ScriptedDecoder, make_enc

from nmt.config import DecodeOptions
from nmt.errors import ConfigError
from nmt.sampling import Sampler, Sampling
from nmt.search import greedy
from nmt.translate import load_translator, translations

from conftest import symbol_lines

A, B, C = 4, 5, 6


def _first_tokens(sampling: Sampling, n: int = 4000) -> list[float]:
    """How often each of A, B, C is drawn first, over n sentences of a scripted decoder."""
    decoder = ScriptedDecoder({(): {A: 0.5, B: 0.3, C: 0.2}})
    enc = make_enc([2] * n)
    sampler = Sampler(sampling, range(n), 3, torch.device("cpu"))
    hyps = greedy(decoder, enc, torch.full((n,), 2), sampler=sampler)
    firsts = [tokens[0][0] for tokens in hyps.tokens]
    return [firsts.count(token) / n for token in (A, B, C)]


@pytest.mark.parametrize(
    ("sampling", "want"),
    [
        (Sampling(), [0.5, 0.3, 0.2]),
        (Sampling(temperature=0.5), [0.25 / 0.38, 0.09 / 0.38, 0.04 / 0.38]),
        (Sampling(top_k=2), [0.625, 0.375, 0.0]),
        (Sampling(top_p=0.75), [0.625, 0.375, 0.0]),  # C is past the first 75% of the mass
        (Sampling(top_p=0.4), [1.0, 0.0, 0.0]),
    ],
)
def test_draws_follow_the_tempered_truncated_distribution(sampling, want):
    assert _first_tokens(sampling) == pytest.approx(want, abs=0.03)


@pytest.fixture(scope="module")
def translator(reversal_run):
    return load_translator(reversal_run, torch.device("cpu"), "auto")


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return symbol_lines(60, seed=3, longest=30) + ["", "a b"]


def _sampled(translator, lines, skip: int = 0, **options) -> list[tuple[str, float]]:
    opts = DecodeOptions(sample=True, **options)
    return [
        (t.text, t.hyps[0][2] if t.hyps else 0.0)
        for t in translations(translator, lines, opts, skip=skip)
    ]


def test_same_seed_same_output_and_another_seed_differs(translator, lines):
    first = _sampled(translator, lines, seed=1, temperature=1.5)
    assert _sampled(translator, lines, seed=1, temperature=1.5) == first
    other = _sampled(translator, lines, seed=2, temperature=1.5)
    assert sum(a != b for a, b in zip(first, other, strict=True)) > 10
    assert first[-2] == ("", 0.0)  # an empty line stays empty


def test_a_line_draws_the_same_whatever_its_batch_window_or_resume(translator, lines):
    alone = _sampled(translator, lines, seed=7, batch_size=1)
    assert _sampled(translator, lines, seed=7, batch_size=7, window=13) == alone
    assert _sampled(translator, lines, seed=7, batch_size=64) == alone
    assert _sampled(translator, lines, skip=25, seed=7) == alone[25:]  # a resumed output


def test_top_k_one_is_greedy(translator, lines):
    greedy_out = [
        (t.text, t.hyps[0][2] if t.hyps else 0.0)
        for t in translations(translator, lines, DecodeOptions(beam=1))
    ]
    assert _sampled(translator, lines, top_k=1, temperature=3.0, seed=5) == greedy_out
    assert _sampled(translator, lines, top_p=1e-6, seed=5) == greedy_out


@pytest.mark.parametrize(
    "bad",
    [{"temperature": 0.0}, {"temperature": -1.0}, {"top_p": 0.0}, {"top_p": 1.5}, {"top_k": -1}],
)
def test_bad_sampling_options_are_refused(bad):
    with pytest.raises(ConfigError, match=next(iter(bad)).replace("_", "-")):
        DecodeOptions(sample=True, **bad)


def test_sampling_through_the_command_line(runner, tmp_path, reversal_run, lines):
    from nmt_cli.main import app

    source = tmp_path / "in.txt"
    source.write_text("".join(line + "\n" for line in lines))
    base = ["translate", "-m", str(reversal_run), "-i", str(source), "--sample", "--seed", "3"]
    first = runner.invoke(app, [*base, "-o", str(tmp_path / "a.txt")])
    again = runner.invoke(app, [*base, "-o", str(tmp_path / "b.txt"), "--batch-size", "5"])
    assert first.exit_code == 0 and again.exit_code == 0, first.output + again.output
    assert (tmp_path / "a.txt").read_text() == (tmp_path / "b.txt").read_text()
    assert len((tmp_path / "a.txt").read_text().splitlines()) == len(lines)
    refused = runner.invoke(app, [*base, "--temperature", "0"])
    assert refused.exit_code == 3 and "temperature must be positive" in refused.stderr
    n_best = runner.invoke(app, [*base, "--n-best", "2"])
    assert n_best.exit_code == 3 and "--n-best 1" in n_best.stderr
