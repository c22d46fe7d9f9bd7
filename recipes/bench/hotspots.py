"""`make bench-profile`: where the time goes, as torch.profiler tables of the top operators.

Profiles (1) training batches of the reference model on a bundle (what `make bench` builds under
bench-out/), forward, backward and optimizer step, and (2) beam search with a trained model on
test_2016_flickr, each in the precision asked for (by default training fp32 and search int8,
what `--precision auto` picks on a CPU without fast bf16). Prints self-CPU tables sorted by
time. Not a test: run it on an otherwise idle machine.

    python recipes/bench/hotspots.py [--bundle bench-out/bundle] [--model bench-out/model]
                                    [--precision fp32|bf16] [--search-precision int8|fp32|bf16]
                                    [--batches 20] [--sentences 256]
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from nmt.bundle import open_bundle
from nmt.config import load_file, resolve
from nmt.data import BucketSampler, make_batch
from nmt.device import autocast
from nmt.loss import BatchLoss
from nmt.model import build_model
from nmt.optim import build_optimizer, clip_gradients
from nmt.translate import SearchOptions, load_translator, translate_stream

ROOT = Path(__file__).resolve().parents[2]
TEST = ROOT.parent / "shared" / "data" / "multi30k" / "test_2016_flickr.en.gz"


def training_step(config: Path, bundle_dir: Path, device: torch.device,
                  dtype: torch.dtype | None, seed: int = 42) -> tuple[nn.Module, Callable[[], int]]:
    """The reference model on `device` and one training update of it (next batch of the bundle's
    training data: forward, backward, clipping, Adam), returning the batch's target tokens."""
    model_cfg, train_cfg = resolve(load_file(config))
    bundle = open_bundle(bundle_dir)
    torch.manual_seed(seed)
    model = build_model(model_cfg, len(bundle.src_vocab),
                        {t: len(bundle.tgt_vocabs[t]) for t in bundle.tasks}).to(device)
    task = bundle.tasks[0]
    loss_fn = BatchLoss(model, train_cfg.label_smoothing)
    optimizer = build_optimizer(model.parameters(), train_cfg)
    source, target = bundle.source("train"), bundle.target("train", task)
    batches = iter(BucketSampler(source.lengths, target.lengths, train_cfg.batch_size, 0, seed))
    model.train()

    def step() -> int:
        batch = make_batch(source, target, next(batches), task).to(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss, _ = loss_fn(batch.src_tokens, batch.src_lengths, batch.tgt_in, batch.tgt_out,
                              task)
        (loss / batch.n_tgt_tokens).backward()
        clip_gradients(model.parameters(), train_cfg.clip_norm)
        optimizer.step()
        return batch.n_tgt_tokens

    return model, step


def profile_training(args: argparse.Namespace) -> None:
    dtype = torch.bfloat16 if args.precision == "bf16" else None
    _, step = training_step(args.config, args.bundle, torch.device("cpu"), dtype)
    batch_size = resolve(load_file(args.config))[1].batch_size
    for _ in range(5):  # warm-up: kernels and allocator
        step()
    start, tokens = time.perf_counter(), sum(step() for _ in range(args.batches))
    rate = tokens / (time.perf_counter() - start)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.batches):
            step()
    print(f"\n## Training, {args.precision}: {args.batches} batches of {batch_size} "
          f"sentences, {rate:.0f} target tokens/s without the profiler\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


def profile_search(args: argparse.Namespace) -> None:
    translator = load_translator(args.model, torch.device("cpu"), args.search_precision)
    with gzip.open(TEST, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()[: args.sentences]
    opts = SearchOptions(beam=5)
    list(translate_stream(translator, lines[:64], None, opts))  # warm-up
    start = time.perf_counter()
    list(translate_stream(translator, lines, None, opts))
    rate = len(lines) / (time.perf_counter() - start)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        list(translate_stream(translator, lines, None, opts))
    print(f"\n## Beam 5, {args.search_precision}: {len(lines)} sentences of test_2016_flickr, "
          f"batch 64, {rate:.1f} sentences/s without the profiler\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=ROOT / "bench-out" / "bundle")
    parser.add_argument("--model", type=Path, default=ROOT / "bench-out" / "model")
    parser.add_argument("--config", type=Path,
                        default=ROOT / "recipes" / "multi30k" / "reference.toml")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="training's")
    parser.add_argument("--search-precision", choices=["fp32", "bf16", "int8"], default="int8",
                        help="beam search's (int8: what --precision auto picks on a CPU)")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=15, help="operators per table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not (args.bundle / "manifest.json").is_file():
        sys.exit(f"bench-profile: no bundle at {args.bundle} (make bench builds one)")
    profile_training(args)
    if args.model.exists():
        profile_search(args)
    else:
        print(f"bench-profile: no model at {args.model}; beam search not profiled", file=sys.stderr)


if __name__ == "__main__":
    main()
