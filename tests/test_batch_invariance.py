"""A sentence translates the same way whatever the batch or window around it: at the defaults and
at each precision a user can pick (fp32, int8, bf16 where the CPU has it natively)."""

from __future__ import annotations

import pytest
import torch

from nmt.translate import SearchOptions, load_translator, translate_stream

from conftest import NEEDS_BF16, symbol_lines

PRECISIONS = ["auto", "fp32", "int8", pytest.param("bf16", marks=NEEDS_BF16)]


@pytest.fixture(scope="module")
def probe() -> list[str]:
    """200 lines of 1-40 symbols: batches mix lengths (padding, rows of different scales) across
    the source blocks of translate.SOURCE_BLOCK."""
    return symbol_lines(200, seed=11)


def _outputs(translator, lines, beam: int, batch_size: int, window: int = 2000,
             max_output_len: int = 256) -> list:
    """Each line's hypotheses as (text, score): the bytes `nmt translate` writes come from them."""
    opts = SearchOptions(beam=beam, n_best=min(beam, 2), max_output_len=max_output_len)
    return [[(text, score) for text, _, score, _ in t.hyps]
            for t in translate_stream(translator, lines, None, opts, batch_size, window=window)]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_beam_search_is_the_same_at_batch_1_7_and_64(reversal_run, probe, precision):
    translator = load_translator(reversal_run, torch.device("cpu"), precision)
    alone = _outputs(translator, probe, beam=5, batch_size=1)
    assert _outputs(translator, probe, beam=5, batch_size=7) == alone
    assert _outputs(translator, probe, beam=5, batch_size=64, window=37) == alone
    # Not a trivial pass: the model gives different, scored outputs for different lines.
    assert len({hyps[0][0] for hyps in alone}) > 100


@pytest.mark.parametrize("precision", ["auto", "int8"])
def test_greedy_search_is_the_same_at_batch_1_7_and_64(reversal_run, probe, precision):
    translator = load_translator(reversal_run, torch.device("cpu"), precision)
    alone = _outputs(translator, probe, beam=1, batch_size=1)
    assert _outputs(translator, probe, beam=1, batch_size=7) == alone
    assert _outputs(translator, probe, beam=1, batch_size=64) == alone


def test_the_command_line_default_is_batch_invariant(runner, tmp_path, reversal_run, probe):
    """`nmt translate` with no precision option: byte-identical files at batch 1, 7 and 64, and
    a file holding the probe twice gives the same translations in both copies."""
    from nmt_cli.main import app

    source = tmp_path / "in.txt"
    source.write_text("\n".join(probe * 2) + "\n")
    outputs = []
    for batch in (1, 7, 64):
        out = tmp_path / f"out{batch}.txt"
        done = runner.invoke(app, ["translate", "-m", str(reversal_run), "-i", str(source),
                                   "-o", str(out), "--batch-size", str(batch)])
        assert done.exit_code == 0, done.output
        outputs.append(out.read_bytes())
    assert outputs[1] == outputs[0] and outputs[2] == outputs[0]
    lines = outputs[0].decode().splitlines()
    assert len(lines) == 2 * len(probe)
    assert lines[: len(probe)] == lines[len(probe):]


@pytest.fixture(scope="module")
def wide_run(reversal_bundle, tmp_path_factory):
    """A model of the reference model's widths, trained two steps: its multiplies have the row
    sizes (K = 512) at which the CPU's float32 kernels change with the number of rows."""
    from nmt.config import resolve
    from nmt.train import train

    run = tmp_path_factory.mktemp("runs") / "wide"
    model_cfg, train_cfg = resolve({
        "data": str(reversal_bundle), "emb-size": 256, "hidden-size": 512, "max-steps": 2,
        "valid-every": 2, "threads": 1, "batch-size": 8,
    })
    train(run, model_cfg, train_cfg)
    return run


@pytest.mark.parametrize("precision", PRECISIONS[1:])  # auto is int8 or fp32
def test_a_model_of_reference_width_is_batch_invariant(wide_run, probe, precision):
    torch.set_num_threads(2)  # as translate's default on this machine: kernels split work by it
    translator = load_translator(wide_run, torch.device("cpu"), precision)
    lines = probe[:40]
    # The barely trained model would decode up to the length limit: 12 steps are enough.
    alone = _outputs(translator, lines, beam=5, batch_size=1, max_output_len=12)
    assert _outputs(translator, lines, beam=5, batch_size=7, max_output_len=12) == alone
    assert _outputs(translator, lines, beam=5, batch_size=64, max_output_len=12) == alone
    assert len({hyps[0][1] for hyps in alone}) > 30  # scores differ from line to line
