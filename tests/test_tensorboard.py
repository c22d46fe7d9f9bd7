"""`--tensorboard DIR`: the metrics log's train and valid records as TensorBoard scalars, and a
one-line error where the optional package is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nmt import checkpoint
from nmt.config import resolve
from nmt.errors import ConfigError
from nmt.runlog import read_metrics
from nmt.train import train
from nmt_cli.main import app

SMALL = {
    "emb-size": 16,
    "hidden-size": 32,
    "dropout": 0.0,
    "batch-size": 32,
    "threads": 1,
    "log-every": 5,
    "valid-every": 10,
    "max-steps": 20,
}


def test_without_the_package_the_option_is_one_clear_error(
    reversal_bundle, tmp_path, runner, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(reversal_bundle),
            "--out",
            str(run),
            "--tensorboard",
            str(tmp_path / "tb"),
        ],
    )
    assert result.exit_code == ConfigError.exit_code
    assert result.stderr.strip() == (
        "error: --tensorboard needs the tensorboard package: "
        "pip install 'nmt[tensorboard]' (or pip install tensorboard)"
    )
    assert not run.exists()  # it failed before any work


def test_training_imports_no_tensorboard_without_the_option():
    """The option's module is light; torch.utils.tensorboard loads only when the option is used."""
    code = (
        "import sys; from nmt_cli.main import app; import nmt_cli.train, nmt.train; "
        "print(any(m.startswith(('tensorboard', 'torch.utils.tensorboard')) "
        "for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_event_files_hold_the_metrics_log(reversal_bundle, tmp_path):
    """Every train and valid record of metrics.jsonl is in the event files, at its step; a run
    resumed from an earlier checkpoint rewrites the steps after it, each shown once."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, board = tmp_path / "run", tmp_path / "tb"
    settings = {**SMALL, "data": str(reversal_bundle), "tensorboard": str(board)}
    train(run, *resolve(settings))
    checkpoint.step_path(run, 20).unlink()  # as if killed before its last checkpoint
    train(run, *resolve(settings), resume=True)

    events = EventAccumulator(str(board))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "train/loss",
        "train/ppl",
        "train/lr",
        "train/tokens_per_s",
        "train/sents_per_s",
        "valid/score",
        "valid/rev/loss",
        "valid/rev/bleu",
        "valid/rev/chrf",
    } <= tags

    def steps_and_values(tag: str) -> tuple[list[int], list[float]]:
        found = events.Scalars(tag)
        return [e.step for e in found], [e.value for e in found]

    records = read_metrics(run / "metrics.jsonl")
    for tag, kind, value in (
        ("train/loss", "train", lambda r: r["loss"]),
        ("train/lr", "train", lambda r: r["lr"]),
        ("train/tokens_per_s", "train", lambda r: r["tokens_per_s"]),
        ("valid/rev/bleu", "valid", lambda r: r["rev"]["bleu"]),
    ):
        logged = [r for r in records if r["kind"] == kind]
        steps, values = steps_and_values(tag)
        assert steps == [r["step"] for r in logged], tag
        assert values == pytest.approx([value(r) for r in logged], rel=1e-6), tag
    assert steps_and_values("train/loss")[0] == [5, 10, 15, 20]
