"""Damaged inputs and failed writes through the CLI: each is one line on stderr naming the file,
with its exit code (2 data, 4 checkpoint, 5 system), never a traceback or a silent wrong result."""

from __future__ import annotations

import json
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch

from nmt import checkpoint
from nmt.bundle import PreprocessOptions, build, open_bundle
from nmt_cli.main import app

_RUN = "from nmt_cli.main import run; run()"


def _fails(result, code: int, *fragments: str) -> None:
    """A CliRunner result: exit `code`, one error line holding every fragment, no traceback."""
    assert result.exit_code == code, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def _nmt(*args: str, fsize: int | None = None, input: bytes = b"") -> subprocess.CompletedProcess:
    """`nmt ARGS` in a subprocess; `fsize` limits the size of files it may write (ulimit -f)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-c", _RUN, *args], input=input, capture_output=True,
                          timeout=120, preexec_fn=None if fsize is None else limit)


# ---- checkpoints -------------------------------------------------------------------------------


@pytest.fixture
def model(reversal_run: Path, tmp_path: Path) -> Path:
    """A copy of the trained reversal model's best checkpoint, to damage."""
    path = tmp_path / "best.pt"
    shutil.copy(reversal_run / "best.pt", path)
    return path


def _translate(runner, model: Path):
    return runner.invoke(app, ["translate", "-m", str(model), "--beam", "1"], input="a b c\n")


def _resave(path: Path, edit) -> None:
    """Rewrite the checkpoint consistently (a fresh digest) after `edit(state)`: what another
    version of nmt could have written."""
    state = torch.load(path, weights_only=True)
    for key in ("format", "version", "digest"):
        state.pop(key)
    edit(state)
    checkpoint.save(path, state)


def _record_offset(path: Path, data: bytes) -> int:
    """Where the zip record holding exactly `data` starts in the file."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if archive.read(i) == data)
    with open(path, "rb") as handle:
        handle.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", handle.read(4))
    return info.header_offset + 30 + name_length + extra_length


def test_intact_checkpoint_translates(runner, model):
    result = _translate(runner, model)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_truncated_checkpoint(runner, model):
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    _fails(_translate(runner, model), 4, str(model), "not a readable checkpoint")


def test_bit_flip_in_the_weights(runner, model):
    weights = torch.load(model, weights_only=True)["model"]
    name, largest = max(weights.items(), key=lambda item: item[1].numel())
    offset = _record_offset(model, largest.numpy().tobytes()) + largest.numel() * 2
    data = bytearray(model.read_bytes())
    data[offset] ^= 0x04
    model.write_bytes(data)
    # torch.load itself takes the flipped weights without a word: the digest is the guard.
    assert not torch.equal(torch.load(model, weights_only=True, mmap=True)["model"][name], largest)
    _fails(_translate(runner, model), 4, str(model), "damaged checkpoint")


def test_newer_checkpoint_version(runner, model):
    state = torch.load(model, weights_only=True)
    state["version"] = checkpoint.VERSION + 1
    torch.save(state, model)
    _fails(_translate(runner, model), 4, str(model), "newer than this nmt reads")


def test_checkpoint_without_meta_files(runner, model):
    _resave(model, lambda state: state.pop("meta"))
    _fails(_translate(runner, model), 4, str(model), "incomplete checkpoint (no meta)")


def test_checkpoint_with_a_setting_from_another_version(runner, model):
    _resave(model, lambda state: state["model_config"].update({"future_setting": 1}))
    _fails(_translate(runner, model), 4, str(model), "unknown setting 'future_setting'")


def test_checkpoint_missing_a_vocabulary(runner, model):
    _resave(model, lambda state: state["meta"].pop("vocab.rev.txt"))
    _fails(_translate(runner, model), 4, str(model), "meta/vocab.rev.txt: missing")


# ---- loading a model writes nothing ----------------------------------------------------------


def test_resume_from_a_checkpoint_without_optimizer_state(runner, reversal_run, tmp_path):
    """A checkpoint that translates (an averaged one, say) but cannot resume training."""
    run = tmp_path / "run"
    shutil.copytree(reversal_run, run)
    last = checkpoint.step_checkpoints(run)[-1][1]
    _resave(last, lambda state: state.pop("optimizer"))
    result = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "200"])
    _fails(result, 4, str(last), "incomplete checkpoint (no optimizer)")


def test_a_run_begun_before_a_model_setting_existed_resumes(runner, reversal_run, tmp_path):
    """A checkpoint written before `conditional` (or any later model setting) existed resumes:
    the missing setting takes its default; a setting that differs is still refused."""
    run = tmp_path / "run"
    shutil.copytree(reversal_run, run)
    last = checkpoint.step_checkpoints(run)[-1][1]
    _resave(last, lambda state: state["model_config"].pop("conditional"))
    result = runner.invoke(app, ["-q", "train", "--resume", str(run), "--max-steps", "160"])
    assert result.exit_code == 0, result.stderr
    assert checkpoint.step_checkpoints(run)[-1][0] == 160
    _resave(checkpoint.step_checkpoints(run)[-1][1],
            lambda state: state["model_config"].update(conditional=True))
    result = runner.invoke(app, ["train", "--resume", str(run), "--max-steps", "170"])
    assert result.exit_code != 0 and "model settings differ" in result.stderr


def test_translation_writes_no_file(runner, model):
    """Under `ulimit -f 0` translation to stdout still works; to a file it is one line, exit 5."""
    lines = "a b c\nd e f g\n"
    free = runner.invoke(app, ["translate", "-m", str(model), "--beam", "1"], input=lines)
    limited = _nmt("translate", "-m", str(model), "--beam", "1", input=lines.encode(), fsize=0)
    assert limited.returncode == 0, limited.stderr.decode()
    assert limited.stdout.decode() == free.stdout and len(free.stdout.splitlines()) == 2
    out = model.parent / "out.txt"
    failed = _nmt("translate", "-m", str(model), "-o", str(out), input=b"a b c\n", fsize=0)
    assert failed.returncode == 5
    stderr = failed.stderr.decode()
    assert "Traceback" not in stderr and "File too large" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_translation_needs_no_writable_temp_dir(runner, model, monkeypatch):
    # A file where the temporary directory should be: nothing can be created there, even by root
    # (for whom a read-only directory is still writable).
    blocked = model.parent / "tmp"
    blocked.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(blocked))
    with pytest.raises(OSError):
        tempfile.mkdtemp()
    result = _translate(runner, model)
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1


# ---- bundles -----------------------------------------------------------------------------------


@pytest.fixture
def bundle(tmp_path: Path, tiny) -> Path:
    out = tmp_path / "bundle"
    build(PreprocessOptions(src="en", tgt=("de",), out=out, train=tiny["train"],
                            valid=tiny["valid"], tokenizer="word"))
    return out


def _train(runner, bundle: Path):
    """Opening the bundle is the first thing training does."""
    return runner.invoke(app, ["train", "--data", str(bundle), "--out", str(bundle.parent / "run"),
                               "--max-steps", "1", "--threads", "1"])


def _edit_manifest(bundle: Path, edit) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    edit(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_manifest_not_json(runner, bundle):
    path = bundle / "manifest.json"
    path.write_bytes(path.read_bytes()[:100])
    _fails(_train(runner, bundle), 2, str(path), "not valid JSON")


def test_manifest_missing_an_entry(runner, bundle):
    _edit_manifest(bundle, lambda manifest: manifest.pop("vocab"))
    _fails(_train(runner, bundle), 2, str(bundle / "manifest.json"), "no entry 'vocab'")


def test_manifest_of_a_newer_format(runner, bundle):
    _edit_manifest(bundle, lambda manifest: manifest.update(format_version=99))
    _fails(_train(runner, bundle), 2, str(bundle / "manifest.json"), "bundle format 99")


def test_manifest_names_a_file_it_does_not_list(runner, bundle):
    def rename(manifest):
        manifest["splits"]["train"]["files"]["src"]["ids"] = "other.npy"

    _edit_manifest(bundle, rename)
    _fails(_train(runner, bundle), 2, str(bundle / "other.npy"), "not listed")


@pytest.mark.parametrize("name", ["train.src.ids.npy", "vocab.src.txt"])
def test_missing_file(runner, bundle, name):
    (bundle / name).unlink()
    _fails(_train(runner, bundle), 2, str(bundle / name), "missing")


def test_missing_sentencepiece_model(runner, tmp_path, tiny):
    out = tmp_path / "subword"
    build(PreprocessOptions(src="en", tgt=("de",), out=out, train=tiny["train"], vocab_size=60))
    (out / "spm.model").unlink()
    _fails(_train(runner, out), 2, str(out / "spm.model"), "missing")


def test_truncated_array(runner, bundle):
    path = bundle / "train.de.ids.npy"
    path.write_bytes(path.read_bytes()[:-4])
    _fails(_train(runner, bundle), 2, str(path), "bytes where manifest.json records")


def test_edited_array_header(runner, bundle):
    path = bundle / "train.de.offsets.npy"
    data = path.read_bytes()
    rows = len(open_bundle(bundle).target("train", "de").offsets)
    old = f"({rows},)".encode()
    assert old in data[:128]
    path.write_bytes(data.replace(old, f"({rows - 1},)".encode().ljust(len(old)), 1))
    _fails(_train(runner, bundle), 2, str(path), ".npy header says")


def test_verify_finds_a_flipped_bit_that_opening_does_not(runner, bundle):
    ok = runner.invoke(app, ["preprocess", "--verify", str(bundle)])
    assert ok.exit_code == 0 and ok.stdout.strip() == f"{bundle}: OK"
    path = bundle / "train.src.ids.npy"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(data)
    open_bundle(bundle)  # the cheap check sees sizes and headers only
    result = runner.invoke(app, ["preprocess", "--verify", str(bundle)])
    _fails(result, 2, str(bundle), "differs", "train.src.ids.npy (sha256)")
    assert result.stdout == ""


# ---- a failed write loses nothing ------------------------------------------------------------


def test_failed_rebuild_keeps_the_old_bundle(bundle, tiny):
    before = (bundle / "manifest.json").read_bytes()
    done = _nmt("preprocess", "--src", "en", "--tgt", "de", "--out", str(bundle), "--train",
                tiny["train"], "--tokenizer", "char", "--force", fsize=200)
    stderr = done.stderr.decode()
    assert done.returncode in (2, 5), stderr
    assert "Traceback" not in stderr and "File too large" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert (bundle / "manifest.json").read_bytes() == before
    assert open_bundle(bundle).manifest["tokenizer"]["src"]["type"] == "word"
    verify = _nmt("preprocess", "--verify", str(bundle))
    assert verify.returncode == 0 and b"OK" in verify.stdout
    assert sorted(p.name for p in bundle.parent.iterdir() if p.name.startswith(".")) == []
