"""`make bench`: training and translation speed of the reference model on Multi30k en-de.

Runs the real commands as child processes (so peak memory is each process's own RSS), prints a
table and writes JSON. Not a test: run it on an otherwise idle machine.

    python recipes/bench/bench.py [--steps 300 | --quick] [--out bench-out] [--peers DIR]

It preprocesses Multi30k en-de (joint sentencepiece 8k, per-side vocabularies), trains the
reference configuration for --steps updates of 64 sentences in fp32, and in bf16 too where the
CPU multiplies bf16 natively (steady-state target tokens/s: the log intervals after --warmup),
translates test_2016_flickr with the fp32 model, beam 5 and greedy, with --precision fp32, int8
and (where native) bf16 (batch 64; whole command, model load included), times `nmt --help` and
the start-up of `nmt translate` to its first output line (and, beside it, `import torch` alone),
and scores the outputs. With --peers DIR it also runs Joey NMT and OpenNMT-py through
../shared/peers/peers.sh (virtualenvs made once in DIR) with the same number of updates, in the
same run, and prints our ratios to theirs.
--quick is 200 updates: with --peers 14.9 minutes on the project's 2-core machine (300 updates:
18-20 minutes, half of it Joey NMT's training). Translation speed depends on output length, and
an undertrained model that stops early decodes less: the table gives the output words of each
system, and warns where a peer's differ from ours by over 20%. On 2026-12-04, at 200 updates
OpenNMT-py's outputs were 37% shorter than ours (and than the references), so its translation
ratios meant nothing; at 300 they were 16% longer than ours, and Joey NMT's 27% longer.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PEERS_SH = ROOT.parent / "shared" / "peers" / "peers.sh"
NMT = [sys.executable, "-m", "nmt_cli.main"]


def run(cmd: list[str], stdin: Path | None = None, stdout: Path | None = None) -> dict[str, float]:
    """Run a command; return its wall time (s) and peak RSS (MB) from the kernel's accounting."""
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as src, open(stdout or os.devnull, "wb") as dst:
        proc = subprocess.Popen(cmd, stdin=src, stdout=dst, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: command failed: {' '.join(map(str, cmd))}\n{proc.stderr.read().decode()}")
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def first_line_latency(model: Path, line: str) -> float:
    """Seconds from starting `nmt translate` to its first translated line on stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen([*NMT, "translate", "-m", str(model), "--beam", "5"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    proc.stdin.write((line + "\n").encode())
    proc.stdin.flush()
    proc.stdout.readline()
    latency = time.perf_counter() - start
    proc.stdin.close()
    proc.wait()
    return round(latency, 3)


def score(hyp: Path, ref: Path) -> dict[str, float]:
    out = subprocess.run([*NMT, "evaluate", "--hyp", str(hyp), "--ref", str(ref), "--json"],
                         capture_output=True, text=True, check=True).stdout
    report = json.loads(out)
    return {"bleu": report["BLEU"]["score"], "chrf": report["chrF2"]["score"]}


def steady_tokens_per_s(metrics: Path, warmup: int) -> float:
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    rates = [r["tokens_per_s"] for r in records if r["kind"] == "train" and r["step"] > warmup]
    if not rates:
        sys.exit(f"bench: no training log past step {warmup}; use more --steps")
    return round(statistics.median(rates), 1)


def preprocess_multi30k(data: Path, bundle: Path) -> dict[str, float]:
    """The reference bundle: Multi30k en-de, joint sentencepiece 8k, per-side vocabularies."""
    return run([*NMT, "-q", "preprocess", "--src", "en", "--tgt", "de", "--train", f"{data}/train",
                "--valid", f"{data}/val", "--test", f"{data}/test_2016_flickr",
                "--tokenizer", "subword", "--vocab-size", "8000", "--separate-vocab",
                "--out", str(bundle), "--force"])


# The two searches the bench times, by name and beam size (peers.sh names its outputs by beam).
SEARCHES = (("beam5", 5), ("greedy", 1))


def translations(bf16: bool) -> list[tuple[str, int, str]]:
    """(name, beam, precision) of each translation run; bf16 only where the CPU multiplies it
    natively (elsewhere it is emulated, several times slower than fp32)."""
    precisions = [("fp32", ""), *([("bf16", "_bf16")] if bf16 else []), ("int8", "_int8")]
    return [(f"{search}{suffix}", beam, precision) for precision, suffix in precisions
            for search, beam in SEARCHES]


def words(path: Path) -> int:
    """Whitespace-separated words of a translation: a search's work grows with its output."""
    with open(path, encoding="utf-8") as handle:
        return sum(len(line.split()) for line in handle)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            line = next((line for line in handle if line.startswith("model name")), "")
    except OSError:
        line = ""
    return line.partition(":")[2].strip() or platform.processor() or platform.machine()


def train_model(args: argparse.Namespace, bundle: Path, model: Path,
                precision: str) -> dict[str, Any]:
    shutil.rmtree(model, ignore_errors=True)
    train = run([*NMT, "-q", "train", "--data", str(bundle), "--out", str(model), "--config",
                 str(args.config), "--max-steps", str(args.steps), "--max-epochs", "0",
                 "--valid-every", str(args.steps), "--log-every", "25", "--batch-size", "64",
                 "--threads", str(args.threads), "--precision", precision])
    train["tokens_per_s"] = steady_tokens_per_s(model / "metrics.jsonl", args.warmup)
    return train


def bench_ours(args: argparse.Namespace) -> dict[str, Any]:
    out, data = args.out, args.data
    bundle, model = out / "bundle", out / "model"
    import torch

    from nmt.device import autocast_dtype, native_bf16
    from nmt.precision import auto_precision

    cpu = torch.device("cpu")
    torch.set_num_threads(args.threads)  # auto's probe times the runs' thread count
    result: dict[str, Any] = {
        "native_bf16": native_bf16(cpu),
        # What --precision auto picks here, i.e. which rows are nmt's out-of-the-box speed.
        "auto": {"train": "bf16" if autocast_dtype(cpu, "auto") else "fp32",
                 "translate": auto_precision(cpu)},
    }
    result["preprocess"] = preprocess_multi30k(data, bundle)
    if result["native_bf16"]:  # the bf16 run first: the fp32 model is the one translated below
        result["train_bf16"] = train_model(args, bundle, out / "model-bf16", "bf16")
    result["train"] = train_model(args, bundle, model, "fp32")
    source, ref = data / "test_2016_flickr.en.gz", data / "test_2016_flickr.de.gz"
    lines = sum(1 for _ in gzip.open(source))
    for name, beam, precision in translations(result["native_bf16"]):
        hyp = out / f"test.{name}.de"
        timing = run([*NMT, "translate", "-m", str(model), "-i", str(source), "-o", str(hyp),
                      "--beam", str(beam), "--batch-size", "64", "--threads", str(args.threads),
                      "--precision", precision])
        timing["sentences_per_s"] = round(lines / timing["wall_s"], 1)
        result[name] = {**timing, **score(hyp, ref), "words": words(hyp)}
    result["help_s"] = run([*NMT, "--help"])["wall_s"]
    # Start-up is mostly `import torch`, whose time moves by 0.5 s between runs: medians of 3.
    line = "A man is riding a bicycle down the street."
    result["first_line_s"] = statistics.median(first_line_latency(model, line) for _ in range(3))
    result["import_torch_s"] = statistics.median(
        run([sys.executable, "-c", "import torch"])["wall_s"] for _ in range(3))
    return result


def bench_peers(args: argparse.Namespace) -> dict[str, Any]:
    """Run peers.sh (setup once) with the same updates; parse what it prints."""
    env = {**os.environ, "PEERS": str(args.peers), "STEPS": str(args.steps)}
    stages = ["prepare", "train", "translate"]
    if not (args.peers / "onmt-venv" / "bin" / "onmt_train").exists():
        stages.insert(0, "setup")
    text = ""
    for stage in stages:
        text += subprocess.run(["bash", str(PEERS_SH), stage], env=env, check=True,
                               capture_output=True, text=True).stdout
    peers = parse_peers(text)
    for peer, runs in peers.items():
        for search, beam in SEARCHES:
            output = args.peers / peer / f"test.b{beam}.txt"
            if search in runs and output.is_file():
                runs[search]["words"] = words(output)
    return peers


def length_mismatches(ours: dict[str, Any], peers: dict[str, Any],
                      tolerance: float = 0.2) -> list[str]:
    """Translations whose output length differs from ours by more than `tolerance`: their
    sentences/s are not comparable (an undertrained model that stops early decodes less)."""
    found = []
    for search, _ in SEARCHES:
        for peer, runs in peers.items():
            theirs, mine = runs.get(search, {}).get("words"), ours[search].get("words")
            if theirs and mine and abs(theirs / mine - 1) > tolerance:
                found.append(f"{peer} {search}: {theirs} words against our {mine}")
    return found


def parse_peers(text: str) -> dict[str, Any]:
    """Figures from peers.sh's output: steady training tokens/s (intervals after the first) and
    peak RSS, translation wall time and BLEU per peer and beam."""
    lines = text.splitlines()
    peers: dict[str, Any] = {"joey": {}, "onmt": {}}
    for i, line in enumerate(lines):
        if line.startswith("Joey NMT (target tokens/s") and i + 1 < len(lines):
            rates = [float(x) for x in lines[i + 1].split()]
            peers["joey"]["tokens_per_s"] = statistics.median(rates[1:] or rates)
        if line.startswith("OpenNMT-py (source/target tokens/s") and i + 1 < len(lines):
            rates = [float(t) for t in re.findall(r"\d+/\s*(\d+) tok/s", lines[i + 1])]
            peers["onmt"]["tokens_per_s"] = statistics.median(rates[1:] or rates)
        peak = re.search(r"/(joey|onmt)/train\.log:\s*Maximum resident set size \(kbytes\): (\d+)",
                         line)
        if peak:
            peers[peak.group(1)]["train_peak_rss_mb"] = round(int(peak.group(2)) / 1024, 1)
        match = re.match(r"(joey|onmt) beam (\d): ([\d:.]+) s wall, (\d+) KB peak, lines (\d+), "
                         r"BLEU ([\d.]+)", line)
        if match:
            peer, beam, wall, rss, n, bleu = match.groups()
            seconds = sum(float(p) * 60**k for k, p in enumerate(reversed(wall.split(":"))))
            peers[peer]["beam5" if beam == "5" else "greedy"] = {
                "wall_s": seconds, "sentences_per_s": round(1000 / seconds, 1),
                "peak_rss_mb": round(int(rss) / 1024, 1), "lines": int(n), "bleu": float(bleu)}
    return peers


def print_table(ours: dict[str, Any], peers: dict[str, Any] | None) -> None:
    rows = []
    for run, label in (("train", "training"), ("train_bf16", "training bf16")):
        if run not in ours:
            continue
        rows.append((f"{label} target tokens/s", ours[run]["tokens_per_s"], ("tokens_per_s",)))
        rows.append((f"{label} peak RSS MB", ours[run]["peak_rss_mb"], ("train_peak_rss_mb",)))
    for name, beam, precision in translations(ours["native_bf16"]):
        search = "beam 5" if beam == 5 else "greedy"
        label = search if precision == "fp32" else f"{search} --precision {precision}"
        peer = "beam5" if beam == 5 else "greedy"
        rows.append((f"{label} sentences/s", ours[name]["sentences_per_s"],
                     (peer, "sentences_per_s")))
        rows.append((f"{label} BLEU", ours[name]["bleu"], (peer, "bleu")))
        if precision == "fp32":
            rows.append((f"{label} output words", ours[name]["words"], (peer, "words")))
        if name == "beam5":
            rows.append(("beam 5 peak RSS MB", ours[name]["peak_rss_mb"], (peer, "peak_rss_mb")))
    rows += [("nmt --help s", ours["help_s"], None),
             ("translate start-up to first line s", ours["first_line_s"], None),
             ("of which python -c 'import torch' s", ours["import_torch_s"], None)]
    header = f"{'':38}{'nmt':>10}"
    if peers:
        header += f"{'Joey':>10}{'OpenNMT':>10}{'x Joey':>8}{'x ONMT':>8}"
    print(header)
    for label, value, key in rows:
        line = f"{label:38}{value:>10}"
        if peers and key:
            theirs = []
            for peer in ("joey", "onmt"):
                node: Any = peers[peer]
                for part in key:
                    node = node.get(part, {}) if isinstance(node, dict) else {}
                theirs.append(node if isinstance(node, (int, float)) else None)
            line += "".join(f"{t if t is not None else '-':>10}" for t in theirs)
            line += "".join(f"{value / t:>8.2f}" if t else f"{'-':>8}" for t in theirs)
        print(line)
    if peers:
        mismatched = length_mismatches(ours, peers)
        if mismatched:
            print("warning: outputs of different lengths, so their sentences/s ratios are not "
                  "comparable (train longer): " + "; ".join(mismatched))
    auto = ours["auto"]
    print(f"--precision auto (the default) here: training {auto['train']}, "
          f"translation {auto['translate']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "multi30k")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out")
    parser.add_argument("--steps", type=int, default=300, help="training updates")
    parser.add_argument("--quick", action="store_const", const=200, dest="steps",
                        help="200 updates (--steps 200)")
    parser.add_argument("--warmup", type=int, default=50, help="updates left out of the rate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", type=Path,
                        default=ROOT / "recipes" / "multi30k" / "reference.toml",
                        help="model and training settings (default: the reference model)")
    parser.add_argument("--peers", type=Path, help="also run Joey NMT and OpenNMT-py (venvs here)")
    args = parser.parse_args()
    if not (args.data / "train.en.gz").is_file():
        sys.exit(f"bench: Multi30k not found at {args.data}")
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    ours = bench_ours(args)
    peers = bench_peers(args) if args.peers else None
    import torch

    report = {"nmt": ours, "peers": peers, "steps": args.steps,
              "bench_wall_s": round(time.perf_counter() - start, 1),
              "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "cuda": (torch.cuda.get_device_name()
                                   if torch.cuda.is_available() else None)}}
    (args.out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print_table(ours, peers)
    print(f"{args.steps} updates; the bench took {report['bench_wall_s'] / 60:.1f} minutes")
    print(f"\n{args.out / 'bench.json'}")


if __name__ == "__main__":
    main()
