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
                        {**_inference_payload(), "step": step,
                         "model": {"w": torch.full((2,), float(step)), "n": torch.tensor(step)}})
    checkpoint.prune(tmp_path, keep_last=2)
    kept = checkpoint.step_checkpoints(tmp_path)
    assert [s for s, _ in kept] == [3, 4]
    avg = checkpoint.average([p for _, p in kept])
    assert torch.allclose(avg["model"]["w"], torch.full((2,), 3.5))
    assert "optimizer" not in avg


def _inference_payload() -> dict:
    vocab = torch.frombuffer(bytearray(b"<pad>\t0\n<unk>\t0\n"), dtype=torch.uint8)
    return {
        "model_config": {"emb-size": 8, "cell": "lstm"},
        "train_config": {"data": "bundle", "lr": 0.001},
        "tasks": ("de",),
        "meta": {"vocab.txt": vocab},
        "model": {"w": torch.randn(64), "b": torch.ones(3, dtype=torch.bfloat16),
                  "n": torch.tensor(7)},
    }


def test_digest_is_stored_and_old_checkpoints_load_unchecked(tmp_path):
    payload = _inference_payload()
    path = tmp_path / "c.pt"
    checkpoint.save(path, payload)
    loaded = checkpoint.load(path, mmap=True, keys=checkpoint.INFERENCE_KEYS)
    assert loaded["digest"] == checkpoint.digest(payload) and loaded["digest"].startswith("crc32:")
    # Any digested entry changes it: weights, meta files, settings.
    for key, value in (("tasks", ("fr",)), ("model_config", {"emb-size": 9, "cell": "lstm"}),
                       ("meta", {"vocab.txt": torch.zeros(3, dtype=torch.uint8)})):
        assert checkpoint.digest({**payload, key: value}) != loaded["digest"], key
    old = tmp_path / "old.pt"
    torch.save({"format": checkpoint.FORMAT, "version": 1, **payload}, old)
    assert "digest" not in checkpoint.load(old, keys=checkpoint.INFERENCE_KEYS)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # a flip in the protocol byte
@pytest.mark.parametrize("mmap", [True, False])
def test_every_flipped_bit_is_refused_or_changes_nothing(tmp_path, mmap):
    """A bit flipped anywhere in the file: a CheckpointError, or a checkpoint whose weights,
    meta files and settings are those saved (torch.load alone takes flipped weights)."""
    payload = _inference_payload()
    path = tmp_path / "c.pt"
    checkpoint.save(path, payload)
    clean = path.read_bytes()
    refused = 0
    for position in range(0, len(clean), 5):
        data = bytearray(clean)
        data[position] ^= 1 << (position % 8)
        path.write_bytes(data)
        try:
            loaded = checkpoint.load(path, mmap=mmap)
        except CheckpointError:
            refused += 1
            continue
        assert checkpoint.digest(loaded) == checkpoint.digest(payload), position
    assert refused > len(clean) // 5 // 4  # the weights' 264 bytes alone are a fifth of the file


def test_missing_or_malformed_entries(tmp_path):
    payload = _inference_payload()
    path = tmp_path / "c.pt"
    checkpoint.save(path, {k: v for k, v in payload.items() if k != "meta"})
    checkpoint.load(path)  # the default asks only for the model
    with pytest.raises(CheckpointError, match=r"c\.pt: incomplete checkpoint \(no meta\)"):
        checkpoint.load(path, keys=checkpoint.INFERENCE_KEYS)
    checkpoint.save(path, {**payload, "model": [torch.zeros(1)]})
    with pytest.raises(CheckpointError, match="'model': not a dict of tensors"):
        checkpoint.load(path)
    torch.save({"format": checkpoint.FORMAT, "version": checkpoint.VERSION + 1, **payload}, path)
    with pytest.raises(CheckpointError, match="format version 2 is newer"):
        checkpoint.load(path)
