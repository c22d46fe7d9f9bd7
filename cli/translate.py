"""`nmt translate`: raw text in, translations out (files or stdin/stdout)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from nmt.textio import Errors
from nmt_cli import console
from nmt_cli.options import Device, RunPaths, Threads, with_decoding_options


@with_decoding_options
def translate(
    model: RunPaths,
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="Input text; stdin if not given.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o",
                     help="Output file (written atomically); stdout if not given."),
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Decoder to use when the model has several.")
    ] = None,
    n_best: Annotated[
        int, typer.Option(min=1, help="Hypotheses per line; >1 writes 'i ||| text ||| score'.")
    ] = 1,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted --output after its last complete line "
                           "(n-best: its last complete group); give the same options again.")
    ] = False,
    errors: Annotated[
        Errors, typer.Option(help="Invalid UTF-8: strict (error) or replace.")
    ] = "strict",
    attention_plot: Annotated[
        Path | None, typer.Option(help="Write attention heatmaps (PNG) here.")
    ] = None,
    attention_json: Annotated[
        Path | None, typer.Option(help="Dump attention weights to this JSON file.")
    ] = None,
    attention_lines: Annotated[
        int, typer.Option(min=1, help="Lines whose attention is plotted/dumped.")
    ] = 10,
    device: Device = "auto",
    threads: Threads = 0,
    **decoding: Any,
) -> None:
    """Translate text with a trained model: one output line per input line, always.

    Several -m make an ensemble: the models' log-probabilities are averaged at each step (they
    must share their vocabularies); attention plots show the mean of the models' attention."""
    from nmt.config import DecodeOptions
    from nmt.device import choose_device, set_threads
    from nmt.textio import count_lines
    from nmt.translate import load_translator, translate_file

    with console.cli_errors():
        opts = DecodeOptions(**decoding)
        set_threads(threads)
        translator = load_translator(model, choose_device(device), opts.precision)
        name = str(input or "<stdin>")
        warn = lambda n: console.warn(  # noqa: E731
            f"{name}:{n}: line truncated to {translator.max_src_len} tokens"
        )
        # The progress bar's total costs a pass over the file: only count when a bar is shown.
        show_bar = input is not None and not console.is_quiet() and sys.stderr.isatty()
        with console.progress() as bar:
            job = bar.add_task("translating", total=count_lines(input) if show_bar else None)
            kept = translate_file(translator, input, output, opts, task, n_best, resume, errors,
                                  warn, attention_lines if (attention_plot or attention_json)
                                  else 0, lambda done: bar.update(job, completed=done))
        sys.stdout.flush()
        _write_attention(kept, attention_plot, attention_json)


def _write_attention(dumps, plot_dir: Path | None, json_path: Path | None) -> None:
    import json

    from nmt.textio import atomic_write

    if plot_dir:
        from nmt.plot import attention_heatmap

        plot_dir.mkdir(parents=True, exist_ok=True)
        for number, result in dumps:
            _, pieces, _, attn = result.hyps[0]
            attention_heatmap(attn.float().numpy(), result.source_pieces, pieces,
                              plot_dir / f"attention-{number:05d}.png")
    if json_path:
        records = [{"line": number, "src": result.source_pieces, "tgt": result.hyps[0][1],
                    "weights": result.hyps[0][3].float().tolist()} for number, result in dumps]
        with atomic_write(json_path) as handle:
            json.dump(records, handle, ensure_ascii=False)
