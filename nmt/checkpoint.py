"""Checkpoints: written atomically, loaded without running code, self-describing.

A checkpoint is a dict of tensors and plain Python values (numbers, strings, lists, dicts) saved
with torch.save and loaded with `weights_only=True`, so a crafted file cannot execute code. It
holds the model and the settings to rebuild it, and (for training checkpoints) the optimizer,
schedule, RNG, sampler and task-schedule states needed to resume exactly.

torch.load checks none of the CRC-32s of the zip it reads, so a flipped bit in the weights would
load as different weights. `digest` (CRC-32 of the weights, the bundle's meta files and the
settings) is stored at save and checked at load; checkpoints written without it load unchecked.
"""

from __future__ import annotations

import contextlib
import filecmp
import pickle
import re
import shutil
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch

from nmt import runlog
from nmt.errors import CheckpointError, ConfigError, DataError
from nmt.textio import atomic_write

if TYPE_CHECKING:
    from nmt.bundle import Bundle
    from nmt.config import ModelConfig, TrainConfig
    from nmt.model import Seq2Seq

FORMAT = "nmt-checkpoint"
VERSION = 1
_STEP_FILE = re.compile(r"^ckpt-(\d+)\.pt$")
# What translation rebuilds the model from: covered by the digest. The optimizer state (two
# thirds of a training checkpoint) is left out, so that checking stays cheap with mmap.
DIGESTED = ("model_config", "train_config", "tasks", "aux_tasks", "meta", "model")
INFERENCE_KEYS = ("model_config", "train_config", "tasks", "meta", "model")
# What `nmt train --resume` restores (besides the per-rank or, in older checkpoints, top-level
# RNG and sampler states).
RESUME_KEYS = (*INFERENCE_KEYS, "optimizer", "schedule", "scaler", "task_schedule", "step",
               "best", "bad_validations")


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` to `path` atomically (temporary file + rename in the same directory).

    A failed write (a full disk, a file-size limit) raises OSError naming `path` and leaves the
    file that was there, if any, as it was.
    """
    with _atomic(path) as handle:
        sink = _Sink(handle)
        try:
            torch.save({"format": FORMAT, "version": VERSION, **payload,
                        "digest": digest(payload)}, sink)
        except RuntimeError:
            if sink.error is None:
                raise
            raise sink.error from None


def copy(source: Path, path: Path) -> None:
    """Copy a checkpoint to `path` atomically (how best.pt is published), unless `path` already
    holds the same bytes."""
    if path.is_file() and filecmp.cmp(source, path, shallow=False):
        return
    with open(source, "rb") as original, _atomic(path) as handle:
        shutil.copyfileobj(original, handle)


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[IO[bytes]]:
    """atomic_write; an OSError that names no file (a failed write) names `path`."""
    try:
        with atomic_write(path, "wb") as handle:
            yield handle
    except OSError as err:
        if err.filename is not None:
            raise
        raise OSError(err.errno, err.strerror, str(path)) from None


class _Sink:
    """The handle torch.save writes to. Its writer reports an OSError (EFBIG, ENOSPC) as a bare
    RuntimeError ("unexpected pos"); the sink keeps the real error to raise instead."""

    def __init__(self, handle: IO[bytes]):
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.handle.flush()


def load(path: Path, mmap: bool = False, keys: Iterable[str] = ("model",)) -> dict[str, Any]:
    """Load a checkpoint with weights_only=True and check its digest; anything else, or a
    checkpoint without one of `keys`, is a CheckpointError naming the file.

    `mmap` maps tensors from the file instead of reading them all: translation touches only the
    model's weights, not the optimizer state (two thirds of a training checkpoint).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unsafe content"
        raise CheckpointError(f"{path}: refused to load (not plain weights): {first}") from None
    except Exception as err:  # damaged bytes fail anywhere in torch's reader: any exception
        text = str(err).strip()
        reason = text.splitlines()[0].split(". ")[0] if text else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an nmt checkpoint")
    if data.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path}: format version {data['version']} is newer than this nmt reads ({VERSION})"
        )
    check(path, data, keys)
    return data


def check(path: Path, data: dict[str, Any], keys: Iterable[str]) -> None:
    """The entries `keys` are present and well-formed, and the stored digest matches."""
    missing = [key for key in keys if key not in data]
    if missing:
        raise CheckpointError(
            f"{path}: incomplete checkpoint (no {', '.join(missing)}); written by another version?"
        )
    for key in ("model", "meta"):
        if key in data and not (
            isinstance(data[key], dict)
            and all(isinstance(v, torch.Tensor) for v in data[key].values())
        ):
            raise CheckpointError(f"{path}: malformed checkpoint ({key!r}: not a dict of tensors)")
    stored = data.get("digest")
    if stored is not None and stored != digest(data):
        raise CheckpointError(
            f"{path}: damaged checkpoint (its contents do not match the checksum written with "
            "them: a changed or corrupted file)"
        )


def digest(payload: dict[str, Any]) -> str:
    """CRC-32 over the entries DIGESTED of a checkpoint: names, dtypes, shapes and bytes of every
    tensor, repr() of every other value."""
    crc = 0
    for key in DIGESTED:
        if key in payload:
            crc = _crc(payload[key], zlib.crc32(key.encode(), crc))
    return f"crc32:{crc:08x}"


def _crc(value: Any, crc: int) -> int:
    if isinstance(value, torch.Tensor):
        crc = zlib.crc32(f"{value.dtype}{tuple(value.shape)}".encode(), crc)
        data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        return zlib.crc32(data.numpy(), crc)
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            crc = _crc(value[key], zlib.crc32(repr(key).encode(), crc))
        return crc
    if isinstance(value, (list, tuple)):
        for item in value:
            crc = _crc(item, crc)
        return crc
    return zlib.crc32(repr(value).encode(), crc)


def step_path(directory: Path, step: int) -> Path:
    return directory / f"ckpt-{step:08d}.pt"


def step_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of the periodic checkpoints in `directory`, oldest first."""
    found = []
    for entry in directory.glob("ckpt-*.pt"):
        match = _STEP_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def prune(directory: Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` periodic checkpoints (best.pt is separate)."""
    for _, path in step_checkpoints(directory)[: -keep_last or None]:
        path.unlink(missing_ok=True)


def find(path: Path) -> Path:
    """A run directory means its best checkpoint (else its newest); a file means itself."""
    path = Path(path)
    if path.is_dir():
        if (path / runlog.BEST).is_file():
            return path / runlog.BEST
        found = step_checkpoints(path)
        if not found:
            raise CheckpointError(f"{path}: no checkpoint in this directory")
        return found[-1][1]
    return path


def load_inference(path: Path) -> dict[str, Any]:
    """What a trained model is rebuilt from (INFERENCE_KEYS), mapped from the file rather than
    read: the optimizer state is never touched."""
    return load(path, mmap=True, keys=INFERENCE_KEYS)


@dataclass
class LoadedModel:
    """A trained model rebuilt from a checkpoint, with what translation needs beside it."""

    path: Path  # the checkpoint file read
    model: Seq2Seq  # on the device, in eval mode; training-only decoders are not built
    meta: Bundle  # tokenizers and vocabularies (the bundle without its splits)
    files: dict[str, bytes]  # the meta files (manifest, vocabularies, tokenizer models)
    tasks: tuple[str, ...]  # decoders that translate
    max_len: int  # longest source the model was trained on (tokens)


@dataclass
class Contents:
    """What a checkpoint holds for rebuilding its model: the file read, its tensors and settings,
    and its meta files (vocabularies, tokenizers) opened from memory."""

    path: Path
    state: dict[str, Any]  # INFERENCE_KEYS
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    meta: Bundle
    files: dict[str, bytes]


def read(path: Path) -> Contents:
    """The contents of a run directory's best checkpoint or of a checkpoint file; errors in what
    it holds name the checkpoint. Loading writes nothing: the meta files are read from memory."""
    from nmt.bundle import open_meta
    from nmt.config import resolve

    found = find(path)
    state = load_inference(found)
    try:
        model_cfg, train_cfg = resolve(state["model_config"], state["train_config"])
        files = {name: data.numpy().tobytes() for name, data in state["meta"].items()}
        meta = open_meta(files, Path("meta"))
    except (ConfigError, DataError) as err:
        raise CheckpointError(f"{found}: {err}") from None
    return Contents(found, state, model_cfg, train_cfg, meta, files)


def load_model(path: Path, device: torch.device) -> LoadedModel:
    """Rebuild the model of a run directory (its best checkpoint) or checkpoint file; no code
    is run from the file."""
    from nmt.model import build_model

    contents = read(path)
    state, meta = contents.state, contents.meta
    tasks = tuple(t for t in state["tasks"] if t not in state.get("aux_tasks", []))
    # Built on the meta device, then given the checkpoint's tensors: no time spent on a random
    # initialisation of weights about to be replaced.
    with torch.device("meta"):
        model = build_model(contents.model_cfg, len(meta.src_vocab),
                            {t: len(meta.tgt_vocabs[t]) for t in tasks})
    dropped = tuple(f"decoders.{t}." for t in state["tasks"] if t not in tasks)
    model.load_state_dict({k: v for k, v in state["model"].items() if not k.startswith(dropped)},
                          assign=True)
    return LoadedModel(contents.path, model.to(device).eval(), meta, contents.files, tasks,
                       contents.train_cfg.max_len)


def average(paths: list[Path]) -> dict[str, Any]:
    """A checkpoint whose model weights are the mean of `paths` (inference-only: no optimizer);
    each is read as load_model reads it."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    first = load_inference(paths[0])
    total = {k: v.double().clone() for k, v in first["model"].items() if v.is_floating_point()}
    for path in paths[1:]:
        model = load_inference(path)["model"]
        if model.keys() != first["model"].keys():
            raise CheckpointError(f"{path}: parameters differ from {paths[0]}")
        for key in total:
            total[key] += model[key].double()
    averaged = dict(first["model"])
    for key, value in total.items():
        averaged[key] = (value / len(paths)).to(first["model"][key].dtype)
    keep = ("model_config", "train_config", "tasks", "aux_tasks", "meta", "step")
    out = {k: first[k] for k in keep if k in first}
    out.update(model=averaged, averaged_from=[str(p) for p in paths])
    return out
