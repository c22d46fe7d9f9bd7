"""`make demo`'s choice of data (recipes/demo_data.py) and the demo run on a hub-layout dataset."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "recipes" / "demo_data.py"

datasets = pytest.importorskip("datasets")


def _demo_data():
    spec = importlib.util.spec_from_file_location("demo_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _save_multi30k_layout(path: Path, splits: tuple[str, ...] = ("train", "validation", "test")):
    """A small dataset as bentrevett/multi30k lays it out: en/de columns, three splits. The
    task is easy (numbers and two nouns), so that a few steps show learning."""
    nouns = [("dog", "Hund"), ("cat", "Katze"), ("house", "Haus"), ("tree", "Baum")]
    numbers = ["one", "two", "three", "four", "five"], ["eins", "zwei", "drei", "vier", "fünf"]
    rows = {"en": [], "de": []}
    for i in range(200):
        (en, de), n = nouns[i % 4], (i // 4) % 5
        rows["en"].append(f"{numbers[0][n]} {en} .")
        rows["de"].append(f"{numbers[1][n]} {de} .")
    sizes = {"train": 200, "validation": 20, "test": 8}
    parts = {
        s: datasets.Dataset.from_dict({k: v[: sizes[s]] for k, v in rows.items()}) for s in splits
    }
    datasets.DatasetDict(parts).save_to_disk(str(path))


def _run_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The script as make runs it, with the hub unreachable whatever the machine (offline
    mode fails as no network does) and an empty cache."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    command = [
        sys.executable,
        str(SCRIPT),
        str(tmp_path / "out"),
        "--multi30k",
        str(tmp_path / "none"),
    ]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=120)


def _variables(out: Path) -> dict[str, str]:
    lines = (out / "data.mk").read_text(encoding="utf-8").splitlines()[1:]
    return dict(line.split(" := ", 1) for line in lines)


def test_local_multi30k_comes_first(tmp_path: Path) -> None:
    local = tmp_path / "multi30k"
    local.mkdir()
    with gzip.open(local / "train.en.gz", "wt") as handle:
        handle.write("a\n")
    variables, line = _demo_data().choose(tmp_path / "out", local, "no/such-dataset")
    assert line == f"demo data: Multi30k en-de from {local}"
    assert variables["CORPUS"].startswith(f"--train {local}/train --valid {local}/val")
    assert variables["TEST_REF"] == f"{local}/test_2016_flickr.de.gz"


def test_no_network_falls_back_to_the_toy_task_and_says_why(tmp_path: Path) -> None:
    result = _run_script(tmp_path, "--hf-dataset", "bentrevett/multi30k")
    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.startswith("demo data: the toy reversal task, as the hub is out of reach")
    assert "bentrevett/multi30k: cannot reach the Hugging Face hub" in last
    variables = _variables(tmp_path / "out")
    assert (variables["SRC"], variables["TGT"]) == ("sym", "rev")
    assert Path(variables["TEST_SRC"]).is_file() and Path(variables["TEST_REF"]).is_file()


def test_a_wrong_hub_dataset_stops_the_demo(tmp_path: Path) -> None:
    _save_multi30k_layout(tmp_path / "ds", splits=("train", "test"))
    result = _run_script(tmp_path, "--hf-dataset", str(tmp_path / "ds"))
    assert result.returncode == 1
    assert "error:" in result.stderr and "no split 'validation' for valid" in result.stderr
    assert not (tmp_path / "out" / "data.mk").exists() and not (tmp_path / "out" / "toy").exists()


@pytest.mark.slow
def test_demo_on_a_hub_layout_dataset(tmp_path: Path) -> None:
    """`make demo` end to end, the dataset loaded through `nmt preprocess --hf-dataset` (a saved
    directory stands in for the hub), with a small model trained briefly."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    _save_multi30k_layout(tmp_path / "ds")
    out = tmp_path / "out"
    small = "--emb-size 32 --hidden-size 64 --batch-tokens 300 --max-steps 60 --log-every 10"
    variables = {
        "OUT": str(out),
        "MULTI30K": str(tmp_path / "none"),
        "HF_DATASET": str(tmp_path / "ds"),
        "NMT": str(Path(sys.executable).parent / "nmt"),
        "PYTHON": sys.executable,
        "TRAIN_ARGS": f"{small} --valid-every 60 --threads 1",
    }
    command = ["make", "-f", "recipes/demo.mk", *(f"{k}={v}" for k, v in variables.items())]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"demo data: Multi30k en-de from {tmp_path / 'ds'} (Hugging Face)" in result.stdout
    assert "--hf-dataset" in result.stdout and "test: 8 of 8 lines" in result.stderr
    assert "BLEU = " in result.stdout and "chrF2 = " in result.stdout
    samples = result.stdout.split("first translations of")[1].splitlines()[1:10]
    assert [line.split(":")[0].strip() for line in samples] == ["en", "de", "ref"] * 3
    assert samples[0] == "  en:  one dog ." and samples[2] == "  ref: eins Hund ."
    assert len((out / "test.hyp.de").read_text(encoding="utf-8").splitlines()) == 8
    losses = [
        json.loads(line)["loss"]
        for line in (out / "model" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        if json.loads(line).get("kind") == "train"
    ]
    assert len(losses) >= 5 and losses[-1] < 0.6 * losses[0]  # it learned
