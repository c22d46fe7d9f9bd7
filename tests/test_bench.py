"""The benchmark script's table and JSON are well formed (tiny settings; not a timing test)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nmt.device import native_bf16
from nmt.precision import auto_precision

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes" / "bench"))

import bench  # noqa: E402
import time_to_bleu  # noqa: E402


def tiny_multi30k(multi30k: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A few hundred lines of Multi30k en-de in its own layout, and a tiny model config."""
    data = tmp_path / "data"
    data.mkdir()
    sizes = {"train": 300, "val": 20, "test_2016_flickr": 12}
    for split, n in sizes.items():
        for lang in ("en", "de"):
            with gzip.open(multi30k / f"{split}.{lang}.gz", "rt") as src, \
                    gzip.open(data / f"{split}.{lang}.gz", "wt") as dst:
                dst.writelines(line for _, line in zip(range(n), src, strict=False))
    config = tmp_path / "tiny.toml"
    config.write_text("emb-size = 16\nhidden-size = 32\ndropout = 0.0\n")
    return data, config


def test_bench_runs_on_tiny_settings(multi30k, tmp_path):
    data, config = tiny_multi30k(multi30k, tmp_path)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "recipes" / "bench" / "bench.py"),
                           "--data", str(data), "--out", str(out), "--steps", "50",
                           "--warmup", "25",
                           "--threads", "1", "--config", str(config)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "bench.json").read_text())
    ours = report["nmt"]
    bf16 = ours["native_bf16"]  # bf16 runs only where the CPU multiplies it natively
    assert bf16 == native_bf16(torch.device("cpu"))
    for run in ("train", "train_bf16") if bf16 else ("train",):
        assert ours[run]["tokens_per_s"] > 0 and ours[run]["peak_rss_mb"] > 0
    names = ["beam5", "greedy", "beam5_int8", "greedy_int8"]
    for name in names + (["beam5_bf16", "greedy_bf16"] if bf16 else []):
        assert ours[name]["sentences_per_s"] > 0 and 0 <= ours[name]["bleu"] <= 100
        hyp = (out / f"test.{name}.de").read_text(encoding="utf-8")
        assert ours[name]["words"] == len(hyp.split())
    assert ("train_bf16" in ours) is bf16 and ("greedy_bf16" in ours) is bf16
    assert ours["first_line_s"] > 0 and ours["import_torch_s"] > 0 and report["machine"]["torch"]
    assert report["steps"] == 50 and report["bench_wall_s"] > 0
    assert "50 updates; the bench took" in done.stdout
    # Training's auto rests on a timing probe: bf16 is possible only where it is native.
    assert ours["auto"]["train"] in (["fp32", "bf16"] if bf16 else ["fp32"])
    assert ours["auto"]["translate"] == auto_precision(torch.device("cpu"))
    assert f"translation {ours['auto']['translate']}" in done.stdout
    assert "beam 5 sentences/s" in done.stdout and "training target tokens/s" in done.stdout
    assert "greedy --precision int8 sentences/s" in done.stdout
    assert ("training bf16 target tokens/s" in done.stdout) is bf16

    # make bench-profile on what the bench built: a table of operators for each part.
    profiled = subprocess.run([sys.executable, str(ROOT / "recipes" / "bench" / "hotspots.py"),
                               "--bundle", str(out / "bundle"), "--model", str(out / "model"),
                               "--config", str(config), "--batches", "2", "--sentences", "8",
                               "--threads", "1"], capture_output=True, text=True, timeout=600)
    assert profiled.returncode == 0, profiled.stderr
    for part in ("## Training, fp32", "## Beam 5, int8"):
        assert part in profiled.stdout
    assert profiled.stdout.count("Self CPU time total") == 2

    # make bench-gpu, here on the CPU: the checks run and the figures are well formed.
    gpu_out = tmp_path / "gpu"
    checked = subprocess.run([sys.executable, str(ROOT / "recipes" / "bench" / "gpu.py"),
                              "--data", str(data), "--bundle", str(out / "bundle"), "--out",
                              str(gpu_out), "--config", str(config), "--steps", "50", "--warmup",
                              "25", "--device", "cpu", "--batches", "8"],
                             capture_output=True, text=True, timeout=600)
    assert checked.returncode == 0, checked.stderr
    gpu = json.loads((gpu_out / "gpu.json").read_text())
    fast = gpu["fast_paths"]
    assert fast["grad_vs_cpu"] == 0.0  # the same device: the same computation
    assert fast["grad_vs_plain_autograd"] < 1e-5 and fast["loss_device"] > 0
    assert abs(fast["loss_plain_autograd"] - fast["loss_device"]) < 1e-5
    assert gpu["train"]["tokens_per_s"] > 0
    cli = gpu["translate_cli"]
    assert cli["output_lines"] == cli["input_lines"] == 12
    assert gpu["syncs"]["train_syncs"] is None and gpu["syncs"]["train_max_allocated_mb"] is None
    assert gpu["train"]["precision"] == "auto" and "train_fp32" not in gpu
    for precision in dict.fromkeys(["fp32", auto_precision(torch.device("cpu"))]):
        speed = gpu[f"speed_{precision}"]
        assert set(speed) == {f"{s}_b8_{precision}" for s in ("beam5", "greedy")}
        assert all(row["sentences_per_s"] > 0 and row["bleu"] >= 0 for row in speed.values())
    assert "gradients vs plain autograd" in checked.stdout and "ERROR" not in checked.stdout


def test_peer_output_is_parsed():
    text = "\n".join([
        "Joey NMT (target tokens/s, every 50 steps):",
        "380 420 430 410",
        "OpenNMT-py (source/target tokens/s, every 50 steps):",
        "650/ 700 tok/s 690/ 720 tok/s 700/ 740 tok/s",
        "/w/peers/joey/train.log:\tMaximum resident set size (kbytes): 1638400",
        "/w/peers/onmt/train.log:\tMaximum resident set size (kbytes): 3276800",
        "joey beam 5: 1:36.50 s wall, 700000 KB peak, lines 1000, BLEU 12.1, BLEU-lc 12.9",
        "onmt beam 1: 13.70 s wall, 500000 KB peak, lines 1000, BLEU 11.0, BLEU-lc 11.5",
    ])
    peers = bench.parse_peers(text)
    assert peers["joey"]["tokens_per_s"] == 420
    assert peers["onmt"]["tokens_per_s"] == 730
    assert peers["joey"]["train_peak_rss_mb"] == 1600 and peers["onmt"]["train_peak_rss_mb"] == 3200
    assert peers["joey"]["beam5"]["wall_s"] == 96.5 and peers["joey"]["beam5"]["bleu"] == 12.1
    assert peers["onmt"]["greedy"]["sentences_per_s"] == 73.0


def test_outputs_of_different_lengths_are_flagged():
    ours = {"beam5": {"words": 10000}, "greedy": {"words": 9000}}
    peers = {"joey": {"beam5": {"words": 11900}, "greedy": {"words": 9000}},
             "onmt": {"beam5": {"words": 6500}}}
    assert bench.length_mismatches(ours, peers) == ["onmt beam5: 6500 words against our 10000"]
    peers["joey"]["beam5"]["words"] = 12100
    assert len(bench.length_mismatches(ours, peers)) == 2


def test_memory_script_reports_each_size(reversal_run, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with gzip.open(data / "test_2016_flickr.en.gz", "wt") as handle:
        handle.write("a b c\nd e f g\n\nh i\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(ROOT / "recipes" / "bench" / "memory.py"),
                           "--data", str(data), "--out", str(out), "--lines", "50,10",
                           "--model", str(reversal_run), "--threads", "1"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "memory.json").read_text())["results"]
    assert [r["lines"] for r in results] == [10, 50]
    assert results[0]["ratio_to_smallest"] == 1.0 and results[1]["peak_rss_mb"] > 0
    assert len((out / "output-50.de").read_text().splitlines()) == 50


def run_time_to_bleu(data: Path, config: Path, out: Path, *extra: str) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "recipes" / "bench" / "time_to_bleu.py"),
                           "--data", str(data), "--out", str(out), "--config", str(config),
                           "--every", "10", "--threads", "1", *extra],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "minutes to BLEU" in done.stdout
    return json.loads((out / "time_to_bleu.json").read_text())


def test_time_to_bleu_stops_at_the_target(multi30k, tmp_path):
    data, config = tiny_multi30k(multi30k, tmp_path)
    ours = run_time_to_bleu(data, config, tmp_path / "out", "--target", "0")["nmt"]
    assert [p["step"] for p in ours["curve"]] == [10]
    assert ours["minutes_to_target"] == ours["curve"][0]["minutes"] > 0


def test_time_to_bleu_stops_at_the_time_limit(multi30k, tmp_path):
    data, config = tiny_multi30k(multi30k, tmp_path)
    endless = tmp_path / "endless.toml"
    endless.write_text(config.read_text() + "patience = 0\nmax-epochs = 0\n")
    started = time.perf_counter()
    report = run_time_to_bleu(data, endless, tmp_path / "out", "--target", "101",
                              "--minutes", "0.2")
    ours = report["nmt"]
    assert 12 <= time.perf_counter() - started < 60
    assert ours["minutes_to_target"] is None
    # It kept polling while training ran: validations every 10 updates, in order.
    steps = [p["step"] for p in ours["curve"]]
    assert len(steps) >= 2 and steps == sorted(set(steps))


def test_onmt_config_saves_every_checkpoint(tmp_path):
    if not (time_to_bleu.PEERS_SH.parent / "onmt.yaml").is_file():
        pytest.skip(f"the peers' configuration is not at {time_to_bleu.PEERS_SH.parent}")
    text = time_to_bleu.onmt_config(tmp_path / "run", tmp_path / "peers", 250)
    for placeholder in ("PEERS/", "UPDATES", "VALFREQ", "SAVESTEPS", "MODELDIR"):
        assert placeholder not in text
    assert "keep_checkpoint: -1" in text and "save_checkpoint_steps: 250" in text
    assert f"src_vocab: {tmp_path}/run/vocab.en" in text
    assert f"path_src: {tmp_path}/peers/data/pieces/train.en" in text
