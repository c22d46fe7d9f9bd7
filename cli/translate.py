"""`nmt translate`: raw text in, translations out (files or stdin/stdout)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from nmt.textio import Errors
from nmt_cli import console
from nmt_cli.options import Device, RunPath, Threads, with_decoding_options


@with_decoding_options
def translate(
    model: RunPath,
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
    """Translate text with a trained model: one output line per input line, always."""
    import itertools

    from nmt.config import DecodeOptions
    from nmt.device import choose_device, set_threads
    from nmt.errors import ConfigError
    from nmt.textio import (
        ResumableOutput,
        available_windows,
        count_lines,
        decode_lines,
        read_lines,
    )
    from nmt.translate import load_translator, search_options, translate_windows

    with console.cli_errors():
        opts = DecodeOptions(**decoding)
        if resume and (output is None or input is None):
            raise ConfigError("--resume needs --input and --output files")
        set_threads(threads)
        translator = load_translator(model, choose_device(device), opts.precision)
        sink = ResumableOutput(output, resume, group=n_best) if output else None
        skip = sink.done if sink else 0
        # The progress bar's total costs a pass over the file: only count when a bar is shown.
        show_bar = input is not None and not console.is_quiet() and sys.stderr.isatty()
        total = count_lines(input) if show_bar else None
        if input is None and _has_fd(sys.stdin):
            # Lines are translated as they arrive: a pipe kept open gets answers line by line.
            windows = available_windows(sys.stdin.fileno(), "<stdin>", opts.window, errors)
        else:
            source = (read_lines(input, errors) if input
                      else decode_lines(sys.stdin.buffer, "<stdin>", errors))
            lines = itertools.islice(source, skip, None)
            windows = iter(lambda: list(itertools.islice(lines, opts.window)), [])
        name = str(input or "<stdin>")
        warn = lambda n: console.warn(  # noqa: E731
            f"{name}:{n}: line truncated to {translator.max_src_len} tokens"
        )
        write = sink.write_line if sink else (lambda text: sys.stdout.write(text + "\n"))
        dumps = []
        try:
            with console.progress() as bar:
                job = bar.add_task("translating", total=total, completed=skip)
                stream = translate_windows(translator, windows, task, search_options(opts, n_best),
                                           opts.batch_size, opts.batch_tokens, warn,
                                           attention_lines
                                           if (attention_plot or attention_json) else 0)
                for number, result in enumerate(stream, start=skip + 1):
                    if n_best == 1:
                        write(result.text)
                    else:
                        hyps = result.hyps or [("", [], 0.0, None)]
                        for text, _, score, _ in (hyps + hyps[-1:] * n_best)[:n_best]:
                            write(f"{number - 1} ||| {text} ||| {score:.4f}")
                    if (number <= attention_lines and result.hyps
                            and result.hyps[0][3] is not None):
                        dumps.append((number, result))
                    bar.advance(job)
                    if sink is None:
                        sys.stdout.flush()  # a reader at the other end of a pipe waits for it
                    elif number % opts.window == 0:
                        sink.flush()
        except BaseException:
            if sink:
                sink.close()
            raise
        if sink:
            sink.commit()
        sys.stdout.flush()
        _write_attention(dumps, attention_plot, attention_json)


def _has_fd(stream) -> bool:
    """A real file descriptor (not an in-memory stream, as in tests or embedding programs)."""
    try:
        stream.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    return True


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
