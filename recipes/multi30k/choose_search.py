"""Pick the decoding settings with the best validation BLEU from a grid of scored translations.

    python3 choose_search.py DIR      DIR holds MODEL_bBEAM_aALPHA.json files (`nmt evaluate --json`
                                      of the validation translations); prints the options of the
                                      best, e.g. `-m RUN/averaged.pt --beam 10 --alpha 1.0`, and
                                      writes DIR/choice.json with every score

MODEL is `best` (the run's best checkpoint) or `averaged` (`nmt average`); the printed -m names
the file beside DIR's parent run directory. Ties keep the first in (model, beam, alpha) order.
Only validation scores are read: test data never takes part in a choice.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

NAME = re.compile(r"^(?P<model>[a-z]+)_b(?P<beam>\d+)_a(?P<alpha>[0-9.]+)\.json$")


def grid(directory: Path) -> list[dict]:
    """Every scored setting in `directory`, in (model, beam, alpha) order."""
    rows = []
    for path in sorted(directory.glob("*.json")):
        match = NAME.match(path.name)
        if match is None:
            continue
        bleu = json.loads(path.read_text())["BLEU"]["score"]
        rows.append({"model": match["model"], "beam": int(match["beam"]),
                     "alpha": float(match["alpha"]), "val_bleu": bleu})
    if not rows:
        raise SystemExit(f"choose_search: no MODEL_bBEAM_aALPHA.json scores in {directory}")
    return sorted(rows, key=lambda r: (r["model"] != "best", r["model"], r["beam"], r["alpha"]))


def choose(directory: Path) -> dict:
    rows = grid(directory)
    best = max(rows, key=lambda r: r["val_bleu"])  # max keeps the first of equal scores
    return {"choice": best, "grid": rows}


def main() -> None:
    directory = Path(sys.argv[1])
    result = choose(directory)
    (directory / "choice.json").write_text(json.dumps(result, indent=1) + "\n")
    best = result["choice"]
    print(f"-m {directory.parent / (best['model'] + '.pt')} --beam {best['beam']} "
          f"--alpha {best['alpha']}")


if __name__ == "__main__":
    main()
