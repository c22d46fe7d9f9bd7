"""Markdown table of the multi-task recipe's scores: results/SPLIT.{single,multi}.TASK.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

results = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
tasks = sys.argv[2].split(",") if len(sys.argv) > 2 else ["de", "fr", "cs"]
splits = ("val", "test_2016_flickr")


def score(split: str, kind: str, task: str, metric: str) -> float:
    return json.loads((results / f"{split}.{kind}.{task}.json").read_text())[metric]["score"]


print("| direction | model | " + " | ".join(f"{s} BLEU | {s} chrF" for s in splits) + " |")
print("|---|---|" + "---|---|" * len(splits))
for task in tasks:
    for kind in ("single", "multi"):
        cells = [f"{score(s, kind, task, m):.2f}" for s in splits for m in ("BLEU", "chrF2")]
        print(f"| en->{task} | {kind}-task | " + " | ".join(cells) + " |")
