"""Training killed or failing anywhere loses nothing: two kill points of `make stress`
(recipes/stress), a checkpoint write that fails for lack of space, two writers on one run
directory, a torn metrics line, and a recipe rerun after an interruption."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt import checkpoint, runlog
from nmt.config import resolve
from nmt.train import train
from nmt_cli.main import app

from conftest import write_reversal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes" / "stress"))
from kill_resume import KILLPOINT, NMT, differences, train_command  # noqa: E402

# Validation loss, not BLEU, picks best.pt: it improves at every early validation.
SETTINGS = {"emb-size": 16, "hidden-size": 32, "dropout": 0.2, "lr": 0.003, "batch-size": 32,
            "threads": 1, "log-every": 5, "valid-every": 10, "max-steps": 30, "max-epochs": 0,
            "patience": 0, "keep-last": 2, "valid-metric": "loss"}


@pytest.fixture(scope="module")
def straight(reversal_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run never stopped."""
    run = tmp_path_factory.mktemp("straight") / "run"
    train(run, *resolve({**SETTINGS, "data": str(reversal_bundle)}))
    return run


def _killed(kill: str, run: Path, bundle: Path) -> None:
    done = subprocess.run([*KILLPOINT, kill, *train_command(run, bundle, SETTINGS)],
                          stderr=subprocess.PIPE, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr


def _resume(runner, run: Path, *options: str) -> None:
    result = runner.invoke(app, ["-q", "train", "--resume", str(run), *options])
    assert result.exit_code == 0, result.stderr


def test_kill_mid_checkpoint_write_then_resume_is_exact(reversal_bundle, straight, tmp_path,
                                                        runner):
    run = tmp_path / "run"
    size = checkpoint.step_checkpoints(straight)[-1][1].stat().st_size
    _killed(f"write:2:{size // 2}", run, reversal_bundle)
    assert [step for step, _ in checkpoint.step_checkpoints(run)] == [10]
    assert len(list(run.glob(".ckpt-00000020.pt.*.tmp"))) == 1  # half a checkpoint
    _resume(runner, run)
    assert differences(straight, run) == []  # weights, best.pt, metrics; the .tmp file is gone


def test_kill_before_best_copy_repairs_best_pt(reversal_bundle, straight, tmp_path, runner):
    run = tmp_path / "run"
    _killed("published:3", run, reversal_bundle)  # the last checkpoint is in place, best.pt not
    last = checkpoint.load(checkpoint.step_path(run, 30))
    assert last["best_step"] == 30 and checkpoint.load(run / runlog.BEST)["step"] == 20
    _resume(runner, run)  # nothing left to train: only the repair can update best.pt
    assert checkpoint.load(run / runlog.BEST)["step"] == 30
    assert differences(straight, run) == []


def test_failed_checkpoint_write_keeps_the_previous_one(reversal_bundle, straight, tmp_path,
                                                        runner):
    run = tmp_path / "run"
    train(run, *resolve({**SETTINGS, "data": str(reversal_bundle), "max-steps": 10}))
    kept = {path: path.read_bytes() for path in (checkpoint.step_path(run, 10), run / "best.pt")}
    limit = len(kept[run / "best.pt"]) // 2  # RLIMIT_FSIZE: as if the disk filled up

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    failed = subprocess.run([*NMT, "-q", "train", "--resume", str(run), "--max-steps", "20"],
                            preexec_fn=small_files, capture_output=True, text=True)
    assert failed.returncode == 5
    assert failed.stderr.strip().splitlines() == [
        f"error: {checkpoint.step_path(run, 20)}: File too large"]
    assert {path: path.read_bytes() for path in kept} == kept
    assert checkpoint.load(checkpoint.step_path(run, 10))["step"] == 10
    assert not list(run.glob(".*.tmp")) and not (run / runlog.DONE).exists()

    _resume(runner, run, "--max-steps", "20")
    want = checkpoint.load(checkpoint.step_path(straight, 20))["model"]
    got = checkpoint.load(checkpoint.step_path(run, 20))["model"]
    assert all(torch.equal(want[key], got[key]) for key in want)


def test_a_second_writer_is_refused(reversal_bundle, tmp_path, runner):
    run = tmp_path / "run"
    train(run, *resolve({**SETTINGS, "data": str(reversal_bundle), "max-steps": 10}))
    files = {path: path.read_bytes() for path in run.iterdir()}
    with runlog.claim(run):  # the first writer
        for command in (["--resume", str(run), "--max-steps", "20"],
                        ["--out", str(run), "--data", str(reversal_bundle)]):
            result = runner.invoke(app, ["train", *command])
            assert result.exit_code == 3
            assert result.stderr.strip().splitlines() == [
                f"error: {run} is in use by another nmt train (pid {os.getpid()}): "
                "wait for it to finish or stop it"]
        assert {path: path.read_bytes() for path in run.iterdir()} == files  # nothing changed
    _resume(runner, run, "--max-steps", "20")  # the lock file left behind blocks nothing
    assert json.loads((run / runlog.DONE).read_text())["step"] == 20


def test_resume_drops_a_torn_metrics_line(tmp_path):
    path = tmp_path / runlog.METRICS
    log = runlog.MetricsLog(path)
    for step in (5, 10, 15):
        log.write({"kind": "train", "step": step})
    with open(path, "a") as handle:
        handle.write('{"kind": "train", "st')  # a kill in the middle of a write
    log.truncate_after(10)
    assert [r["step"] for r in runlog.read_metrics(path)] == [5, 10]


def _write_gz_reversal(prefix: Path, n: int, seed: int, targets: tuple[str, ...] = ("de",)) -> None:
    """PREFIX.en.gz / PREFIX.X.gz for each target X: the reversal task under Multi30k's names."""
    write_reversal(prefix, n, seed)
    for plain, lang in (("sym", "en"), *(("rev", target) for target in targets)):
        with open(f"{prefix}.{plain}", "rb") as src, gzip.open(f"{prefix}.{lang}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)


def _recipe_inputs(tmp_path: Path, targets: tuple[str, ...] = ("de",)) -> list[str]:
    """Tiny Multi30k-named data and config under tmp_path: the recipe's make command line."""
    data, work = tmp_path / "data", tmp_path / "work"
    data.mkdir()
    for split, n, seed in (("train", 600, 0), ("val", 30, 1), ("test_2016_flickr", 30, 2)):
        _write_gz_reversal(data / split, n, seed, targets)
    config = tmp_path / "tiny.toml"
    config.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in SETTINGS.items()))
    return ["make", "-s", "-C", str(ROOT / "recipes" / "multi30k"), f"DATA={data}",
            f"CONFIG={config}", f"WORK={work}", f"RESULTS={tmp_path / 'results'}"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_recipe_rerun_after_kills_scores_a_finished_model(tmp_path):
    """The default recipe (two teachers, their ensemble's translations, a student on those after
    the original pairs), killed twice in its first training, then rerun: it resumes that
    teacher, finishes the rest and scores the finished student."""
    data, work = tmp_path / "data", tmp_path / "work"
    make = [*_recipe_inputs(tmp_path), "en-de"]
    nmt = str(Path(sys.executable).parent / "nmt")
    teacher, student = work / "teacher1-en-de", work / "student-mixed-en-de"

    def recipe(kill: str | None) -> subprocess.CompletedProcess:
        wrapper = f"{sys.executable} {ROOT / 'recipes/stress/killpoint.py'} {kill}" if kill else ""
        return subprocess.run([*make, f"NMT={wrapper or nmt}"], capture_output=True, text=True)

    assert recipe("batch:3").returncode != 0  # killed before its first checkpoint
    assert not checkpoint.step_checkpoints(teacher)
    assert recipe("validation:3").returncode != 0  # restarted; killed after best.pt appeared
    assert [s for s, _ in checkpoint.step_checkpoints(teacher)] == [10, 20]
    assert (teacher / runlog.BEST).is_file() and not (teacher / runlog.DONE).exists()
    assert not (work / "teacher2-en-de").exists() and not student.exists()

    finished = recipe(None)
    assert finished.returncode == 0, finished.stderr
    for run in (teacher, work / "teacher2-en-de", student):
        assert json.loads((run / runlog.DONE).read_text())["step"] == 30
        assert [r["step"] for r in runlog.read_metrics(run / runlog.METRICS)
                if r["kind"] == "valid"] == [10, 20, 30]
    assert checkpoint.load(teacher / runlog.BEST)["step"] == 30  # valid loss improved each time
    translated = (work / "translated-en-de" / "train.txt").read_text().splitlines()
    assert len(translated) == 600  # one translation per training source
    sources, targets = ((data / f"train.{x}").read_text().splitlines() for x in ("sym", "rev"))
    text = work / "mixed-text-en-de"
    assert (text / "train.de").read_text().splitlines() == targets + translated
    assert (text / "train.en").read_text().splitlines() == sources + sources
    student_config = (student / "config.toml").read_text()
    assert "max-epochs = 6" in student_config  # twice the pairs
    assert "lr-patience = 1" in student_config  # the student's schedule
    assert "lr-patience = 2" in (teacher / "config.toml").read_text()  # the config's (default)
    for split in ("val", "test_2016_flickr"):
        hyp = tmp_path / "results" / f"{split}.en-de.hyp"
        assert hyp.stat().st_mtime >= (student / runlog.DONE).stat().st_mtime
    assert str(student) in (tmp_path / "results" / "en-de.scores").read_text()
    assert (tmp_path / "results" / "en-de.scores").read_text().count('"score"') >= 2


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_multitask_recipe_scores_one_model_against_the_single_task_models(tmp_path):
    """`make multitask`: one model with a decoder per direction, trained with the recipe's
    config and first seed, validated after as many updates per direction as a single-task
    model, and scored beside each direction's first teacher."""
    work, results = tmp_path / "work", tmp_path / "results"
    make = [*_recipe_inputs(tmp_path, ("de", "fr")), "multitask", "TASKS=de,fr",
            f"NMT={Path(sys.executable).parent / 'nmt'}"]
    done = subprocess.run(make, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    multi = work / "multitask"
    assert checkpoint.load(multi / runlog.BEST, keys=("tasks",))["tasks"] == ["de", "fr"]
    config = (multi / "config.toml").read_text()
    assert 'task-schedule = "round-robin"' in config and "seed = 1\n" in config
    assert "valid-every = 20" in config  # 2 directions x the config's 10
    assert [r["step"] for r in runlog.read_metrics(multi / runlog.METRICS)
            if r["kind"] == "valid"] == [20, 30]
    for single in ("teacher1-en-de", "teacher1-en-fr"):
        assert json.loads((work / single / runlog.DONE).read_text())["step"] == 30
    for split, kind, task in itertools.product(("val", "test_2016_flickr"), ("multi", "single"),
                                               ("de", "fr")):
        assert len((results / f"{split}.{kind}.{task}.hyp").read_text().splitlines()) == 30
        lowercased = json.loads((results / f"{split}.{kind}.{task}.lc.json").read_text())
        assert 0.0 <= lowercased["BLEU"]["score"] <= 100.0
    rows = [line for line in (results / "multitask.scores").read_text().splitlines()
            if line.startswith("| en->")]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| en->de", "single-task"], ["| en->de", "multi-task"],
        ["| en->fr", "single-task"], ["| en->fr", "multi-task"]]
