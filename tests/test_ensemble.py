"""Ensembles (`nmt translate -m A -m B`): the ensemble of one is the model, output is
batch-invariant, n-best and attention work, and models that do not share vocabularies are
refused naming both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nmt import checkpoint, search
from nmt.ensemble import Ensemble, Joint
from nmt.errors import ConfigError
from nmt.translate import SearchOptions, load_translator, translate_stream
from nmt_cli.main import app

from conftest import symbol_lines


@pytest.fixture(scope="module")
def probe() -> list[str]:
    return symbol_lines(120, seed=13)


@pytest.fixture(scope="module")
def pair(reversal_run) -> list[Path]:
    """Two different models over the same vocabularies: the run's best and an earlier one."""
    return [reversal_run / "best.pt", checkpoint.step_path(reversal_run, 100)]


def _outputs(translator, lines, beam: int, batch_size: int, window: int = 2000) -> list:
    opts = SearchOptions(beam=beam, n_best=min(beam, 2))
    return [
        [(text, score) for text, _, score, _ in t.hyps]
        for t in translate_stream(translator, lines, None, opts, batch_size, window=window)
    ]


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_an_ensemble_of_one_is_the_model_alone(reversal_run, probe, precision):
    translator = load_translator(reversal_run, torch.device("cpu"), precision)
    batch = [translator.prepare(line)[1] for line in probe]
    decoder, enc = translator.encode(batch, "rev")
    alone_pair, one_pair = (decoder, enc), (Ensemble([decoder]), Joint((enc,)))
    max_lengths = torch.tensor([len(ids) * 2 + 5 for ids in batch])
    runs = []
    for dec, encoded in (alone_pair, one_pair):
        runs.append(
            [
                search.greedy(dec, encoded, max_lengths, return_attention=True),
                search.beam_search(dec, encoded, 4, max_lengths, 1.0, 2, True),
            ]
        )
    for alone, one in zip(*runs, strict=True):
        assert alone.tokens == one.tokens and alone.scores == one.scores
        assert all(
            torch.equal(a, b)
            for rows in zip(alone.attention, one.attention, strict=True)
            for a, b in zip(*rows, strict=True)
        )
    assert len({tuple(hyps[0]) for hyps in runs[0][0].tokens}) > 50  # not a trivial pass


@pytest.mark.parametrize("precision", ["auto", "fp32"])
def test_an_ensemble_is_batch_invariant_and_differs_from_its_members(pair, probe, precision):
    ensemble = load_translator(pair, torch.device("cpu"), precision)
    alone = _outputs(ensemble, probe, beam=5, batch_size=1)
    assert _outputs(ensemble, probe, beam=5, batch_size=7) == alone
    assert _outputs(ensemble, probe, beam=5, batch_size=64, window=37) == alone
    assert _outputs(ensemble, probe, beam=1, batch_size=64) == _outputs(ensemble, probe, 1, 1)
    for member in pair:
        single = _outputs(load_translator(member, torch.device("cpu"), precision), probe, 5, 64)
        assert single != alone


def test_ensemble_from_the_command_line_with_n_best_and_attention(
    runner, tmp_path, pair, reversal_run, probe
):
    source = tmp_path / "in.txt"
    source.write_text("".join(line + "\n" for line in probe[:20]))
    twice = ["-m", str(reversal_run), "-m", str(reversal_run)]
    for models, out in ((twice, "twice.txt"), (["-m", str(reversal_run)], "once.txt")):
        done = runner.invoke(
            app,
            [
                "translate",
                *models,
                "-i",
                str(source),
                "-o",
                str(tmp_path / out),
                "--n-best",
                "2",
                "--precision",
                "fp32",
            ],
        )
        assert done.exit_code == 0, done.output

    # Two copies of a model average to the model: the same texts (scores may round apart).
    def parse(name: str) -> list[list[str]]:
        return [line.split(" ||| ") for line in (tmp_path / name).read_text().splitlines()]

    once, twice_out = parse("once.txt"), parse("twice.txt")
    assert [row[:2] for row in once] == [row[:2] for row in twice_out] and len(once) == 40
    assert [float(r[2]) for r in once] == pytest.approx([float(r[2]) for r in twice_out], abs=2e-4)
    dump = tmp_path / "attn.json"
    done = runner.invoke(
        app,
        [
            "translate",
            "-m",
            str(pair[0]),
            "-m",
            str(pair[1]),
            "-i",
            str(source),
            "-o",
            str(tmp_path / "ens.txt"),
            "--n-best",
            "2",
            "--attention-json",
            str(dump),
            "--attention-lines",
            "3",
        ],
    )
    assert done.exit_code == 0, done.output
    assert len((tmp_path / "ens.txt").read_text().splitlines()) == 40
    records = json.loads(dump.read_text())
    assert [r["line"] for r in records] == [1, 2, 3]
    for record in records:  # the mean of the models' attention: each row still sums to 1
        for row in record["weights"]:
            assert sum(row) == pytest.approx(1.0, abs=1e-4)


def _with_meta(source: Path, out: Path, name: str) -> Path:
    """A copy of the checkpoint `source` whose meta file `name` (a vocabulary) has its last two
    tokens swapped: the same sizes, other ids."""
    state = checkpoint.load(source, keys=checkpoint.INFERENCE_KEYS)
    lines = state["meta"][name].numpy().tobytes().decode().splitlines(keepends=True)
    lines[-2:] = lines[-1:] + lines[-2:-1]
    state["meta"][name] = torch.frombuffer(bytearray("".join(lines).encode()), dtype=torch.uint8)
    payload = {k: v for k, v in state.items() if k not in ("format", "version", "digest")}
    checkpoint.save(out, payload)
    return out


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("vocab.rev.txt", "their target vocabularies \\(rev\\) differ"),
        ("vocab.src.txt", "their source tokenizers or vocabularies differ"),
    ],
)
def test_models_with_other_vocabularies_are_refused_naming_both(
    runner, tmp_path, pair, meta, message
):
    other = _with_meta(pair[1], tmp_path / "other.pt", meta)
    load_translator(other, torch.device("cpu"))  # a model in its own right
    with pytest.raises(
        ConfigError, match=f"{pair[0]} and {other} cannot form an ensemble: {message}"
    ):
        load_translator([pair[0], other], torch.device("cpu"))
    source = tmp_path / "in.txt"
    source.write_text("a b\n")
    done = runner.invoke(
        app, ["translate", "-m", str(pair[0]), "-m", str(other), "-i", str(source)]
    )
    assert done.exit_code == 3 and str(other) in done.stderr and done.stdout == ""
