"""`nmt score`: forced decoding, the log-probability a model gives each given translation."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from nmt_cli import console
from nmt_cli.options import Device, RunPaths, Threads, with_scoring_options


@with_scoring_options
def score(
    model: RunPaths,
    src: Annotated[Path, typer.Option(help="Source sentences, one per line.")],
    tgt: Annotated[
        Path, typer.Option(help="Their translations to score, line by line (same line count).")
    ],
    task: Annotated[
        str | None, typer.Option(help="Decoder to score with when the model has several.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line instead of TSV.")
    ] = False,
    errors: Annotated[
        str, typer.Option(help="Invalid UTF-8: strict (error) or replace.")
    ] = "strict",
    device: Device = "auto",
    threads: Threads = 0,
    **decoding: Any,
) -> None:
    """Score translations with a model (forced decoding): one line per pair, in order.

    TSV columns: total, per_token, normalised.
    total: log P(target + EOS | source); per_token: total / (target tokens + 1);
    normalised: total / ((5 + target tokens + 1) / 6) ** alpha, what beam search ranks by.
    --json: one {"line", "total", "per_token", "normalised", "tokens"} object per line.
    An empty source line is not scored: nan (TSV), null (JSON).
    Files of different lengths are an error naming the shorter one.
    Several -m score with their ensemble (as `nmt translate` does)."""
    from nmt.config import DecodeOptions
    from nmt.device import choose_device, set_threads
    from nmt.errors import ConfigError
    from nmt.score import read_pairs, score_pairs
    from nmt.translate import load_translator

    with console.cli_errors():
        opts = DecodeOptions(**decoding)
        if errors not in ("strict", "replace"):
            raise ConfigError(f"--errors must be strict or replace, got {errors!r}")
        set_threads(threads)
        translator = load_translator(model, choose_device(device), opts.precision)
        pairs = read_pairs(src, tgt, errors)
        scores = score_pairs(
            translator, pairs, task, opts.alpha, opts.batch_size, opts.batch_tokens, opts.window
        )
        for number, found in enumerate(scores, start=1):
            if as_json:
                values = (
                    {
                        "total": found.total,
                        "per_token": found.per_token,
                        "normalised": found.normalised,
                        "tokens": found.tokens,
                    }
                    if found
                    else dict.fromkeys(("total", "per_token", "normalised", "tokens"))
                )
                sys.stdout.write(json.dumps({"line": number, **values}) + "\n")
            elif found:
                sys.stdout.write(
                    f"{found.total:.6f}\t{found.per_token:.6f}\t{found.normalised:.6f}\n"
                )
            else:
                sys.stdout.write("nan\tnan\tnan\n")
        sys.stdout.flush()
