"""Markdown table of the multi-task recipe's scores: results/SPLIT.{single,multi}.TASK.json (cased)
and SPLIT.{single,multi}.TASK.lc.json (lowercased)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

results = Path(sys.argv[1] if len(sys.argv) > 1 else "results")
tasks = sys.argv[2].split(",") if len(sys.argv) > 2 else ["de", "fr", "cs"]
splits = ("val", "test_2016_flickr")


def score(split: str, kind: str, task: str, metric: str, case: str = "") -> float:
    path = results / f"{split}.{kind}.{task}{case}.json"
    return json.loads(path.read_text())[metric]["score"]


def cells(split: str, kind: str, task: str) -> list[str]:
    values = (score(split, kind, task, "BLEU"), score(split, kind, task, "BLEU", ".lc"),
              score(split, kind, task, "chrF2"))
    return [f"{v:.2f}" for v in values]


print("| direction | model | "
      + " | ".join(f"{s} BLEU | {s} BLEU lc | {s} chrF" for s in splits) + " |")
print("|---|---|" + "---|---|---|" * len(splits))
for task in tasks:
    for kind in ("single", "multi"):
        row = [cell for split in splits for cell in cells(split, kind, task)]
        print(f"| en->{task} | {kind}-task | " + " | ".join(row) + " |")
