import pytest
import torch

from nmt import checkpoint
from nmt.errors import CheckpointError


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_CHECKPOINT",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT, "version": 1, "model": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        checkpoint.load(path)
    assert not (tmp_path / "PWNED_BY_CHECKPOINT").exists()
    # The same file really runs code when unpickled blindly: the guard is what protects.
    torch.load(path, weights_only=False)
    assert (tmp_path / "PWNED_BY_CHECKPOINT").exists()


def test_round_trip_and_atomic_save(tmp_path):
    path = tmp_path / "c.pt"
    payload = {"model": {"w": torch.arange(3.0)}, "step": 7, "rng": torch.get_rng_state()}
    checkpoint.save(path, payload)
    loaded = checkpoint.load(path)
    assert loaded["step"] == 7 and torch.equal(loaded["model"]["w"], torch.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError):
        checkpoint.load(junk)
    other = tmp_path / "other.pt"
    torch.save({"w": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="not an nmt checkpoint"):
        checkpoint.load(other)
    with pytest.raises(CheckpointError, match="no such"):
        checkpoint.load(tmp_path / "missing.pt")


def test_prune_and_average(tmp_path):
    for step in (1, 2, 3, 4):
        checkpoint.save(checkpoint.step_path(tmp_path, step),
                        {"model": {"w": torch.full((2,), float(step)), "n": torch.tensor(step)},
                         "model_config": {}, "step": step})
    checkpoint.prune(tmp_path, keep_last=2)
    kept = checkpoint.step_checkpoints(tmp_path)
    assert [s for s, _ in kept] == [3, 4]
    avg = checkpoint.average([p for _, p in kept])
    assert torch.allclose(avg["model"]["w"], torch.full((2,), 3.5))
    assert "optimizer" not in avg
