"""`make stress`: kill `nmt train` with SIGKILL at random moments; each resumed run must end
bit-identical to a run never stopped.

A tiny model trains on the toy reversal task (60 updates, validation and a checkpoint every 10,
the last 2 kept, dropout on, so the RNG state matters). One run goes straight through. Then, for
each kill, a fresh run is killed at a moment drawn at random (killpoint.py): mid-batch,
mid-validation, mid-checkpoint-write, or between a checkpoint and its copy to best.pt. It is
rerun as a recipe would: `--resume` when it has a checkpoint, a fresh start when it has none. The
rerun must exit 0 with the straight run's last checkpoint and best.pt (every weight
bit-identical), the same metrics (kind, step, loss or score), the same kept checkpoints, its
done.json, and no temporary file left. Not a test (a few minutes on one core): run it by hand.

    python recipes/stress/kill_resume.py [--kills 20] [--seed 0] [--work DIR]
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from nmt import checkpoint, runlog

HERE = Path(__file__).resolve().parent
NMT = [sys.executable, "-m", "nmt_cli.main"]
KILLPOINT = [sys.executable, str(HERE / "killpoint.py")]
KINDS = ("batch", "validation", "write", "published")
STEPS, VALID_EVERY = 60, 10
SETTINGS = {"emb-size": 16, "hidden-size": 32, "dropout": 0.2, "lr": 0.003, "batch-size": 32,
            "threads": 1, "log-every": 5, "valid-every": VALID_EVERY, "max-steps": STEPS,
            "max-epochs": 0, "patience": 0, "keep-last": 2}


def make_bundle(work: Path) -> Path:
    data, bundle = work / "toy", work / "bundle"
    subprocess.run([sys.executable, str(HERE.parent / "toy" / "make_data.py"), str(data),
                    "--train", "3000"], check=True)
    subprocess.run([*NMT, "-q", "preprocess", "--src", "sym", "--tgt", "rev", "--train",
                    str(data / "train"), "--valid", str(data / "valid"), "--tokenizer", "word",
                    "--out", str(bundle), "--force"], check=True)
    return bundle


def train_command(run: Path, bundle: Path, settings: dict[str, object] = SETTINGS) -> list[str]:
    """The recipes' rule: resume a run that has a checkpoint, start afresh one that has none."""
    if checkpoint.step_checkpoints(run):
        return ["-q", "train", "--resume", str(run)]
    options = [f"--{key}={value}" for key, value in settings.items()]
    return ["-q", "train", "--out", str(run), "--data", str(bundle), *options]


def draw(rng: random.Random, kind: str, checkpoint_bytes: int, improved: list[int]) -> str:
    """A kill point: which update, validation or checkpoint, and how far into the write. A kill
    after a checkpoint is placed where best.pt was to be updated from it (`improved`)."""
    checks = STEPS // VALID_EVERY
    if kind == "batch":
        return f"batch:{rng.randint(1, STEPS)}"
    if kind == "write":
        return f"write:{rng.randint(1, checks)}:{rng.randint(1, checkpoint_bytes - 1)}"
    if kind == "published":
        return f"published:{rng.choice(improved)}"
    return f"validation:{rng.randint(1, checks)}"


def left_behind(run: Path) -> str:
    """What the kill left: the newest checkpoint, partial files, best.pt behind it."""
    found = checkpoint.step_checkpoints(run)
    partial = len(list(run.glob(".*.tmp")))
    text = f"last checkpoint {found[-1][0] if found else 'none'}, {partial} partial file(s)"
    best = run / runlog.BEST
    if found and checkpoint.load(found[-1][1]).get("best_step") == found[-1][0]:
        if not best.is_file() or checkpoint.load(best)["step"] != found[-1][0]:
            text += ", best.pt behind"
    return text


def metrics(run: Path) -> list[tuple]:
    return [(r["kind"], r["step"], r.get("loss"), r.get("score"))
            for r in runlog.read_metrics(run / runlog.METRICS)]


def differences(reference: Path, run: Path) -> list[str]:
    """Every way `run` falls short of the straight `reference` run (empty: identical)."""
    problems = []
    names = [p.name for _, p in checkpoint.step_checkpoints(reference)]
    if [p.name for _, p in checkpoint.step_checkpoints(run)] != names:
        problems.append("kept checkpoints differ")
    for name in (names[-1], runlog.BEST):
        if not (run / name).is_file():
            problems.append(f"no {name}")
            continue
        want, got = (checkpoint.load(d / name)["model"] for d in (reference, run))
        if want.keys() != got.keys() or not all(torch.equal(want[k], got[k]) for k in want):
            problems.append(f"{name}: weights differ")
    if metrics(run) != metrics(reference):
        problems.append("metrics.jsonl differs")
    if not (run / runlog.DONE).is_file():
        problems.append("no done.json")
    if list(run.glob(".*.tmp")):
        problems.append("temporary files left")
    return problems


def trial(number: int, kill: str, bundle: Path, reference: Path, work: Path) -> bool:
    run = work / f"run-{number:02d}"
    shutil.rmtree(run, ignore_errors=True)
    killed = subprocess.run([*KILLPOINT, kill, *train_command(run, bundle)],
                            stderr=subprocess.PIPE, text=True)
    if killed.returncode != -signal.SIGKILL:
        print(f"{number:2d} {kill:<18} not killed (exit {killed.returncode}): {killed.stderr}")
        return False
    left = left_behind(run)
    rerun = subprocess.run([*NMT, *train_command(run, bundle)], stderr=subprocess.PIPE, text=True)
    problems = ([f"rerun exit {rerun.returncode}: {rerun.stderr.strip()}"] if rerun.returncode
                else differences(reference, run))
    print(f"{number:2d} {kill:<18} {left} -> {'; '.join(problems) or 'identical'}", flush=True)
    return not problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="keep the runs here (default: a temporary dir)")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nmt-stress-") as scratch:
        work = args.work or Path(scratch)
        bundle = make_bundle(work)
        reference = work / "straight"
        shutil.rmtree(reference, ignore_errors=True)
        subprocess.run([*NMT, *train_command(reference, bundle)], check=True)
        size = checkpoint.step_checkpoints(reference)[-1][1].stat().st_size
        validations = [r for r in runlog.read_metrics(reference / runlog.METRICS)
                       if r["kind"] == "valid"]
        improved = [number for number, r in enumerate(validations, start=1) if r["best"]]
        rng = random.Random(args.seed)
        identical = sum(
            trial(i, draw(rng, KINDS[i % len(KINDS)], size, improved), bundle, reference, work)
            for i in range(1, args.kills + 1))
    print(f"{identical}/{args.kills} identical ({time.perf_counter() - started:.0f} s)")
    sys.exit(0 if identical == args.kills else 1)


if __name__ == "__main__":
    main()
