"""Translation of text streams: raw text in, detokenized text out, one output line per input line.

Input is read in windows; inside a window sentences are sorted by length and batched (similar
lengths decode together), then written back in input order. Memory depends on the window, never on
the size of the input. An empty input line gives an empty output line without touching the model;
a line longer than the model's source limit is truncated (reported through `on_truncate`).
`translate_file` adds the output side: n-best formatting and an atomic, resumable output file.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt import checkpoint, search
from nmt.config import DecodeOptions
from nmt.data import pad_sequences
from nmt.encoder import EncoderOutput
from nmt.ensemble import Ensemble, Joint, check_compatible
from nmt.errors import ConfigError
from nmt.sampling import Sampler, Sampling
from nmt.textio import (
    ResumableOutput,
    available_windows,
    decode_lines,
    normalize,
    read_lines,
)
from nmt.vocab import EOS

# The source axis is padded to a multiple of this many positions for search: attention's sums
# over it then run over whole SIMD vectors, each position in the same lane whatever the batch's
# longest sentence, and padding adds exact zeros, so a sentence's sums do not depend on the batch.
SOURCE_BLOCK = 16


@dataclass(frozen=True)
class SearchOptions:
    beam: int = 5
    alpha: float = 1.0  # length normalisation
    n_best: int = 1
    len_a: float = 1.5  # max output length = len_a * source length + len_b
    len_b: int = 10
    max_output_len: int = 256
    sampling: Sampling | None = None  # draw each token instead of searching (sampling.py)


def search_options(decoding: DecodeOptions, n_best: int = 1) -> SearchOptions:
    sampling = None
    if decoding.sample:
        if n_best > 1:
            raise ConfigError("--sample draws one translation per line: use --n-best 1")
        sampling = Sampling(decoding.temperature, decoding.top_k, decoding.top_p, decoding.seed)
    return SearchOptions(decoding.beam, decoding.alpha, n_best, decoding.max_len_a,
                         decoding.max_len_b, sampling=sampling)


@dataclass
class Translation:
    """The n-best outputs of one input line (text, pieces, score, attention (T, S) or None)."""

    source_pieces: list[str]
    hyps: list[tuple[str, list[str], float, torch.Tensor | None]]

    @property
    def text(self) -> str:
        return self.hyps[0][0] if self.hyps else ""


class Translator:
    """A model (or an ensemble of models sharing vocabularies: ensemble.py) with its tokenizers
    and vocabularies, ready to translate batches of text. `model` is the first model."""

    def __init__(self, model, src_tokenizer, src_vocab, tgt_tokenizers, tgt_vocabs,
                 device: torch.device, max_src_len: int, tasks: tuple[str, ...]):
        self.models = tuple(model) if isinstance(model, Sequence) else (model,)
        self.model = self.models[0]
        self.src_tokenizer = src_tokenizer
        self.src_vocab = src_vocab
        self.tgt_tokenizers = tgt_tokenizers
        self.tgt_vocabs = tgt_vocabs
        self.device = device
        self.max_src_len = max_src_len
        self.tasks = tasks

    def check_task(self, task: str | None) -> str:
        """The decoder to use; None picks the only task, or is an error listing them."""
        if task is None:
            if len(self.tasks) == 1:
                return self.tasks[0]
            raise ConfigError(
                f"the model has several tasks; choose one with --task: {', '.join(self.tasks)}"
            )
        if task not in self.tasks:
            raise ConfigError(f"unknown task {task!r}; this model has: {', '.join(self.tasks)}")
        return task

    def prepare(self, line: str) -> tuple[list[str], list[int], bool]:
        """Raw line -> (pieces, ids, truncated)."""
        pieces = self.src_tokenizer.encode(normalize(line))
        truncated = len(pieces) > self.max_src_len
        pieces = pieces[: self.max_src_len]
        return pieces, self.src_vocab.encode(pieces), truncated

    def encode(self, batch: list[list[int]], task: str) -> tuple[search.StepDecoder,
                                                                  search.Encoded]:
        """The decoder of `task` and the encoded batch of non-empty id sequences, as search and
        forced decoding (score.py) step through them."""
        lengths = torch.tensor([len(ids) for ids in batch], dtype=torch.int64)
        src = pad_sequences(batch).to(self.device)  # (B, S)
        encs = [_pad_source(model.eval().encode(src, lengths)) for model in self.models]
        decoders = [model.decoders[task] for model in self.models]
        if len(decoders) == 1:
            return decoders[0], encs[0]
        return Ensemble(decoders), Joint(tuple(encs))

    @torch.inference_mode()
    def translate_ids(self, batch: list[list[int]], task: str, opts: SearchOptions,
                      return_attention: bool = False,
                      lines: Sequence[int] = ()) -> search.Hypotheses:
        """Search over one batch of non-empty id sequences; `lines` (their 0-based input line
        numbers) seed sampling."""
        lengths = torch.tensor([len(ids) for ids in batch], dtype=torch.int64)
        max_lengths = (
            (lengths.double() * opts.len_a + opts.len_b).long().clamp(max=opts.max_output_len)
        ).to(self.device)
        decoder, enc = self.encode(batch, task)
        if opts.sampling is not None:
            seeds = lines or range(len(batch))  # a batch on its own: its rows are its lines
            sampler = Sampler(opts.sampling, seeds, int(max_lengths.max()) + 1, self.device)
            return search.greedy(decoder, enc, max_lengths, return_attention, sampler)
        if opts.beam <= 1 and opts.n_best <= 1:
            return search.greedy(decoder, enc, max_lengths, return_attention)
        return search.beam_search(decoder, enc, opts.beam, max_lengths, opts.alpha, opts.n_best,
                                  return_attention)

    def detokenize(self, ids: list[int], task: str) -> tuple[str, list[str]]:
        pieces = self.tgt_vocabs[task].decode(ids + [EOS])
        return self.tgt_tokenizers[task].decode(pieces), pieces


def _pad_source(enc: EncoderOutput) -> EncoderOutput:
    """enc with zero states and False mask appended to a multiple of SOURCE_BLOCK positions."""
    batch, src_len, size = enc.states.shape
    extra = -src_len % SOURCE_BLOCK
    if not extra:
        return enc
    states = torch.cat([enc.states, enc.states.new_zeros(batch, extra, size)], dim=1)
    mask = torch.cat([enc.mask, enc.mask.new_zeros(batch, extra)], dim=1)
    return EncoderOutput(states, mask, enc.final, enc.final_cell)


def batches(
    order: list[int], lengths: list[int], batch_size: int, batch_tokens: int
) -> Iterator[list[int]]:
    """Cut a length-sorted order into batches of at most batch_size sentences / batch_tokens."""
    batch: list[int] = []
    for index in order:
        # The order is sorted by length, so the newest sentence is the batch's longest.
        too_many_tokens = batch_tokens and lengths[index] * (len(batch) + 1) > batch_tokens
        if batch and (len(batch) >= batch_size or too_many_tokens):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def translate_window(translator: Translator, lines: list[str], task: str, opts: SearchOptions,
                     batch_size: int, batch_tokens: int = 0, return_attention: bool = False,
                     first_line: int = 0) -> tuple[list[Translation], list[int]]:
    """Translate one window of lines (the first is input line `first_line`, 0-based); returns
    results in input order and the truncated line indices."""
    prepared = [translator.prepare(line) for line in lines]
    truncated = [i for i, (_, _, cut) in enumerate(prepared) if cut]
    results = [Translation(pieces, []) for pieces, _, _ in prepared]
    lengths = [len(ids) for _, ids, _ in prepared]
    order = sorted((i for i in range(len(lines)) if lengths[i]), key=lambda i: lengths[i])
    for batch in batches(order, lengths, batch_size, batch_tokens):
        hyps = translator.translate_ids([prepared[i][1] for i in batch], task, opts,
                                        return_attention, [first_line + i for i in batch])
        for row, index in enumerate(batch):
            for k, ids in enumerate(hyps.tokens[row]):
                text, pieces = translator.detokenize(list(ids), task)
                attn = None
                if hyps.attention is not None:  # (T, S_batch) -> (T, S) of this sentence
                    attn = hyps.attention[row][k][:, : lengths[index]]
                results[index].hyps.append((text, pieces, hyps.scores[row][k], attn))
    return results, truncated


def translate_stream(translator: Translator, lines: Iterable[str], task: str | None,
                     opts: SearchOptions, batch_size: int = 64, batch_tokens: int = 0,
                     window: int = 2000, on_truncate: Callable[[int], None] | None = None,
                     attention_lines: int = 0) -> Iterator[Translation]:
    """Translations in input order, one per input line, reading `window` lines at a time."""
    iterator = iter(lines)
    windows = iter(lambda: list(itertools.islice(iterator, window)), [])
    return translate_windows(translator, windows, task, opts, batch_size, batch_tokens,
                             on_truncate, attention_lines)


def translate_windows(translator: Translator, windows: Iterable[list[str]], task: str | None,
                      opts: SearchOptions, batch_size: int = 64, batch_tokens: int = 0,
                      on_truncate: Callable[[int], None] | None = None,
                      attention_lines: int = 0, first_line: int = 0) -> Iterator[Translation]:
    """Translations of successive windows of lines, in input order; the first line is input
    line `first_line` (0-based; after a resume, the lines already done).

    `on_truncate(line_number)` (1-based) is called for each line cut to the model's limit;
    attention weights are kept for the first `attention_lines` lines only.
    """
    task = translator.check_task(task)
    start = first_line
    for chunk in windows:
        want_attention = start < attention_lines
        results, truncated = translate_window(translator, chunk, task, opts, batch_size,
                                              batch_tokens, want_attention, start)
        if on_truncate:
            for index in truncated:
                on_truncate(start + index + 1)
        yield from results
        start += len(chunk)


def read_windows(source: Path | Iterable[str] | None, window: int, errors: str = "strict",
                 skip: int = 0) -> Iterator[list[str]]:
    """Windows of input lines after the first `skip`: from a file, from lines given, or (None)
    from stdin, where lines are answered as they arrive (a pipe kept open gets answers line by
    line)."""
    if source is None and _has_fd(sys.stdin):
        return available_windows(sys.stdin.fileno(), "<stdin>", window, errors)
    if source is None:
        lines: Iterable[str] = decode_lines(sys.stdin.buffer, "<stdin>", errors)
    elif isinstance(source, (str, Path)):
        lines = read_lines(source, errors)
    else:
        lines = source
    rest = itertools.islice(lines, skip, None)
    return iter(lambda: list(itertools.islice(rest, window)), [])


def _has_fd(stream) -> bool:
    """A real file descriptor (not an in-memory stream, as in tests or embedding programs)."""
    try:
        stream.fileno()
    except (OSError, ValueError, AttributeError):
        return False
    return True


def translations(translator: Translator, source: Path | Iterable[str] | None,
                 opts: DecodeOptions, task: str | None = None, n_best: int = 1, skip: int = 0,
                 errors: str = "strict", on_truncate: Callable[[int], None] | None = None,
                 attention_lines: int = 0) -> Iterator[Translation]:
    """What `nmt translate` and `nmt evaluate -m` run: the translations of `source` (a file,
    lines, or None for stdin) after its first `skip` lines, with the decoding options given."""
    _check_errors(errors)
    windows = read_windows(source, opts.window, errors, skip)
    return translate_windows(translator, windows, task, search_options(opts, n_best),
                             opts.batch_size, opts.batch_tokens, on_truncate, attention_lines,
                             first_line=skip)


def _check_errors(errors: str) -> None:
    if errors not in ("strict", "replace"):
        raise ConfigError(f"--errors must be strict or replace, got {errors!r}")


def output_lines(number: int, result: Translation, n_best: int) -> list[str]:
    """The output of input line `number` (1-based): its text, or with n_best > 1 exactly n_best
    lines 'i ||| text ||| score' (i 0-based; the last hypothesis repeated where fewer finished)."""
    if n_best == 1:
        return [result.text]
    hyps = result.hyps or [("", [], 0.0, None)]
    return [f"{number - 1} ||| {text} ||| {score:.4f}"
            for text, _, score, _ in (hyps + hyps[-1:] * n_best)[:n_best]]


def translate_file(translator: Translator, source: Path | None, output: Path | None,
                   opts: DecodeOptions, task: str | None = None, n_best: int = 1,
                   resume: bool = False, errors: str = "strict",
                   on_truncate: Callable[[int], None] | None = None, attention_lines: int = 0,
                   on_line: Callable[[int], None] | None = None) -> list[tuple[int, Translation]]:
    """Translate `source` (None: stdin) into `output` (None: stdout, flushed line by line).

    The output file is written as PATH.partial and renamed when complete; `resume` continues an
    interrupted one after its last whole line (n-best: whole group), with the same options.
    `on_line(n)` is told the number of input lines done, first the ones a resume skips. Returns
    the translations of the first `attention_lines` lines that carry attention weights.
    """
    if resume and (output is None or source is None):
        raise ConfigError("--resume needs --input and --output files")
    _check_errors(errors)  # before the output file is started
    sink = ResumableOutput(output, resume, group=n_best) if output else None
    skip = sink.done if sink else 0
    write = sink.write_line if sink else (lambda text: sys.stdout.write(text + "\n"))
    if on_line:
        on_line(skip)
    kept = []
    try:
        stream = translations(translator, source, opts, task, n_best, skip, errors, on_truncate,
                              attention_lines)
        for number, result in enumerate(stream, start=skip + 1):
            for line in output_lines(number, result, n_best):
                write(line)
            if number <= attention_lines and result.hyps and result.hyps[0][3] is not None:
                kept.append((number, result))
            if sink is None:
                sys.stdout.flush()  # a reader at the other end of a pipe waits for it
            elif number % opts.window == 0:
                sink.flush()
            if on_line:
                on_line(number)
    except BaseException:
        if sink:
            sink.close()
        raise
    if sink:
        sink.commit()
    return kept


def load_translator(paths: Path | Sequence[Path], device: torch.device,
                    precision: str = "fp32") -> Translator:
    """Rebuild model, tokenizers and vocabularies from a run or checkpoint (no code is run from
    it); several make an ensemble (ensemble.py), which must share the vocabularies.

    `precision` int8 (CPU only) or bf16 runs the decoders' multiplies in low precision
    (precision.py); fp32 is the plain model; auto is `precision.auto_precision(device)`.
    """
    from nmt.kernels.shapes import pad_output_layers
    from nmt.precision import choose_precision, lower_decoders

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ConfigError("no model given")
    precision = choose_precision(precision, device)
    loaded = [checkpoint.load_model(path, device) for path in paths]
    check_compatible(loaded)
    for one in loaded:
        model = pad_output_layers(one.model)
        for decoder in model.decoders.values():
            decoder.tabulate_inputs()  # before the swap: the table is float32
        lower_decoders(model, precision)
    first = loaded[0]
    return Translator([one.model for one in loaded], first.meta.src_tokenizer,
                      first.meta.src_vocab, first.meta.tgt_tokenizers, first.meta.tgt_vocabs,
                      device, min(one.max_len for one in loaded), first.tasks)
