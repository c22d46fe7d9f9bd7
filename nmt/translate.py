"""Translation of text streams: raw text in, detokenized text out, one output line per input line.

Input is read in windows; inside a window sentences are sorted by length and batched (similar
lengths decode together), then written back in input order. Memory depends on the window, never on
the size of the input. An empty input line gives an empty output line without touching the model;
a line longer than the model's source limit is truncated (reported through `on_truncate`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from nmt import checkpoint, runlog, search
from nmt.config import PRECISIONS, DecodeOptions
from nmt.data import pad_sequences
from nmt.encoder import EncoderOutput
from nmt.errors import CheckpointError, ConfigError, DataError
from nmt.textio import normalize
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


def search_options(decoding: DecodeOptions, n_best: int = 1) -> SearchOptions:
    return SearchOptions(decoding.beam, decoding.alpha, n_best, decoding.max_len_a,
                         decoding.max_len_b)


@dataclass
class Translation:
    """The n-best outputs of one input line (text, score, attention (T, S) or None)."""

    source_pieces: list[str]
    hyps: list[tuple[str, list[str], float, torch.Tensor | None]]

    @property
    def text(self) -> str:
        return self.hyps[0][0] if self.hyps else ""


class Translator:
    """A model with its tokenizers and vocabularies, ready to translate batches of text."""

    def __init__(self, model, src_tokenizer, src_vocab, tgt_tokenizers, tgt_vocabs,
                 device: torch.device, max_src_len: int, tasks: tuple[str, ...]):
        self.model = model
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

    @torch.inference_mode()
    def translate_ids(self, batch: list[list[int]], task: str, opts: SearchOptions,
                      return_attention: bool = False) -> search.Hypotheses:
        """Search over one batch of non-empty id sequences."""
        lengths = torch.tensor([len(ids) for ids in batch], dtype=torch.int64)
        src = pad_sequences(batch)  # (B, S)
        max_lengths = (
            (lengths.double() * opts.len_a + opts.len_b).long().clamp(max=opts.max_output_len)
        )
        self.model.eval()
        enc = _pad_source(self.model.encode(src.to(self.device), lengths))
        decoder = self.model.decoders[task]
        if opts.beam <= 1 and opts.n_best <= 1:
            return search.greedy(decoder, enc, max_lengths.to(self.device), return_attention)
        return search.beam_search(decoder, enc, opts.beam, max_lengths.to(self.device),
                                  opts.alpha, opts.n_best, return_attention)

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


def _batches(
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
                     ) -> tuple[list[Translation], list[int]]:
    """Translate one window of lines; returns results in input order and the truncated line
    indices."""
    prepared = [translator.prepare(line) for line in lines]
    truncated = [i for i, (_, _, cut) in enumerate(prepared) if cut]
    results = [Translation(pieces, []) for pieces, _, _ in prepared]
    lengths = [len(ids) for _, ids, _ in prepared]
    order = sorted((i for i in range(len(lines)) if lengths[i]), key=lambda i: lengths[i])
    for batch in _batches(order, lengths, batch_size, batch_tokens):
        hyps = translator.translate_ids([prepared[i][1] for i in batch], task, opts,
                                        return_attention)
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
                      attention_lines: int = 0) -> Iterator[Translation]:
    """Translations of successive windows of lines, in input order.

    `on_truncate(line_number)` (1-based) is called for each line cut to the model's limit;
    attention weights are kept for the first `attention_lines` lines only.
    """
    task = translator.check_task(task)
    start = 0
    for chunk in windows:
        want_attention = start < attention_lines
        results, truncated = translate_window(translator, chunk, task, opts, batch_size,
                                              batch_tokens, want_attention)
        if on_truncate:
            for index in truncated:
                on_truncate(start + index + 1)
        yield from results
        start += len(chunk)


def find_checkpoint(path: Path) -> Path:
    """A run directory means its best checkpoint (else its newest); a file means itself."""
    path = Path(path)
    if path.is_dir():
        if (path / runlog.BEST).is_file():
            return path / runlog.BEST
        found = checkpoint.step_checkpoints(path)
        if not found:
            raise CheckpointError(f"{path}: no checkpoint in this directory")
        return found[-1][1]
    return path


def auto_precision(device: torch.device) -> str:
    """int8 on the CPU (where PyTorch multiplies int8 matrices), the fastest precision there with
    the BLEU of fp32 (README); bf16 on a GPU that has it; else fp32."""
    from nmt.device import native_bf16
    from nmt.quantize import int8_available

    if device.type == "cpu":
        return "int8" if int8_available() else "fp32"
    return "bf16" if native_bf16(device) else "fp32"


def load_translator(path: Path, device: torch.device, precision: str = "fp32") -> Translator:
    """Rebuild model, tokenizers and vocabularies from one checkpoint (no code is run from it).

    `precision` int8 (CPU only) or bf16 runs the decoders' multiplies in low precision
    (quantize.py); fp32 is the plain model; auto is `auto_precision(device)`.
    """
    from nmt.bundle import open_meta
    from nmt.config import resolve
    from nmt.kernels.shapes import pad_output_layers
    from nmt.model import build_model

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and device.type != "cpu":
        raise ConfigError("int8 precision is for translation on the CPU")
    if precision == "auto":
        precision = auto_precision(device)
    found = find_checkpoint(path)
    state = checkpoint.load(found, mmap=True, keys=checkpoint.INFERENCE_KEYS)
    try:  # what the checkpoint holds for other modules to read: errors name the checkpoint
        model_cfg, train_cfg = resolve(state["model_config"], state["train_config"])
        # The meta files are read from memory: loading a model writes nothing.
        files = {name: data.numpy().tobytes() for name, data in state["meta"].items()}
        meta = open_meta(files, Path("meta"))
    except (ConfigError, DataError) as err:
        raise CheckpointError(f"{found}: {err}") from None
    # Training-only (auxiliary) decoders are not even built.
    tasks = tuple(t for t in state["tasks"] if t not in state.get("aux_tasks", []))
    # Built on the meta device and then given the checkpoint's tensors: no time spent on a
    # random initialisation of weights about to be replaced.
    with torch.device("meta"):
        model = build_model(model_cfg, len(meta.src_vocab),
                            {t: len(meta.tgt_vocabs[t]) for t in tasks})
    dropped = tuple(f"decoders.{t}." for t in state["tasks"] if t not in tasks)
    model.load_state_dict({k: v for k, v in state["model"].items()
                           if not k.startswith(dropped)},
                          assign=True)
    model = pad_output_layers(model.to(device).eval())
    for decoder in model.decoders.values():
        decoder.tabulate_inputs()  # before the swap: the table is float32
    from nmt.quantize import bf16_decoders, fp32_decoders, quantize_decoders

    swaps = {"int8": quantize_decoders, "bf16": bf16_decoders, "fp32": fp32_decoders}
    swaps[precision](model)
    return Translator(model, meta.src_tokenizer, meta.src_vocab,
                      meta.tgt_tokenizers, meta.tgt_vocabs, device, train_cfg.max_len, tasks)
