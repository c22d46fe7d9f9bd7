"""torchrun with the gloo backend on the CPU: one update of 2 processes x batch B equals one
update of a single process with batch 2B; checkpoints keep every rank's RNG and sampler states,
so a stopped and resumed 2-process run is exact."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nmt import checkpoint
from nmt.data import BucketSampler

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


def _bundle(tmp_path: Path, pairs: int) -> None:
    from nmt.bundle import PreprocessOptions, build

    write_reversal(tmp_path / "train", pairs, seed=3)
    write_reversal(tmp_path / "valid", 4, seed=4)
    build(PreprocessOptions(src="sym", tgt=("rev",), out=tmp_path / "bundle",
                            train=str(tmp_path / "train"), valid=str(tmp_path / "valid"),
                            tokenizer="word"))


def test_two_processes_equal_one_with_double_batch(tmp_path):
    _bundle(tmp_path, 16)  # 16 pairs: one batch of 16 = two of 8
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


@pytest.fixture(scope="module")
def stopped_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A 2-process run with dropout stopped by max-steps after its step-2 checkpoint (and the
    options it ran with)."""
    root = tmp_path_factory.mktemp("pair")
    _bundle(root, 32)  # batches of 4: each rank takes 4 of the epoch's 8
    options = ["--data", str(root / "bundle"), "--emb-size", "16", "--hidden-size", "32",
               "--dropout", "0.3", "--batch-size", "4", "--valid-every", "2", "--lr", "0.01",
               "--device", "cpu", "--precision", "fp32", "--threads", "1"]
    _train([*options, "--out", str(root / "run"), "--max-steps", "2"], 2, root)
    assert [step for step, _ in checkpoint.step_checkpoints(root / "run")] == [2]
    return root / "run", options


def _resume(stopped: Path, run: Path, nproc: int) -> dict:
    """Resume a copy of `stopped` to step 4 in new processes: only the checkpoint carries over."""
    shutil.copytree(stopped, run)
    _train(["--resume", str(run), "--max-steps", "4"], nproc, run.parent)
    return checkpoint.load(checkpoint.step_path(run, 4))


def test_two_processes_stopped_and_resumed_equal_uninterrupted(stopped_pair, tmp_path):
    """Dropout draws differ per rank (batches of different shapes), so each rank must get its
    own RNG state back: rank 0's given to both ranks would change rank 1's masks."""
    stopped, options = stopped_pair
    _train([*options, "--out", str(tmp_path / "straight"), "--max-steps", "4"], 2, tmp_path)
    straight = checkpoint.load(checkpoint.step_path(tmp_path / "straight", 4))
    resumed = _resume(stopped, tmp_path / "resumed", 2)
    for key, value in straight["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    # The ranks' generators had advanced differently: the test exercises per-rank states.
    rng = [rank["rng"]["torch"] for rank in straight["ranks"]]
    assert len(rng) == 2 and not torch.equal(rng[0], rng[1])


def test_one_process_resumes_a_two_process_checkpoint(stopped_pair, tmp_path):
    """Another world size: fresh random states from the seed (the same on every try), and the
    data goes on after the 2 x 2 batches the two ranks had taken."""
    stopped, _ = stopped_pair
    first = _resume(stopped, tmp_path / "first", 1)
    again = _resume(stopped, tmp_path / "again", 1)
    for key, value in first["model"].items():
        assert torch.equal(again["model"][key], value), key
    assert len(first["ranks"]) == 1
    assert first["ranks"][0]["samplers"]["rev"] == {"epoch": 0, "position": 6, "world": 1}


def test_single_process_checkpoint_of_the_older_format_resumes_exactly(tmp_path):
    """Checkpoints written before per-rank states kept "rng" and "samplers" at the top level."""
    from nmt.config import resolve
    from nmt.train import train

    _bundle(tmp_path, 32)
    settings = {"data": str(tmp_path / "bundle"), "emb-size": 16, "hidden-size": 32,
                "dropout": 0.3, "batch-size": 4, "valid-every": 2, "lr": 0.01, "device": "cpu",
                "precision": "fp32", "threads": 1}
    train(tmp_path / "new", *resolve({**settings, "max-steps": 2}))
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    path = checkpoint.step_path(tmp_path / "old", 2)
    state = checkpoint.load(path)
    own = state.pop("ranks")[0]
    state["rng"] = own["rng"]
    state["samplers"] = {t: {"epoch": s["epoch"], "position": s["position"]}
                         for t, s in own["samplers"].items()}
    checkpoint.save(path, state)
    for run in ("new", "old"):
        train(tmp_path / run, *resolve({**settings, "max-steps": 4}), resume=True)
    new, old = (checkpoint.load(checkpoint.step_path(tmp_path / run, 4)) for run in ("new", "old"))
    for key, value in new["model"].items():
        assert torch.equal(old["model"][key], value), key


def test_sampler_state_carries_over_another_world_size():
    """Resumed under another world size, the ranks go on after every batch taken before (the
    round-up skips fewer than world) and take none twice."""
    lengths = np.arange(1, 25) % 7 + 1

    def sampler(rank: int, world: int) -> BucketSampler:
        return BucketSampler(lengths, lengths, 2, 0, seed=5, rank=rank, world=world)

    whole = iter(sampler(0, 1))
    plan = [next(whole).tolist() for _ in range(10)]  # epoch 0's batches, shared by all ranks
    pair = [sampler(rank, 2) for rank in (0, 1)]
    for rank, ranked in enumerate(pair):
        batches = iter(ranked)
        assert [next(batches).tolist() for _ in range(2)] == plan[rank : 4 : 2]
    single = sampler(0, 1)
    single.load_state_dict(pair[1].state_dict())
    assert next(iter(single)).tolist() == plan[4]

    batches = iter(single)
    for _ in range(2):
        next(batches)  # plan[5], plan[6]: 7 batches taken
    for rank in (0, 1):
        resumed = sampler(rank, 2)
        resumed.load_state_dict(single.state_dict())
        assert next(iter(resumed)).tolist() == plan[8 + rank]  # plan[7] skipped, none repeated
