"""Validation during training: loss, perplexity and BLEU/chrF on the bundle's valid split, and the
one score that picks the best checkpoint."""

from __future__ import annotations

import math

import torch

from nmt import kernels
from nmt.bundle import Bundle
from nmt.config import TrainConfig
from nmt.data import iterate_split
from nmt.device import autocast
from nmt.errors import ConfigError
from nmt.evaluate import score_lines
from nmt.loss import sequence_loss
from nmt.model import Seq2Seq
from nmt.textio import read_lines
from nmt.translate import SearchOptions, Translator, translate_window

Results = dict[str, dict[str, float]]  # task -> {"loss", "ppl", "bleu", "chrf"}


@torch.inference_mode()
def validate(model: Seq2Seq, bundle: Bundle, tasks: list[str], cfg: TrainConfig,
             device: torch.device, amp: torch.dtype | None) -> Results:
    """Per task: teacher-forced loss and perplexity, and BLEU/chrF of greedy (or valid-beam)
    output against the normalised references."""
    with kernels.use(cfg.kernels):  # validation runs the model training runs
        return _validate(model, bundle, tasks, cfg, device, amp)


def _validate(model: Seq2Seq, bundle: Bundle, tasks: list[str], cfg: TrainConfig,
              device: torch.device, amp: torch.dtype | None) -> Results:
    model.eval()
    results = {}
    source_lines = list(read_lines(bundle.text_path("valid", "src")))
    translator = Translator(model, bundle.src_tokenizer, bundle.src_vocab,
                            bundle.tgt_tokenizers, bundle.tgt_vocabs, device, cfg.max_len,
                            tuple(tasks))
    opts = SearchOptions(beam=cfg.valid_beam)
    for task in tasks:
        loss_sum, tokens = torch.zeros((), device=device), 0
        source, target = bundle.source("valid"), bundle.target("valid", task)
        for _, batch in iterate_split(source, target, 64, task):
            batch = batch.to(device)
            with autocast(device, amp):
                enc = model.encode(batch.src_tokens, batch.src_lengths)
                hidden, _ = model.decoders[task](batch.tgt_in, enc)
                part, _ = sequence_loss(model.decoders[task].out_proj, hidden, batch.tgt_out, 0.0)
            loss_sum += part.float()  # summed on the device: one host sync per task
            tokens += batch.n_tgt_tokens
        outputs, _ = translate_window(translator, source_lines, task, opts, batch_size=64)
        refs = list(read_lines(bundle.text_path("valid", task)))
        bleu, chrf = score_lines([o.text for o in outputs], refs)
        loss = float(loss_sum) / max(tokens, 1)
        results[task] = {"loss": loss, "ppl": math.exp(min(loss, 50.0)),
                         "bleu": bleu.score, "chrf": chrf.score}
    return results


def selection_score(results: Results, cfg: TrainConfig, aux_tasks: list[str]) -> float:
    """--valid-metric of --select-task, or its mean over the main (non-auxiliary) tasks."""
    metric = cfg.valid_metric
    if cfg.select_task:
        if cfg.select_task not in results:
            raise ConfigError(f"select-task {cfg.select_task!r} is not a trained task")
        return results[cfg.select_task][metric]
    main = [t for t in results if t not in aux_tasks] or list(results)
    return sum(results[t][metric] for t in main) / len(main)
