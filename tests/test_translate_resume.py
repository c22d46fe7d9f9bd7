"""`nmt translate -o`: killed, resumed and refused writes lose nothing and shift nothing; `nmt
evaluate -m` translates exactly as `nmt translate` does."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nmt.textio import ResumableOutput
from nmt_cli.main import app

from conftest import write_reversal

ENTRY = "from nmt_cli.main import run; run()"


def _command(run: Path, source: Path, out: Path, *options: str) -> list[str]:
    return [sys.executable, "-c", ENTRY, "-q", "translate", "-m", str(run), "-i", str(source),
            "-o", str(out), "--threads", "1", *options]


def test_resume_cuts_a_partial_n_best_group(tmp_path):
    out = tmp_path / "out.txt"
    lines = [f"{i // 3} ||| hyp {i} ||| -1.0\n" for i in range(10)]  # 3 groups and one line
    (tmp_path / "out.txt.partial").write_text("".join(lines) + "0 ||| half a li")
    sink = ResumableOutput(out, resume=True, group=3)
    assert sink.done == 3
    sink.write_line("next")
    sink.commit()
    assert out.read_text() == "".join(lines[:9]) + "next\n"


def test_n_best_resume_after_a_cut_inside_a_group(runner, tmp_path, reversal_run):
    source = tmp_path / "in.txt"
    write_reversal(tmp_path / "probe", 12, seed=5)
    source.write_bytes((tmp_path / "probe.sym").read_bytes())
    options = ["-m", str(reversal_run), "-i", str(source), "--n-best", "3"]
    full = tmp_path / "full.txt"
    assert runner.invoke(app, ["translate", *options, "-o", str(full)]).exit_code == 0
    expected = full.read_text().splitlines(keepends=True)
    assert len(expected) == 36
    out = tmp_path / "out.txt"
    (tmp_path / "out.txt.partial").write_text("".join(expected[:10]) + expected[10][:5])
    done = runner.invoke(app, ["translate", *options, "-o", str(out), "--resume"])
    assert done.exit_code == 0, done.output
    assert out.read_text() == full.read_text()


@pytest.fixture(scope="module")
def long_input(tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("long") / "long"
    write_reversal(prefix, 400, seed=9)
    return Path(f"{prefix}.sym")


def _kill_once_written(command: list[str], partial: Path) -> None:
    """Start `command`; SIGKILL it as soon as its partial output holds something (a window's
    lines reach the disk when the window is done, while the next one is being translated)."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 0):
        assert proc.poll() is None, f"finished before the kill: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("n_best", ["1", "3"])
def test_killed_mid_file_then_resumed_equals_an_uninterrupted_run(tmp_path, reversal_run,
                                                                  long_input, n_best):
    """Default decoding; a window of 100 lines so that the 400 lines take four windows."""
    options = ["--n-best", n_best, "--window", "100"]
    full = tmp_path / "full.txt"
    done = subprocess.run(_command(reversal_run, long_input, full, *options),
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out.txt"
    partial = tmp_path / "out.txt.partial"
    _kill_once_written(_command(reversal_run, long_input, out, *options), partial)
    assert not out.exists()
    assert 0 < partial.stat().st_size < full.stat().st_size
    done = subprocess.run(_command(reversal_run, long_input, out, *options, "--resume"),
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == full.read_bytes()
    assert not partial.exists()


def _limit_file_size(size: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))


def test_a_refused_write_keeps_the_old_output_and_resumes(tmp_path, reversal_run):
    source = tmp_path / "in.txt"
    write_reversal(tmp_path / "probe", 400, seed=6)
    source.write_bytes((tmp_path / "probe.sym").read_bytes())
    out = tmp_path / "out.txt"
    out.write_text("an older output\n")
    command = _command(reversal_run, source, out, "--beam", "1", "--window", "50")
    # The file system refuses the output past 1,000 bytes (a full disk, as far as we can tell).
    done = subprocess.run(command, capture_output=True, timeout=300,
                          preexec_fn=_limit_file_size(1000))
    assert done.returncode == 5
    message = done.stderr.decode().strip()
    assert len(message.splitlines()) == 1 and "File too large" in message, message
    assert "out.txt" in message and "Traceback" not in message
    assert out.read_text() == "an older output\n"
    out.unlink()
    done = subprocess.run([*command, "--resume"], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    full = tmp_path / "full.txt"
    assert subprocess.run(_command(reversal_run, source, full, "--beam", "1"),
                          capture_output=True, timeout=300).returncode == 0
    assert out.read_bytes() == full.read_bytes()


@pytest.mark.parametrize("options", [[], ["--beam", "2", "--precision", "fp32",
                                          "--batch-size", "3", "--alpha", "0.5"],
                                     ["-m", "ENSEMBLE", "--sample", "--temperature", "0.1"]])
def test_evaluate_model_scores_what_translate_writes(runner, tmp_path, reversal_run, options):
    # An ensemble with the run's checkpoint of step 100 (the same vocabularies).
    options = [str(reversal_run / "ckpt-00000100.pt") if o == "ENSEMBLE" else o for o in options]
    write_reversal(tmp_path / "probe", 60, seed=8)
    source, ref = tmp_path / "probe.sym", tmp_path / "probe.rev"
    hyp = tmp_path / "hyp.txt"
    done = runner.invoke(app, ["translate", "-m", str(reversal_run), "-i", str(source),
                               "-o", str(hyp), *options])
    assert done.exit_code == 0, done.output
    scored = runner.invoke(app, ["evaluate", "--hyp", str(hyp), "--ref", str(ref), "--json"])
    direct = runner.invoke(app, ["evaluate", "-m", str(reversal_run), "--src", str(source),
                                 "--ref", str(ref), "--json", *options])
    assert scored.exit_code == 0 and direct.exit_code == 0, direct.output
    assert json.loads(direct.stdout) == json.loads(scored.stdout)
    # A real translation was scored: the partly trained model gives 4-9 BLEU, an empty file 0.
    assert json.loads(scored.stdout)["BLEU"]["score"] > 1
