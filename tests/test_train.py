"""End-to-end training on tiny data: the toy reversal task is learned; resume is exact."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nmt import checkpoint
from nmt.config import resolve
from nmt.decoder import Decoder
from nmt.runlog import read_metrics
from nmt.train import train
from nmt.translate import SearchOptions, load_translator, translate_stream

from conftest import NEEDS_BF16, SMALL_TRAIN
from conftest import REVERSAL_SYMBOLS as SYMBOLS

SMALL = {**SMALL_TRAIN, "log-every": 10}


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=NEEDS_BF16)])
def test_toy_reversal_is_learned(reversal_bundle, tmp_path, precision):
    """Greedy decoding solves >= 95% of unseen reversal inputs after a short training, in float32
    and with bf16 autocast (on the CPU too)."""
    settings = {
        "precision": precision,
        **SMALL,
        "data": str(reversal_bundle),
        "hidden-size": 128,
        "emb-size": 64,
        "batch-size": 64,
        "threads": 2,
        "max-steps": 1200,
        "valid-every": 1200,
        "patience": 0,
    }
    model_cfg, train_cfg = resolve(settings)
    train(tmp_path / "run", model_cfg, train_cfg)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert losses[-1] < losses[0] / 10

    assert _reversed_exactly(tmp_path / "run", 200, seed=123) >= 0.95


def _reversed_exactly(run: Path, n: int, seed: int) -> float:
    """The share of n unseen seeded reversal inputs the run's model reverses exactly (greedy)."""
    translator = load_translator(run, torch.device("cpu"))
    rng = random.Random(seed)
    tests = [" ".join(rng.choice(SYMBOLS) for _ in range(rng.randint(5, 12))) for _ in range(n)]
    outputs = [t.text for t in translate_stream(translator, tests, None, SearchOptions(beam=1))]
    exact = sum(out == " ".join(reversed(src.split()))
                for src, out in zip(tests, outputs, strict=True))
    return exact / n


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(checkpoint.step_checkpoints(run)[-1][1])["model"]


def _nmt_train(args: list[str]) -> subprocess.Popen:
    code = "from nmt_cli.main import app; app()"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, "-q", "train", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_and_resume_gives_same_weights(reversal_bundle, tmp_path):
    options = [
        f"--{k}={v}"
        for k, v in {**SMALL, "max-steps": 60, "valid-every": 10, "data": reversal_bundle}.items()
    ]
    straight = _nmt_train(["--out", str(tmp_path / "a"), *options])
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    killed = _nmt_train(["--out", str(tmp_path / "b"), *options])
    deadline = time.time() + 120
    while not checkpoint.step_checkpoints(tmp_path / "b") and time.time() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    found = checkpoint.step_checkpoints(tmp_path / "b")
    assert found and found[-1][0] < 60, "the run must be killed before it finished"
    # The killed run leaves its lock file and no done.json; the kernel released the lock itself.
    assert (tmp_path / "b" / ".lock").is_file() and not (tmp_path / "b" / "done.json").exists()
    resumed = _nmt_train(["--resume", str(tmp_path / "b")])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert json.loads((tmp_path / "b" / "done.json").read_text())["step"] == 60

    a, b = _final_weights(tmp_path / "a"), _final_weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    records = [r for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if r["kind"] == "train"]
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps))  # the log was not doubled by the resume
    # The wall clock carries over the resume: time-to-quality curves stay monotonic.
    elapsed = [r["elapsed_s"] for r in records]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0


def test_resume_extends_a_finished_run(reversal_bundle, tmp_path):
    settings = {**SMALL, "data": str(reversal_bundle), "max-steps": 10, "valid-every": 10}
    model_cfg, train_cfg = resolve(settings)
    train(tmp_path / "run", model_cfg, train_cfg)
    model_cfg, train_cfg = resolve({**settings, "max-steps": 20})
    summary = train(tmp_path / "run", model_cfg, train_cfg, resume=True)
    assert summary["step"] == 20
    assert (tmp_path / "run" / "best.pt").is_file()


def test_pretrained_frozen_source_embeddings(reversal_bundle, tmp_path):
    """Vectors named by --src-embeddings are loaded for the tokens they cover and stay fixed."""
    from nmt.bundle import open_bundle

    vectors = tmp_path / "vectors.txt"
    vectors.write_text("a " + " ".join(["0.5"] * 8) + "\nb " + " ".join(["-0.25"] * 8) + "\n")
    settings = {**SMALL, "data": str(reversal_bundle), "emb-size": 8, "max-steps": 5,
                "valid-every": 5, "src-embeddings": str(vectors), "freeze-embeddings": True}
    train(tmp_path / "run", *resolve(settings))
    weights = _final_weights(tmp_path / "run")["encoder.embeddings.weight"]
    vocab = open_bundle(reversal_bundle).src_vocab
    assert torch.equal(weights[vocab.index("a")], torch.full((8,), 0.5))
    assert torch.equal(weights[vocab.index("b")], torch.full((8,), -0.25))


def test_scheduled_sampling_rises_over_the_run_and_learns_the_toy_task(reversal_bundle, tmp_path,
                                                                        monkeypatch):
    """--sampling-rate: the rate the decoder samples at and the logged one rise linearly to their
    value at the last update, and the model still learns the task (greedy: >= 95% of unseen
    inputs)."""
    seen = []
    sampled = Decoder._sampled

    def record(self, x_gates, read, rate):
        seen.append(rate)
        return sampled(self, x_gates, read, rate)

    monkeypatch.setattr(Decoder, "_sampled", record)
    settings = {**SMALL, "data": str(reversal_bundle), "hidden-size": 128, "emb-size": 64,
                "batch-size": 64, "sampling-rate": 0.5, "max-steps": 1000, "valid-every": 1000,
                "patience": 0}
    train(tmp_path / "run", *resolve(settings))
    records = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    rates = {r["step"]: r["sampling_rate"] for r in records}
    assert rates[500] == pytest.approx(0.5 * 499 / 1000) and rates[1000] == pytest.approx(0.4995)
    assert records[-1]["loss"] < records[0]["loss"] / 10
    assert 0 < min(seen) < 0.001 and max(seen) == pytest.approx(0.4995)  # none at update 1

    assert _reversed_exactly(tmp_path / "run", 100, seed=7) >= 0.95


def test_cosine_schedule_spans_max_epochs_and_learns_the_toy_task(reversal_bundle, tmp_path):
    """The cosine schedule's horizon is max-epochs of batches: the run ends at min-lr, on the
    update the epochs end, having learned the task."""
    settings = {**SMALL, "data": str(reversal_bundle), "schedule": "cosine", "min-lr": 1e-4,
                "max-epochs": 3, "valid-every": 1000, "patience": 0}
    summary = train(tmp_path / "run", *resolve(settings))
    updates = 3 * -(-6000 // 32)  # 6,000 pairs in batches of 32
    assert summary["step"] == updates and summary["stopped"] == "max_epochs"
    metrics = read_metrics(tmp_path / "run" / "metrics.jsonl")
    records = [r for r in metrics if r["kind"] == "train"]
    lr = {r["step"]: r["lr"] for r in records}
    # The rate logged at step s is the one update s ran at, set for s - 1 updates done.
    halfway = round(updates / 2 / 10) * 10
    cosine = 1e-4 + (0.003 - 1e-4) * (1 + math.cos(math.pi * (halfway - 1) / updates)) / 2
    assert lr[halfway] == pytest.approx(cosine)
    assert lr[updates] == pytest.approx(1e-4, rel=1e-3)
    assert records[-1]["loss"] < records[0]["loss"] / 5
    assert [r for r in metrics if r["kind"] == "valid"][-1]["score"] > 90
