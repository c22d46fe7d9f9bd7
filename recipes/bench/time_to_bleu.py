"""`make bench-bleu`: wall time to a validation BLEU, ours against OpenNMT-py, as two curves.

Trains the reference model with recipes/multi30k/fast.toml (the reference architecture and batches;
a training recipe for wall time) and stops once validation BLEU reaches --target or --minutes have
passed. With --peers DIR it then trains OpenNMT-py with the peers' reference configuration
(../shared/peers/onmt.yaml, virtualenv made by peers.sh in DIR) for --onmt-minutes (default: three
times our time to the target, so the curve shows whether it got there in that time), saving a
checkpoint every --every updates, and scores each checkpoint afterwards.

Both curves are validation BLEU of greedy output, batch 64, detokenized and cased, by sacreBLEU
against the raw references, at wall-clock minutes since the training command was launched
(start-up included). Ours also includes its own in-run validations; OpenNMT-py's includes none,
since its checkpoints are scored after training. Not a test: run it on an otherwise idle machine.

    python recipes/bench/time_to_bleu.py [--target 35] [--peers DIR] [--out bench-out/bleu]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import NMT, PEERS_SH, ROOT, preprocess_multi30k

from nmt.evaluate import Metrics, score_lines

POLL_S = 0.5


def new_records(path: Path, seen: int) -> tuple[list[dict[str, Any]], int]:
    """Complete JSONL records of `path` past the first `seen` (a line still being written waits)."""
    if not path.is_file():
        return [], seen
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    return [json.loads(line) for line in lines[seen:] if line.strip()], len(lines)


def train_ours(args: argparse.Namespace, bundle: Path) -> list[dict[str, Any]]:
    """Validation BLEU against minutes since launch; stops at the target or the time limit."""
    model = args.out / "nmt-model"
    shutil.rmtree(model, ignore_errors=True)
    cmd = [*NMT, "-q", "train", "--data", str(bundle), "--out", str(model), "--config",
           str(args.config), "--valid-every", str(args.every), "--keep-last", "1",
           "--threads", str(args.threads), "--precision", args.precision]
    log = args.out / "nmt-train.log"  # a file, not a pipe: nobody reads it while training runs
    start = time.perf_counter()
    with open(log, "wb") as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errors)
    curve: list[dict[str, Any]] = []
    seen = 0
    while True:
        finished = proc.poll() is not None
        records, seen = new_records(model / "metrics.jsonl", seen)
        now = (time.perf_counter() - start) / 60
        for record in records:
            if record["kind"] == "valid" and not reached(curve, args.target):
                # A poll may find several validations; the curve ends at the target.
                curve.append({"minutes": round(now, 2), "step": record["step"],
                              "bleu": round(record["score"], 2)})
        if finished:
            if proc.returncode != 0:
                sys.exit(f"bench-bleu: training failed:\n{log.read_text(errors='replace')}")
            return curve
        if reached(curve, args.target) or now >= args.minutes:
            proc.terminate()
            proc.wait()
            return curve
        time.sleep(POLL_S)


def reached(curve: list[dict[str, Any]], target: float) -> bool:
    return bool(curve) and curve[-1]["bleu"] >= target


def onmt_config(run_dir: Path, peers: Path, every: int) -> str:
    """The peers' OpenNMT-py configuration, saving every checkpoint and never validating."""
    text = (PEERS_SH.parent / "onmt.yaml").read_text()
    for placeholder, value in (("PEERS/onmt/", f"{run_dir}/"), ("PEERS/", f"{peers}/"),
                               ("UPDATES", "1000000"), ("VALFREQ", "1000000"),
                               ("SAVESTEPS", str(every)), ("MODELDIR", str(run_dir)),
                               ("keep_checkpoint: 2", "keep_checkpoint: -1")):
        text = text.replace(placeholder, value)
    return text


def train_onmt(args: argparse.Namespace, minutes: float) -> list[dict[str, Any]]:
    """Train OpenNMT-py for `minutes`, then score every checkpoint it saved."""
    peers = args.peers.resolve()
    env = {**os.environ, "PEERS": str(peers), "OMP_NUM_THREADS": str(args.threads),
           "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}  # OpenNMT-py pickles whole objects
    venv = peers / "onmt-venv" / "bin"
    pieces = peers / "data" / "pieces"
    for stage, ready in (("setup", venv / "onmt_train"), ("prepare", pieces / "val.en")):
        if not ready.exists():
            subprocess.run(["bash", str(PEERS_SH), stage], env=env, check=True,
                           stdout=subprocess.DEVNULL)
    run_dir = args.out / "onmt"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config = run_dir / "run.yaml"
    config.write_text(onmt_config(run_dir, peers, args.every))
    subprocess.run([str(venv / "onmt_build_vocab"), "-config", str(config), "-n_sample", "-1"],
                   env=env, check=True, capture_output=True)
    launched = time.time()
    with open(run_dir / "train.log", "wb") as log:
        proc = subprocess.Popen([str(venv / "onmt_train"), "-config", str(config)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=minutes * 60)
            sys.exit(f"bench-bleu: OpenNMT-py stopped early; see {run_dir / 'train.log'}")
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
    import sentencepiece

    pieces_model = sentencepiece.SentencePieceProcessor(model_file=str(pieces / "spm.ende.model"))
    with gzip.open(args.data / "val.de.gz", "rt", encoding="utf-8") as handle:
        refs = handle.read().splitlines()
    checkpoints = sorted((int(p.stem.removeprefix("model_step_")), p)
                         for p in run_dir.glob("model_step_*.pt"))
    curve = []
    for step, ckpt in checkpoints:
        bleu = onmt_val_bleu(venv, ckpt, pieces / "val.en", pieces_model, refs, env)
        if bleu is None:  # the checkpoint being written when training was stopped
            print(f"bench-bleu: skipped {ckpt.name}: it does not load", file=sys.stderr)
            continue
        curve.append({"minutes": round((ckpt.stat().st_mtime - launched) / 60, 2),
                      "step": step, "bleu": round(bleu, 2)})
    return curve


def onmt_val_bleu(venv: Path, ckpt: Path, source: Path, pieces_model: Any, refs: list[str],
                  env: dict[str, str]) -> float | None:
    """BLEU of a checkpoint's greedy output (batch 64), detokenized; None if it does not load."""
    hyp = ckpt.with_suffix(".val.pieces")
    done = subprocess.run([str(venv / "onmt_translate"), "-model", str(ckpt), "-src", str(source),
                           "-output", str(hyp), "-beam_size", "1", "-batch_size", "64",
                           "-batch_type", "sents", "-max_length", "100", "-gpu", "-1"],
                          env=env, capture_output=True)
    if done.returncode != 0:
        return None
    lines = hyp.read_text(encoding="utf-8").splitlines()
    hyps = [pieces_model.decode(line.split()) for line in lines]
    return score_lines(hyps, refs, Metrics(("bleu",)))[0].score


def minutes_to(curve: list[dict[str, Any]], target: float) -> float | None:
    return next((p["minutes"] for p in curve if p["bleu"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "multi30k")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "bleu")
    parser.add_argument("--config", type=Path, default=ROOT / "recipes" / "multi30k" / "fast.toml")
    parser.add_argument("--target", type=float, default=35.0, help="validation BLEU to reach")
    parser.add_argument("--minutes", type=float, default=60.0, help="our time limit")
    parser.add_argument("--every", type=int, default=250, help="updates between curve points")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto",
                        help="ours: nmt train --precision "
                             "(auto: bf16 where native and faster, else fp32)")
    parser.add_argument("--peers", type=Path, help="also train OpenNMT-py (venv made here)")
    parser.add_argument("--onmt-minutes", type=float,
                        help="OpenNMT-py's time (default: 3x ours to the target, else --minutes)")
    args = parser.parse_args()
    if not (args.data / "train.en.gz").is_file():
        sys.exit(f"bench-bleu: Multi30k not found at {args.data}")
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = args.out / "bundle"
    preprocess_multi30k(args.data, bundle)
    report: dict[str, Any] = {"target": args.target, "config": str(args.config),
                              "precision": args.precision}
    ours = train_ours(args, bundle)
    report["nmt"] = {"curve": ours, "minutes_to_target": minutes_to(ours, args.target)}
    if args.peers:
        reached = report["nmt"]["minutes_to_target"]
        limit = args.onmt_minutes or (3 * reached if reached else args.minutes)
        theirs = train_onmt(args, limit)
        report["onmt"] = {"curve": theirs, "minutes_to_target": minutes_to(theirs, args.target),
                          "minutes_trained": round(limit, 2)}
    (args.out / "time_to_bleu.json").write_text(json.dumps(report, indent=2) + "\n")
    for name in ("nmt", "onmt"):
        if name not in report:
            continue
        system = report[name]
        print(f"{name}: validation BLEU (greedy) by wall minutes")
        print(f"{'minutes':>10}{'update':>10}{'BLEU':>8}")
        for point in system["curve"]:
            print(f"{point['minutes']:>10}{point['step']:>10}{point['bleu']:>8}")
        got = system["minutes_to_target"]
        print(f"minutes to BLEU {args.target}: {got if got is not None else 'not reached'}\n")
    print(args.out / "time_to_bleu.json")


if __name__ == "__main__":
    main()
