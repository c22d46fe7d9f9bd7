"""Choose the data of `make demo` and write OUT/data.mk, the settings of its next steps.

In order: the local Multi30k (MULTI30K/train.en.gz and its siblings); else Multi30k en-de from
the Hugging Face hub (`--hf-dataset`, train/validation/test with en/de columns), loaded here
through `nmt preprocess`'s own loader so that a dataset that cannot be fetched is known before
the demo starts; else, only when the hub is out of reach (no network), the toy reversal task,
with one line saying why. A hub dataset that loads but is wrong stops the demo with its error.

Usage: python recipes/demo_data.py OUT [--multi30k DIR] [--hf-dataset NAME_OR_DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from huggingface_hub.utils import logging as hub_logging

from nmt.corpus import open_hf_splits
from nmt.errors import NmtError, SystemFailure

HF_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
TOY = Path(__file__).parent / "toy" / "make_data.py"


def local(multi30k: Path) -> dict[str, str]:
    return {
        "SRC": "en",
        "TGT": "de",
        "CORPUS": f"--train {multi30k}/train --valid {multi30k}/val "
        f"--test {multi30k}/test_2016_flickr",
        "TOKENIZER": "--tokenizer subword --vocab-size 4000",
        "TEST_SRC": f"{multi30k}/test_2016_flickr.en.gz",
        "TEST_REF": f"{multi30k}/test_2016_flickr.de.gz",
    }


def hub(name: str, out: Path) -> dict[str, str]:
    """Test text from the bundle: preprocess keeps the test split's (normalised) lines."""
    splits = ",".join(f"{ours}={theirs}" for ours, theirs in HF_SPLITS.items())
    return {
        "SRC": "en",
        "TGT": "de",
        "CORPUS": f"--hf-dataset {name} --hf-split {splits}",
        "TOKENIZER": "--tokenizer subword --vocab-size 4000",
        "TEST_SRC": f"{out}/bundle/test.src.txt",
        "TEST_REF": f"{out}/bundle/test.de.txt",
    }


def toy(out: Path) -> dict[str, str]:
    subprocess.run([sys.executable, str(TOY), str(out / "toy")], check=True)
    return {
        "SRC": "sym",
        "TGT": "rev",
        "CORPUS": f"--train {out}/toy/train --valid {out}/toy/valid --test {out}/toy/test",
        "TOKENIZER": "--tokenizer word",
        "TEST_SRC": f"{out}/toy/test.sym",
        "TEST_REF": f"{out}/toy/test.rev",
    }


def choose(out: Path, multi30k: Path, hf_dataset: str) -> tuple[dict[str, str], str]:
    """The demo's make variables, and one line that says which data and why."""
    if (multi30k / "train.en.gz").is_file():
        return local(multi30k), f"demo data: Multi30k en-de from {multi30k}"
    print(f"demo data: looking for {hf_dataset} (Multi30k is not in {multi30k})", flush=True)
    try:
        open_hf_splits(hf_dataset, "", HF_SPLITS, ["en", "de"], list(HF_SPLITS))
    except SystemFailure as err:  # the hub is out of reach; any other failure stops the demo
        return toy(out), f"demo data: the toy reversal task, as the hub is out of reach ({err})"
    return hub(hf_dataset, out), f"demo data: Multi30k en-de from {hf_dataset} (Hugging Face)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--multi30k", type=Path, default=Path("../shared/data/multi30k"))
    parser.add_argument("--hf-dataset", default="bentrevett/multi30k")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    hub_logging.set_verbosity_error()  # not a line per retry without a network
    try:
        variables, line = choose(args.out, args.multi30k, args.hf_dataset)
    except NmtError as err:
        sys.exit(f"error: {err}")
    lines = [f"{name} := {value}\n" for name, value in variables.items()]
    (args.out / "data.mk").write_text(f"# {line}\n" + "".join(lines), encoding="utf-8")
    print(line, flush=True)


if __name__ == "__main__":
    main()
