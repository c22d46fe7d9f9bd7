"""`make bench-memory`: peak memory of `nmt translate` against the length of the input file.

Translation streams its input in windows and writes each one out before reading the next, so a
file of a million lines should need no more memory than one of ten thousand. This script checks
that with real commands: it builds input files by cycling Multi30k test_2016_flickr (sizes from
--lines), translates each with greedy search to a file, and reports wall time, peak RSS and the
ratio of each peak to the smallest file's. A million lines with the reference model would take
hours on 2 cores, so by default it trains a small model (embeddings 64, hidden 128, 1,000 updates)
on Multi30k en-de first and translates with --precision int8; --model uses an existing one. Not a
test: run it on an otherwise idle machine.

    python recipes/bench/memory.py [--lines 10000,1000000] [--model RUN_DIR]
        [--out bench-out/memory]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import sys
from pathlib import Path

from bench import NMT, ROOT, preprocess_multi30k, run


def small_model(data: Path, out: Path) -> Path:
    """Preprocess Multi30k en-de and train a small model for 1,000 updates."""
    bundle, model = out / "bundle", out / "small-model"
    if not (bundle / "manifest.json").is_file():
        preprocess_multi30k(data, bundle)
    if not (model / "best.pt").is_file():
        # Enough updates to learn to stop: an untrained model repeats a word up to the length
        # limit, which makes the run ten times slower without telling anything about memory.
        run([*NMT, "-q", "train", "--data", str(bundle), "--out", str(model), "--emb-size", "64",
             "--hidden-size", "128", "--dropout", "0.1", "--batch-tokens", "1200", "--lr", "0.003",
             "--schedule", "constant", "--max-steps", "1000", "--max-epochs", "0",
             "--valid-every", "1000"])
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "multi30k")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "memory")
    parser.add_argument("--lines", default="10000,1000000", help="input sizes, comma-separated")
    parser.add_argument("--model", type=Path, help="an existing run directory or checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not (args.data / "test_2016_flickr.en.gz").is_file():
        sys.exit(f"bench-memory: Multi30k not found at {args.data}")
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.model or small_model(args.data, args.out)
    with gzip.open(args.data / "test_2016_flickr.en.gz", "rt", encoding="utf-8") as handle:
        source = handle.read().splitlines()
    sizes = sorted(int(n) for n in args.lines.split(","))
    results = []
    for n in sizes:
        text, hyp = args.out / f"input-{n}.en", args.out / f"output-{n}.de"
        with open(text, "w", encoding="utf-8") as handle:
            handle.writelines(line + "\n" for line in itertools.islice(itertools.cycle(source), n))
        timing = run([*NMT, "-q", "translate", "-m", str(model), "-i", str(text), "-o", str(hyp),
                      "--beam", "1", "--precision", "int8", "--threads", str(args.threads)])
        with open(hyp, "rb") as handle:
            written = sum(1 for _ in handle)
        if written != n:
            sys.exit(f"bench-memory: {n} input lines gave {written} output lines")
        results.append({"lines": n, **timing, "sentences_per_s": round(n / timing["wall_s"], 1),
                        "ratio_to_smallest": (
                            round(timing["peak_rss_mb"] / results[0]["peak_rss_mb"], 3)
                            if results else 1.0)})
        text.unlink()
    report = {"model": str(model), "search": "greedy", "results": results}
    (args.out / "memory.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'lines':>10}{'wall s':>10}{'sent/s':>10}{'peak MB':>10}{'x smallest':>12}")
    for r in results:
        print(f"{r['lines']:>10}{r['wall_s']:>10}{r['sentences_per_s']:>10}{r['peak_rss_mb']:>10}"
              f"{r['ratio_to_smallest']:>12}")
    print(f"\n{args.out / 'memory.json'}")


if __name__ == "__main__":
    main()
