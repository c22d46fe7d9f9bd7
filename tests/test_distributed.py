"""torchrun with the gloo backend on the CPU: one update of 2 processes x batch B equals one
update of a single process with batch 2B."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from nmt import checkpoint

from conftest import write_reversal


def _train(args: list[str], nproc: int, cwd) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "nmt_cli.main"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "nmt_cli.main"]
    done = subprocess.run([*cmd, "-q", "train", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_equal_one_with_double_batch(tmp_path):
    from nmt.bundle import PreprocessOptions, build

    write_reversal(tmp_path / "train", 16, seed=3)  # 16 pairs: one batch of 16 = two of 8
    write_reversal(tmp_path / "valid", 4, seed=4)
    build(PreprocessOptions(src="sym", tgt=("rev",), out=tmp_path / "bundle",
                            train=str(tmp_path / "train"), valid=str(tmp_path / "valid"),
                            tokenizer="word"))
    # fp32: bf16 rounding differs with the batch shape.
    common = ["--data", str(tmp_path / "bundle"), "--emb-size", "16", "--hidden-size", "32",
              "--dropout", "0", "--max-steps", "1", "--valid-every", "1", "--lr", "0.01",
              "--device", "cpu", "--precision", "fp32"]
    _train([*common, "--out", str(tmp_path / "single"), "--batch-size", "16"], 1, tmp_path)
    _train([*common, "--out", str(tmp_path / "ddp"), "--batch-size", "8"], 2, tmp_path)
    single = checkpoint.load(checkpoint.step_path(tmp_path / "single", 1))["model"]
    ddp = checkpoint.load(checkpoint.step_path(tmp_path / "ddp", 1))["model"]
    # Adam's first step is lr * g / (|g| + eps): where a gradient element is near eps, the
    # rounding of different kernel shapes (batch 8 against 16) moves it by up to ~1e-6 at lr 0.01;
    # a wrong reduction would move it by about lr.
    for key, value in single.items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-5, atol=1e-5, msg=key)
    # The update did something: the comparison is not between two untouched models.
    moments = checkpoint.load(checkpoint.step_path(tmp_path / "single", 1))["optimizer"]["state"]
    assert any(float(state["exp_avg"].abs().sum()) > 0 for state in moments.values())
