"""What `nmt train` shows: today's log lines off a terminal, a progress bar on one, and a one-line
summary at the end."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from nmt.config import TrainConfig
from nmt.runlog import read_metrics
from nmt_cli.main import app
from nmt_cli.train import _Display

from conftest import SMALL_TRAIN

SMALL = {**SMALL_TRAIN, "log-every": 25, "max-steps": 150, "valid-every": 75}
TRAIN_LINE = re.compile(
    r"step +\d+  epoch +\d+  loss \d+\.\d{3}  ppl +\d+\.\d\d  "
    r"lr \d\.\d\de[-+]\d\d  [\d,]+ tok/s"
)
SUMMARY = re.compile(
    r"finished at step 150 \(max_steps\) in \d+:\d\d:\d\d; "
    r"best bleu (\d+\.\d\d) at step (\d+): (.+)"
)


def _options(bundle: Path) -> list[str]:
    return [f"--{k}={v}" for k, v in {**SMALL, "data": bundle}.items()]


def _check_run(run: Path, summary: re.Match) -> None:
    """The summary names the best validation and best.pt; the loss fell."""
    records = read_metrics(run / "metrics.jsonl")
    best = [r for r in records if r["kind"] == "valid" and r["best"]][-1]
    assert summary.groups() == (f"{best['score']:.2f}", str(best["step"]), str(run / "best.pt"))
    assert json.loads((run / "done.json").read_text())["best_step"] == best["step"]
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert losses[-1] < 0.9 * losses[0], losses


def test_log_lines_and_summary_off_a_terminal(reversal_bundle, tmp_path, runner):
    """Off a terminal: a line per log interval (today's format), no bar, and the summary last,
    on one line however long the run directory's path."""
    run = tmp_path / ("a-long-directory-name-" * 4) / "run"
    result = runner.invoke(app, ["train", "--out", str(run), *_options(reversal_bundle)])
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert sum(bool(TRAIN_LINE.fullmatch(line)) for line in lines) == 6, lines
    assert "steps/s" not in result.stderr and "\x1b[" not in result.stderr
    summary = SUMMARY.fullmatch(lines[-1])
    assert summary, lines[-1]
    _check_run(run, summary)


def test_progress_bar_on_a_terminal(reversal_bundle, tmp_path):
    """With stderr a terminal (a pseudo-terminal): the bar with steps, rate, percentage and time
    left, the same log lines, and the summary; the model still learns."""
    run = tmp_path / "run"
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from nmt_cli.main import app; app()",
            "train",
            "--out",
            str(run),
            *_options(reversal_bundle),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "TERM": "xterm"},
    )
    os.close(terminal)
    chunks: list[bytes] = []

    def drain() -> None:  # the child blocks on a full terminal buffer: read as it writes
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    assert process.wait(timeout=300) == 0
    reader.join(timeout=30)
    os.close(controller)
    text = b"".join(chunks).decode(errors="replace").replace("\r", "\n")  # a terminal's CR LF
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # colours and cursor moves
    assert re.search(r"step 150/150  epoch 0\.\d\d  \d+\.\d\d steps/s  loss \d\.\d{3}", screen)
    assert "100%" in screen and " left" in screen
    assert sum(bool(TRAIN_LINE.search(line)) for line in screen.splitlines()) >= 6
    summary = SUMMARY.fullmatch(screen.strip().splitlines()[-1])  # last, under the bar
    assert summary, screen[-2000:]
    _check_run(run, summary)


def test_the_bar_goes_toward_the_nearer_end():
    """With --max-steps and --max-epochs, the bar's fraction is the larger of the two; with
    --max-epochs alone, epochs (with the current one's fraction) count."""
    console = Console(file=io.StringIO(), force_terminal=True)
    both = Progress(console=console, auto_refresh=False)
    display = _Display(TrainConfig(max_steps=1000, max_epochs=2), Path("run"), both)
    display({"kind": "step", "step": 100, "epochs": 1.5})
    assert both.tasks[0].completed == 0.75
    assert both.tasks[0].description.startswith("step 100/1000  epoch 1.50/2  ")
    display({"kind": "step", "step": 900, "epochs": 1.6})
    assert both.tasks[0].completed == 0.9

    epochs = Progress(console=console, auto_refresh=False)
    display = _Display(TrainConfig(max_epochs=4), Path("run"), epochs)
    display({"kind": "step", "step": 7, "epochs": 1.0})
    assert epochs.tasks[0].completed == 0.25 and epochs.tasks[0].total == 1.0
    unbounded = Progress(console=console, auto_refresh=False)
    _Display(TrainConfig(), Path("run"), unbounded)
    assert unbounded.tasks[0].total is None
