"""`nmt evaluate`: sacreBLEU scores of a hypothesis file, or of a model's translation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from nmt_cli import console
from nmt_cli.options import Device, Threads, with_decoding_options


@with_decoding_options
def evaluate(
    ref: Annotated[
        list[str], typer.Option(help="Reference file; with a multi-task model, TASK=FILE (repeat).")
    ],
    hyp: Annotated[
        Path | None, typer.Option(help="Hypothesis file (detokenized, one line per reference).")
    ] = None,
    model: Annotated[
        list[Path] | None,
        typer.Option("--model", "-m", help="Translate --src with this model, then score "
                     "(several: an ensemble, as in `nmt translate`)."),
    ] = None,
    src: Annotated[
        Path | None, typer.Option(help="Source file to translate (with --model).")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Decoder to score (with --model and a plain --ref).")
    ] = None,
    ter: Annotated[bool, typer.Option(help="Also compute TER.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
    device: Device = "auto",
    threads: Threads = 0,
    **decoding: Any,
) -> None:
    """Score with sacreBLEU (BLEU, chrF; TER on request) and print the signatures.

    With --model, the source is translated exactly as `nmt translate` would with the same
    decoding options (the same defaults), then scored."""
    from nmt.errors import ConfigError
    from nmt.evaluate import read_pair, score_lines

    metrics = ("bleu", "chrf", "ter") if ter else ("bleu", "chrf")
    with console.cli_errors():
        if (hyp is None) == (not model):
            raise ConfigError("give either --hyp, or --model with --src")
        report: dict[str, list] = {}
        if hyp is not None:
            if len(ref) != 1:
                raise ConfigError("--hyp takes exactly one --ref")
            hyps, refs = read_pair(hyp, Path(ref[0]))
            report[task or "hyp"] = score_lines(hyps, refs, metrics)
        else:
            if src is None:
                raise ConfigError("--model needs --src")
            from nmt.config import DecodeOptions
            from nmt.device import choose_device, set_threads
            from nmt.translate import load_translator, translations

            opts = DecodeOptions(**decoding)
            set_threads(threads)
            translator = load_translator(model, choose_device(device), opts.precision)
            pairs = [r.split("=", 1) if "=" in r and not Path(r).exists() else [task, r]
                     for r in ref]
            for name, path in pairs:
                name = translator.check_task(name)
                sources, refs = read_pair(src, Path(path))
                outputs = translations(translator, sources, opts, name)
                report[name] = score_lines([o.text for o in outputs], refs, metrics)
        _print(report, as_json)


def _print(report: dict[str, list], as_json: bool) -> None:
    if as_json:
        out = {name: {s.name: {"score": round(s.score, 4), "signature": s.signature}
                      for s in scores}
               for name, scores in report.items()}
        typer.echo(json.dumps(out if len(out) > 1 else next(iter(out.values())), indent=2))
        return
    for name, scores in report.items():
        prefix = f"{name}\t" if len(report) > 1 else ""
        for score in scores:
            typer.echo(f"{prefix}{score.text}")
            typer.echo(f"{prefix}  signature: {score.signature}")
