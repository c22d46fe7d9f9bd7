"""Dynamic int8 quantization of the decoders' multiplies, for CPU translation.

Weights are converted to int8 once (per-tensor scale); each call quantizes its input on the fly and
multiplies with the integer kernels (fbgemm on x86, qnnpack on ARM). Every Linear layer of every
decoder is swapped: output layer (hidden x vocabulary, the largest multiply of a search step, about
3.5x faster on the 2-core AVX2 machine), recurrent and input-feeding multiplies, attention query,
combine, embedding projection and bridge. The encoder (oneDNN LSTM, once per sentence) stays fp32.
Off by default; `nmt translate --int8` turns it on (speed and BLEU measured in the README).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


def quantize_decoders(model: nn.Module) -> nn.Module:
    """Swap every Linear layer of the model's decoders for a dynamic int8 one, in place."""
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it will move to torchao; it still ships with torch.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(model.decoders, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return model
