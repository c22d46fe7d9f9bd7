"""Forced decoding (`nmt score`): the score of the model's own output is the score search gave
it; the output format; empty lines and files of different lengths."""

from __future__ import annotations

import json
import math

import pytest
import torch

from nmt import checkpoint
from nmt.errors import DataError
from nmt.score import read_pairs, score_pairs
from nmt.search import length_penalty
from nmt.translate import SearchOptions, load_translator, translate_stream
from nmt_cli.main import app

from conftest import symbol_lines


@pytest.fixture(scope="module")
def probe() -> list[str]:
    return symbol_lines(100, seed=21)


@pytest.mark.parametrize("precision", ["auto", "fp32"])
@pytest.mark.parametrize("ensemble", [False, True])
def test_the_score_of_search_output_is_the_score_search_reported(
    reversal_run, probe, precision, ensemble
):
    models = [reversal_run, checkpoint.step_path(reversal_run, 100)] if ensemble else reversal_run
    translator = load_translator(models, torch.device("cpu"), precision)
    greedy = list(translate_stream(translator, probe, None, SearchOptions(beam=1)))
    scored = list(
        score_pairs(
            translator, zip(probe, [t.text for t in greedy], strict=True), None, batch_size=9
        )
    )
    assert [s.total for s in scored] == [t.hyps[0][2] for t in greedy]  # exactly
    assert len({round(s.total, 3) for s in scored}) > 50  # not a trivial pass
    beam = list(translate_stream(translator, probe, None, SearchOptions(beam=4, alpha=0.6)))
    scored = list(
        score_pairs(translator, zip(probe, [t.text for t in beam], strict=True), None, alpha=0.6)
    )
    # Beam search steps K rows per sentence, whose sums over the source round by their count
    # (score.py): equal to rounding, which int8's rounding of inputs magnifies.
    tolerance = 1e-6 if precision == "fp32" else 1e-4
    assert [s.normalised for s in scored] == pytest.approx(
        [t.hyps[0][2] for t in beam], rel=tolerance
    )


def test_right_translations_score_above_wrong_ones(reversal_run, probe):
    translator = load_translator(reversal_run, torch.device("cpu"))
    right = [" ".join(line.split()[::-1]) for line in probe]
    wrong = [" ".join(sorted(line.split())) for line in probe]
    gain = [
        r.per_token - w.per_token
        for r, w in zip(
            score_pairs(translator, zip(probe, right, strict=True), None),
            score_pairs(translator, zip(probe, wrong, strict=True), None),
            strict=True,
        )
    ]
    assert sum(g > 0 for g in gain) > 0.8 * sum(g != 0 for g in gain)


def test_score_command_tsv_json_and_empty_lines(runner, tmp_path, reversal_run):
    src, tgt = tmp_path / "src.txt", tmp_path / "tgt.txt"
    src.write_text("a b c\n\nd e\nf\n")
    tgt.write_text("c b a\nx\n\nf g\n")
    base = ["score", "-m", str(reversal_run), "--src", str(src), "--tgt", str(tgt)]
    tsv = runner.invoke(app, [*base, "--alpha", "0.5"])
    assert tsv.exit_code == 0, tsv.output
    rows = [line.split("\t") for line in tsv.stdout.splitlines()]
    assert len(rows) == 4 and all(len(row) == 3 for row in rows)
    assert rows[1] == ["nan", "nan", "nan"]  # an empty source is not scored
    total, per_token, normalised = map(float, rows[0])
    assert per_token == pytest.approx(total / 4, abs=1e-6)  # 3 tokens and the EOS
    assert normalised == pytest.approx(total / length_penalty(4, 0.5), abs=1e-6)
    assert float(rows[2][1]) == float(rows[2][0])  # an empty target: the EOS alone
    records = [
        json.loads(line)
        for line in runner.invoke(app, [*base, "--json", "--alpha", "0.5"]).stdout.splitlines()
    ]
    assert [r["line"] for r in records] == [1, 2, 3, 4]
    assert records[1]["total"] is None and records[3]["tokens"] == 3
    assert math.isclose(records[0]["total"], total, abs_tol=1e-6)


def test_files_of_different_lengths_are_an_error_naming_the_shorter(runner, tmp_path, reversal_run):
    src, tgt = tmp_path / "src.txt", tmp_path / "tgt.txt"
    src.write_text("a\nb\nc\n")
    tgt.write_text("a\nb\n")
    with pytest.raises(DataError, match=f"{src}:3: {tgt} has only 2 lines"):
        list(read_pairs(src, tgt))
    done = runner.invoke(
        app, ["score", "-m", str(reversal_run), "--src", str(src), "--tgt", str(tgt)]
    )
    assert done.exit_code == 2 and f"{tgt} has only 2 lines" in done.stderr
