"""`nmt evaluate`: sacreBLEU scores of hypothesis files, or of a model's translation, and paired
significance tests between systems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from nmt.evaluate import Comparison, Metrics, Tokenize
from nmt_cli import console
from nmt_cli.options import Device, Threads, with_decoding_options


@with_decoding_options
def evaluate(
    ref: Annotated[
        list[str],
        typer.Option(metavar="FILE",
                     help="Reference file; repeat for several references of the same lines. "
                     "With a multi-task --model, TASK=FILE (repeat)."),
    ],
    hyp: Annotated[
        list[Path] | None,
        typer.Option(metavar="FILE",
                     help="Hypothesis file (detokenized, one line per reference). Repeat to "
                     "compare systems: the first is the baseline of the paired tests."),
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
    lowercase: Annotated[
        bool, typer.Option(help="Case-insensitive BLEU and chrF (TER always is).")
    ] = False,
    tokenize: Annotated[
        Tokenize,
        typer.Option(help="sacreBLEU's tokenizer for BLEU (ja-mecab and ko-mecab need "
                     "sacrebleu\\[ja] or sacrebleu\\[ko]; flores101/200 download a model)."),
    ] = "13a",
    sentences: Annotated[
        bool, typer.Option(help="Print one JSON line per sentence (and --hyp) with its scores "
                           "(BLEU with effective order), instead of the corpus scores.")
    ] = False,
    resamples: Annotated[
        int, typer.Option(min=1, help="Paired bootstrap resamples (with several --hyp).")
    ] = 1000,
    trials: Annotated[
        int, typer.Option(min=1, help="Paired approximate randomization trials (with several "
                          "--hyp).")
    ] = 10000,
    paired_seed: Annotated[
        int, typer.Option(min=1, help="Seed of the paired tests (12345 is sacreBLEU's); "
                          "--seed is the seed of --sample.")
    ] = 12345,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
    device: Device = "auto",
    threads: Threads = 0,
    **decoding: Any,
) -> None:
    """Score with sacreBLEU (BLEU, chrF; TER on request) and print the signatures.

    With several --hyp, each is compared with the first by sacreBLEU's paired bootstrap
    resampling and paired approximate randomization: scores, 95% confidence intervals and
    p-values.

    With --model, the source is translated exactly as `nmt translate` would with the same
    decoding options (the same defaults), then scored."""
    from nmt.errors import ConfigError
    from nmt.evaluate import compare, read_aligned, read_pair, score_corpus, score_lines

    metrics = Metrics(("bleu", "chrf", "ter") if ter else ("bleu", "chrf"), lowercase, tokenize)
    with console.cli_errors():
        if bool(hyp) == bool(model):
            raise ConfigError("give either --hyp, or --model with --src")
        report: dict[str, list] = {}
        if hyp:
            texts = read_aligned(*hyp, *map(Path, ref))
            refs = texts[len(hyp) :]
            systems = [(str(path), texts[i]) for i, path in enumerate(hyp)]
            if sentences:
                _print_sentences(systems, refs, metrics)
                return
            if len(systems) > 1:
                _print_comparison(compare(systems, refs, metrics, resamples, trials, paired_seed),
                                  as_json)
                return
            report[task or "hyp"] = score_corpus(systems[0][1], refs, metrics)
        else:
            if sentences:
                raise ConfigError("--sentences scores --hyp files: translate with "
                                  "`nmt translate` first")
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


def _print_sentences(systems: list[tuple[str, list[str]]], refs: list[list[str]],
                     metrics: Metrics) -> None:
    from nmt.evaluate import score_sentences

    for name, hyps in systems:
        for number, scores in enumerate(score_sentences(hyps, refs, metrics), start=1):
            rounded = {metric: round(value, 4) for metric, value in scores.items()}
            typer.echo(json.dumps({"line": number, "hyp": name, **rounded}, ensure_ascii=False))


def _print_comparison(comparisons: list[Comparison], as_json: bool) -> None:
    """A table per metric (or one JSON object): score, bootstrap mean and 95% confidence
    interval, and the p-values of the difference from the baseline (the first row)."""
    if as_json:
        out: dict[str, Any] = {"baseline": comparisons[0].systems[0].name}
        for c in comparisons:
            out[c.metric] = {
                "bootstrap_signature": c.bootstrap_signature,
                "ar_signature": c.ar_signature,
                "systems": [{"hyp": s.name, "score": round(s.score, 4), "mean": round(s.mean, 4),
                             "ci": round(s.ci, 4), "p_bootstrap": s.p_bootstrap, "p_ar": s.p_ar}
                            for s in c.systems],
            }
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    header = ("system", "score", "mean ± 95% CI", "p (bootstrap)", "p (AR)")
    for c in comparisons:
        rows = [header] + [
            (s.name, f"{s.score:.2f}", f"{s.mean:.2f} ± {s.ci:.2f}",
             *(("baseline", "") if s.p_bootstrap is None
               else (_p_value(s.p_bootstrap), _p_value(s.p_ar))))
            for s in c.systems
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        typer.echo(c.metric)
        for row in rows:
            typer.echo("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                       .rstrip())
        typer.echo(f"  bootstrap signature: {c.bootstrap_signature}")
        typer.echo(f"  AR signature: {c.ar_signature}")
    typer.echo("* p < 0.05: the difference from the baseline is unlikely to be chance.")


def _p_value(p: float | None) -> str:
    return "" if p is None else f"{p:.4f}" + (" *" if p < 0.05 else "")

