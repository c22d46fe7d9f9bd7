"""Write the toy reversal task: random symbol sequences (length 5-12) and their reversals.

The demo's fallback when Multi30k can be had neither locally nor from the hub; also a quick
check that a model learns.
Usage: python recipes/toy/make_data.py OUT_DIR [--train 20000] [--seed 1]
Writes OUT_DIR/{train,valid,test}.{sym,rev}.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SYMBOLS = [chr(c) for c in range(ord("a"), ord("t"))]


def write_split(out: Path, split: str, size: int, rng: random.Random) -> None:
    with open(out / f"{split}.sym", "w") as src, open(out / f"{split}.rev", "w") as tgt:
        for _ in range(size):
            seq = [rng.choice(SYMBOLS) for _ in range(rng.randint(5, 12))]
            src.write(" ".join(seq) + "\n")
            tgt.write(" ".join(reversed(seq)) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    for split, size in (("train", args.train), ("valid", 500), ("test", 500)):
        write_split(args.out, split, size, rng)


if __name__ == "__main__":
    main()
