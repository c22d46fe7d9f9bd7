"""Training batches: length-bucketed, token- or sentence-budgeted, seeded and exactly resumable.

The sampler sorts one epoch's sentences by length (random tie-break), cuts the sorted order into
batches under the budget, and shuffles the batch order: similar lengths share a batch, so the
decoder loop (which runs to the longest target) wastes little on padding. The order of epoch e is
a pure function of (seed, e), so the state to resume is just (epoch, batches consumed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from nmt.vocab import BOS, EOS, PAD


@dataclass
class Batch:
    """Padded tensors of one batch; lengths stay on the CPU (packing wants them there)."""

    src_tokens: Tensor  # (B, S)
    src_lengths: Tensor  # (B,) on the CPU
    tgt_in: Tensor  # (B, T) BOS y1 .. yn
    tgt_out: Tensor  # (B, T) y1 .. yn EOS
    task: str
    n_tgt_tokens: int  # real target tokens incl. EOS, known without a host sync

    def to(self, device: torch.device) -> Batch:
        nb = device.type == "cuda"
        return Batch(
            self.src_tokens.to(device, non_blocking=nb),
            self.src_lengths,
            self.tgt_in.to(device, non_blocking=nb),
            self.tgt_out.to(device, non_blocking=nb),
            self.task,
            self.n_tgt_tokens,
        )


def pad_sequences(seqs: Sequence[Sequence[int]], bos: bool = False, eos: bool = False) -> Tensor:
    """Stack id sequences into a (B, max_len) int64 tensor padded with PAD."""
    extra = int(bos) + int(eos)
    width = max(len(s) for s in seqs) + extra
    out = np.full((len(seqs), width), PAD, dtype=np.int64)  # (B, T)
    for row, seq in enumerate(seqs):
        start = int(bos)
        if bos:
            out[row, 0] = BOS
        out[row, start : start + len(seq)] = seq
        if eos:
            out[row, start + len(seq)] = EOS
    return torch.from_numpy(out)


def make_batch(source, target, indices: np.ndarray, task: str) -> Batch:
    """Collate sentences `indices` of aligned TokenArrays into a Batch."""
    src = [source[i] for i in indices]
    tgt = [target[i] for i in indices]
    tgt_in = pad_sequences(tgt, bos=True)
    tgt_out = pad_sequences(tgt, eos=True)
    lengths = torch.tensor([len(s) for s in src], dtype=torch.int64)
    return Batch(
        pad_sequences(src), lengths, tgt_in, tgt_out, task, int(sum(len(t) for t in tgt)) + len(tgt)
    )


class BucketSampler:
    """Yields arrays of sentence indices; iterating resumes from the saved position.

    With `world` > 1 (torchrun) rank r gets batches r, r + world, ... of the same epoch plan, so
    the state to resume stays (epoch, position) and is the same on every rank; a state saved
    under another world size goes on after the batches all ranks had taken (skipping < world).
    """

    def __init__(
        self,
        src_lengths: np.ndarray,
        tgt_lengths: np.ndarray,
        batch_size: int,
        batch_tokens: int,
        seed: int,
        max_len: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world: int = 1,
    ):
        keep = np.ones(len(src_lengths), dtype=bool)
        if max_len:
            keep = (src_lengths <= max_len) & (tgt_lengths <= max_len)
        self.indices = np.flatnonzero(keep)
        self.skipped = int(len(src_lengths) - len(self.indices))
        # Cost of a sentence in a padded batch: its longer side (+1 for BOS/EOS).
        self.cost = np.maximum(src_lengths, tgt_lengths)[self.indices] + 1
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world = world
        self.epoch = 0
        self.position = 0
        self._batches: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self._epoch_batches())

    @property
    def epochs_done(self) -> float:
        """Epochs taken, with the current one's fraction (an epoch's last batch completes it)."""
        return self.epoch + self.position / len(self)

    def _epoch_batches(self) -> list[np.ndarray]:
        if self._batches is None:
            self._batches = self._plan(self.epoch)
        return self._batches

    def _plan(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        if self.shuffle:
            order = rng.permutation(len(self.indices))
            order = order[np.argsort(self.cost[order], kind="stable")]
        else:
            order = np.argsort(self.cost, kind="stable")
        batches, start = [], 0
        while start < len(order):
            end = self._batch_end(order, start)
            batches.append(self.indices[order[start:end]])
            start = end
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        # Under torchrun each rank takes every world-th batch of the same plan; the remainder is
        # dropped so that every rank runs the same number of updates per epoch.
        usable = len(batches) - len(batches) % self.world
        return batches[self.rank : usable : self.world]

    def _batch_end(self, order: np.ndarray, start: int) -> int:
        if not self.batch_tokens:
            return min(start + self.batch_size, len(order))
        # Sorted by cost, so the padded size of order[start:end] is cost[order[end-1]] * count.
        costs = self.cost[order[start:]]
        padded = costs * np.arange(1, len(costs) + 1)
        fits = int(np.searchsorted(padded, self.batch_tokens, side="right"))
        return start + max(fits, 1)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Endless: runs through epochs; `epoch`/`position` always name the next batch."""
        while True:
            batches = self._epoch_batches()
            while self.position < len(batches):
                self.position += 1
                yield batches[self.position - 1]
            self.epoch += 1
            self.position = 0
            self._batches = None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "world": self.world}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # Batches of the epoch plan all ranks took (states without "world" are this world's);
        # rounded up, so that no batch is taken twice.
        taken = int(state["position"]) * int(state.get("world", self.world))
        self.epoch, self.position = int(state["epoch"]), -(-taken // self.world)
        self._batches = None


def iterate_split(source, target, batch_size: int, task: str) -> Iterator[tuple[np.ndarray, Batch]]:
    """Length-sorted batches of a whole split in a fixed order (validation loss).

    Pairs with an empty source are left out: they have nothing to encode.
    """
    lengths = np.maximum(source.lengths, target.lengths)
    order = np.argsort(lengths, kind="stable")
    order = order[source.lengths[order] > 0]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield idx, make_batch(source, target, idx, task)
