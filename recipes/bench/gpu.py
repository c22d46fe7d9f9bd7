"""`make bench-gpu`: what needs a GPU, checked and measured in one short run (minutes).

    python recipes/bench/gpu.py [--bundle bench-out/bundle] [--out bench-out/gpu] [--steps 400]
                                [--device auto] [--batches 64,256,1000]

1. The fast paths on the device, one reference batch in fp32 without dropout: loss and every
   gradient against the CPU's (packed encoder and fixed-shape loss on CUDA; unpacked encoder
   and row-selected loss on the CPU), and the fast kernels against the plain model
   (`--kernels plain`: nmt/kernels); then the loss under the default precision
   (bf16 autocast where the GPU has it) against fp32.
2. `nmt train` of the reference configuration for --steps updates in the default precision
   (steady-state target tokens/s from its log), then `nmt translate` of test_2016_flickr with
   beam 5 (whole command: one output line per input line, BLEU).
3. Host syncs, counted by source line under torch.cuda.set_sync_debug_mode("warn"): in training
   updates (none expected) and in a beam search of one batch (one per step expected: finished
   sentences leave the batch). Peak memory allocated by the training updates.
4. Translation speed in-process (model loaded, warmed up): beam 5 and greedy at each batch size
   of --batches, fp32 and the default precision, sentences/s and BLEU.

Prints a table and writes gpu.json. Without CUDA it runs on the CPU, sync checks skipped (the
test runs it so, on tiny settings). Not a test: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import json
import platform
import shutil
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from bench import NMT, ROOT, preprocess_multi30k, run, score, steady_tokens_per_s
from hotspots import training_step

from nmt.bundle import open_bundle
from nmt.config import load_file, resolve
from nmt.data import BucketSampler, make_batch
from nmt.device import autocast, autocast_dtype, choose_device
from nmt.dropout import Dropout
from nmt.kernels import Kernels
from nmt.loss import BatchLoss
from nmt.precision import auto_precision
from nmt.translate import SearchOptions, load_translator, translate_stream


def _gradients(model: torch.nn.Module, batch: Any, task: str, dtype: torch.dtype | None = None,
               kernels: Kernels = "auto") -> tuple[float, list[torch.Tensor]]:
    """Per-token loss of `batch` and the gradient of every parameter (CPU copies)."""
    model.zero_grad(set_to_none=True)
    device = next(model.parameters()).device
    batch = batch.to(device)
    with autocast(device, dtype):
        loss, _ = BatchLoss(model, kernels=kernels)(batch.src_tokens, batch.src_lengths,
                                                    batch.tgt_in, batch.tgt_out, task)
    (loss / batch.n_tgt_tokens).backward()
    grads = [p.grad.detach().float().cpu() for p in model.parameters() if p.grad is not None]
    return float(loss.detach()) / batch.n_tgt_tokens, grads


def _difference(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    """Largest gradient difference relative to the largest gradient of all (per parameter it
    would blow up where a gradient is nearly 0, as the attention's is at initialisation)."""
    assert len(got) == len(want)
    scale = max(float(w.abs().max()) for w in want)
    return max(float((g - w).abs().max()) for g, w in zip(got, want, strict=True)) / scale


def _no_dropout(model: torch.nn.Module) -> None:
    """Dropout off in training mode (cuDNN's RNN has no backward in eval mode)."""
    for module in model.modules():
        if isinstance(module, Dropout):
            module.p = 0.0
        elif isinstance(module, torch.nn.RNNBase):
            module.dropout = 0.0


def check_fast_paths(config: Path, bundle_dir: Path, device: torch.device) -> dict[str, Any]:
    """Section 1 of the module docstring."""
    cpu_model, _ = training_step(config, bundle_dir, torch.device("cpu"), None)
    _no_dropout(cpu_model)
    model = copy.deepcopy(cpu_model).to(device)
    bundle = open_bundle(bundle_dir)
    task = bundle.tasks[0]
    source, target = bundle.source("train"), bundle.target("train", task)
    batch_size = resolve(load_file(config))[1].batch_size
    indices = next(iter(BucketSampler(source.lengths, target.lengths, batch_size, 0, 7)))
    batch = make_batch(source, target, indices, task)
    cpu_loss, cpu_grads = _gradients(cpu_model, batch, task)
    loss, grads = _gradients(model, batch, task)
    plain_loss, plain_grads = _gradients(model, batch, task, kernels="plain")
    dtype = autocast_dtype(device, "auto")
    auto_loss, _ = _gradients(model, batch, task, dtype)
    return {
        "loss_cpu": cpu_loss, "loss_device": loss,
        "grad_vs_cpu": _difference(grads, cpu_grads),
        "loss_plain_autograd": plain_loss,
        "grad_vs_plain_autograd": _difference(grads, plain_grads),
        "auto_dtype": str(dtype).removeprefix("torch.") if dtype else "fp32",
        "loss_auto": auto_loss,
    }


@contextlib.contextmanager
def _syncs(device: torch.device) -> Iterator[Counter[str] | None]:
    """Counts the host syncs of the block by 'file:line'; None where the device is no GPU."""
    if device.type != "cuda":
        yield None
        return
    counts: Counter[str] = Counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield counts
        finally:
            torch.cuda.synchronize(device)
            torch.cuda.set_sync_debug_mode("default")
    counts.update(f"{Path(w.filename).name}:{w.lineno}" for w in caught
                  if "synchroniz" in str(w.message))


def _top(counts: Counter[str] | None) -> dict[str, int] | None:
    return None if counts is None else dict(counts.most_common(8))


def check_syncs(config: Path, bundle_dir: Path, model_dir: Path, lines: list[str],
                device: torch.device) -> dict[str, Any]:
    """Section 3 of the module docstring."""
    _, step = training_step(config, bundle_dir, device, autocast_dtype(device, "auto"))
    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    updates = 5
    with _syncs(device) as train_syncs:
        for _ in range(updates):
            step()
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    translator = load_translator(model_dir, device, auto_precision(device))
    batch = lines[:64]
    list(translate_stream(translator, batch, None, SearchOptions(beam=5)))  # warm-up
    with _syncs(device) as search_syncs:
        list(translate_stream(translator, batch, None, SearchOptions(beam=5)))
    return {"train_updates": updates, "train_syncs": _top(train_syncs),
            "beam5_batch_sentences": len(batch), "beam5_syncs": _top(search_syncs),
            "train_max_allocated_mb": None if peak is None else round(peak, 1)}


def translation_speed(model_dir: Path, lines: list[str], ref: Path, out: Path,
                      device: torch.device, precision: str,
                      batch_sizes: list[int]) -> dict[str, Any]:
    """Section 4 of the module docstring, for one precision."""
    result: dict[str, Any] = {}
    translator = load_translator(model_dir, device, precision)
    for beam in (5, 1):
        for batch_size in batch_sizes:
            opts = SearchOptions(beam=beam)
            list(translate_stream(translator, lines[:batch_size], None, opts,
                                  batch_size=batch_size))  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            outputs = [t.text for t in translate_stream(translator, lines, None, opts,
                                                        batch_size=batch_size)]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
            name = f"{'beam5' if beam == 5 else 'greedy'}_b{batch_size}_{precision}"
            hyp = out / f"test.{name}.de"
            hyp.write_text("".join(f"{line}\n" for line in outputs), encoding="utf-8")
            result[name] = {"seconds": round(seconds, 3),
                            "sentences_per_s": round(len(lines) / seconds, 1), **score(hyp, ref)}
    return result


def train_on_device(args: argparse.Namespace, model: Path, device: torch.device,
                    precision: str) -> dict[str, Any]:
    """Section 2: `nmt train` for --steps updates; steady-state target tokens/s from its log."""
    shutil.rmtree(model, ignore_errors=True)
    train = run([*NMT, "-q", "train", "--data", str(args.bundle), "--out", str(model),
                 "--config", str(args.config), "--max-steps", str(args.steps), "--max-epochs",
                 "0", "--valid-every", str(args.steps), "--log-every", "25", "--device",
                 str(device), "--precision", precision])
    return {**train, "precision": precision,
            "tokens_per_s": steady_tokens_per_s(model / "metrics.jsonl", args.warmup)}


def translate_on_device(model: Path, source: Path, ref: Path, out: Path,
                        device: torch.device) -> dict[str, Any]:
    """Section 2: `nmt translate` with beam 5, the whole command: one line out per line in."""
    hyp = out / "test.cli_beam5.de"
    cli = run([*NMT, "translate", "-m", str(model), "-i", str(source), "-o", str(hyp),
               "--device", str(device)])
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        input_lines = sum(1 for _ in handle)
    output_lines = len(hyp.read_text(encoding="utf-8").splitlines())
    return {**cli, "input_lines": input_lines, "output_lines": output_lines, **score(hyp, ref)}


def _attempt(report: dict[str, Any], name: str, work: Callable[[], Any], out: Path) -> bool:
    """report[name] = work(), or the error it raised: one failing check (an op without bf16
    support, say) must not cost the figures of the others on a machine lent for minutes. The
    JSON is rewritten after each section, so a run cut short keeps what it measured."""
    try:
        report[name] = work()
        ok = True
    except (Exception, SystemExit) as error:  # noqa: BLE001 - recorded, and the run goes on
        traceback.print_exc()
        report[name] = {"error": f"{type(error).__name__}: {error}"}
        ok = False
    (out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
    return ok


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['machine']['device']} (torch {report['machine']['torch']})\n")
    print("| check | value |\n|---|---|")
    for name, section in report.items():
        if isinstance(section, dict) and "error" in section:
            print(f"| {name} | ERROR {section['error'][:200]} |")
    fast = report.get("fast_paths", {"error": ""})
    if "error" not in fast:
        print(f"| loss device / CPU (fp32) | {fast['loss_device']:.5f} / {fast['loss_cpu']:.5f} |")
        print(f"| gradients vs CPU, max rel. difference | {fast['grad_vs_cpu']:.2e} |")
        print(f"| gradients vs plain autograd | {fast['grad_vs_plain_autograd']:.2e} |")
        print(f"| loss {fast['auto_dtype']} / fp32 | {fast['loss_auto']:.5f} / "
              f"{fast['loss_device']:.5f} |")
    for key in ("train", "train_fp32"):
        train = report.get(key, {"error": ""})
        if "error" not in train:
            print(f"| `nmt train --precision {train['precision']}` ({report['steps']} updates) | "
                  f"{train['tokens_per_s']:,.0f} target tokens/s, peak RSS "
                  f"{train['peak_rss_mb']:.0f} MB |")
    cli = report.get("translate_cli", {"error": ""})
    if "error" not in cli:
        print(f"| `nmt translate` beam 5 (whole command) | {cli['wall_s']:.1f} s, "
              f"{cli['output_lines']} lines for {cli['input_lines']}, BLEU {cli['bleu']:.2f} |")
    syncs = report.get("syncs", {"error": ""})
    if "error" not in syncs:
        for what, counts in ((f"{syncs['train_updates']} training updates", syncs["train_syncs"]),
                             (f"beam 5 over {syncs['beam5_batch_sentences']} sentences",
                              syncs["beam5_syncs"])):
            shown = "n/a (no GPU)" if counts is None else f"{sum(counts.values())} {counts or ''}"
            print(f"| host syncs in {what} | {shown} |")
        peak = syncs["train_max_allocated_mb"]
        print(f"| training max allocated | {'n/a' if peak is None else f'{peak:,.0f} MB'} |")
    rows = [(name, row) for key, speed in report.items()
            if key.startswith("speed_") and "error" not in speed for name, row in speed.items()]
    if rows:
        print("\n| translation, in-process | sentences/s | BLEU |\n|---|---|---|")
        for name, row in rows:
            print(f"| {name} | {row['sentences_per_s']:,.1f} | {row['bleu']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "multi30k")
    parser.add_argument("--bundle", type=Path, default=ROOT / "bench-out" / "bundle",
                        help="data bundle (made here if missing)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "gpu")
    parser.add_argument("--config", type=Path,
                        default=ROOT / "recipes" / "multi30k" / "reference.toml")
    parser.add_argument("--steps", type=int, default=400, help="training updates")
    parser.add_argument("--warmup", type=int, default=50, help="updates left out of the rate")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", default="64,256,1000", help="translation batch sizes")
    args = parser.parse_args()
    device = choose_device(args.device)
    out, model = args.out, args.out / "model"
    out.mkdir(parents=True, exist_ok=True)
    if not (args.bundle / "manifest.json").is_file():
        preprocess_multi30k(args.data, args.bundle)
    source, ref = args.data / "test_2016_flickr.en.gz", args.data / "test_2016_flickr.de.gz"
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    batch_sizes = [int(size) for size in args.batches.split(",")]

    report: dict[str, Any] = {"steps": args.steps, "machine": {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "python": platform.python_version()}}
    _attempt(report, "fast_paths", lambda: check_fast_paths(args.config, args.bundle, device), out)
    trained = _attempt(report, "train", lambda: train_on_device(args, model, device, "auto"), out)
    if not trained:  # the default precision failed: fp32 still gives a model for the rest
        trained = _attempt(report, "train_fp32",
                           lambda: train_on_device(args, model, device, "fp32"), out)
    if trained:
        _attempt(report, "translate_cli",
                 lambda: translate_on_device(model, source, ref, out, device), out)
        _attempt(report, "syncs",
                 lambda: check_syncs(args.config, args.bundle, model, lines, device), out)
        for precision in dict.fromkeys(["fp32", auto_precision(device)]):
            _attempt(report, f"speed_{precision}",
                     lambda precision=precision: translation_speed(
                         model, lines, ref, out, device, precision, batch_sizes), out)
    print_table(report)
    print(f"\n{out / 'gpu.json'}")


if __name__ == "__main__":
    main()
