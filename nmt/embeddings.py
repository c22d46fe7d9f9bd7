"""Token embeddings, and pretrained word vectors (word2vec / GloVe text format) loaded into them.

Text format: one `token v1 v2 ... vE` per line, separated by single spaces; word2vec files start
with a header line `count dim`, GloVe files do not. Tokens of the vocabulary that the file lacks
keep a random initialisation; the PAD row is zero.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from nmt.errors import DataError
from nmt.textio import read_lines
from nmt.vocab import PAD

INIT_RANGE = 0.1  # uniform(-0.1, 0.1): the model's parameter init (see model.py)


class Embeddings(nn.Embedding):
    """A token embedding table whose PAD row is zero and receives no gradient."""

    def __init__(self, vocab_size: int, emb_size: int):
        super().__init__(vocab_size, emb_size, padding_idx=PAD)

    def reset_parameters(self) -> None:
        # The model re-initialises every parameter anyway (model.py). Uniform, not nn.Embedding's
        # normal_: on the meta device (fast checkpoint loading) normal_ imports torch._dynamo,
        # which is slow to import.
        nn.init.uniform_(self.weight, -INIT_RANGE, INIT_RANGE)
        self._fill_padding_idx_with_zero()

    def load(self, weight: Tensor, freeze: bool = False) -> None:
        """Copy pretrained vectors (V, E) in; `freeze` keeps them fixed during training."""
        if tuple(weight.shape) != tuple(self.weight.shape):
            raise ValueError(f"vectors {tuple(weight.shape)} != table {tuple(self.weight.shape)}")
        with torch.no_grad():
            self.weight.copy_(weight)
            self.weight[PAD].zero_()
        self.weight.requires_grad_(not freeze)


def load_vectors(path: Path | str, vocab_tokens: list[str], emb_size: int) -> tuple[Tensor, int]:
    """Read a word2vec/GloVe text file into a (V, E) table ordered like `vocab_tokens`.

    Only the lines of tokens in the vocabulary are parsed into numbers (files of a million words
    stay fast); every line's field count is checked. The first occurrence of a token wins.

    Returns:
        (weight (V, E), number of vocabulary tokens found in the file).
    Raises:
        DataError naming the file and 1-based line for a header or vector of another dimension
        than `emb_size`, or a malformed line.
    """
    index = {token: i for i, token in enumerate(vocab_tokens)}
    weight = torch.empty(len(vocab_tokens), emb_size).uniform_(-INIT_RANGE, INIT_RANGE)  # (V, E)
    weight[PAD] = 0.0
    found = torch.zeros(len(vocab_tokens), dtype=torch.bool)
    for number, line in enumerate(read_lines(path), start=1):
        fields = line.rstrip().split(" ")
        if number == 1 and _is_header(fields):
            if int(fields[1]) != emb_size:
                raise DataError(f"vectors have dimension {fields[1]}, expected {emb_size}", path, 1)
            continue
        if not line.strip():
            continue
        if len(fields) != emb_size + 1:
            raise DataError(
                f"expected a token and {emb_size} numbers, found {len(fields)} fields", path, number
            )
        row = index.get(fields[0])
        if row is None or row == PAD or found[row]:
            continue
        try:
            weight[row] = torch.tensor([float(x) for x in fields[1:]])
        except ValueError:
            raise DataError(
                f"malformed number in the vector of {fields[0]!r}", path, number
            ) from None
        found[row] = True
    return weight, int(found.sum())


def _is_header(fields: list[str]) -> bool:
    return len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit()
