"""Low-precision decoder multiplies for translation: dynamic int8 (CPU) or bf16.

int8: weights are converted to int8 once (per-tensor scale); each call quantizes its input on the
fly and multiplies with the integer kernels (fbgemm on x86, qnnpack on ARM). bf16: weights are
kept in bf16 and multiplied in bf16 (AMX or AVX512-BF16 on recent x86 CPUs, tensor cores on
GPUs); inputs are rounded to bf16 on the way in and results come back as float32, so the
recurrent state, attention and scores stay float32.

Both swap every Linear layer of every decoder but one: output layer (hidden x vocabulary, the
largest multiply of a search step), recurrent and input-feeding multiplies, attention query,
combine, embedding projection (which a search step uses only where the decoder keeps no float32
table of it: Decoder.tabulate_inputs) and bridge. The attention energy v stays float32: its input
is (N, S, A) per step, and quantizing or rounding it is a pass larger than its multiply (an int8
v cost 1.35 ms a beam-5 step against 0.26 ms for float32, (64, 5, 20, 512) on the 2-core Xeon).

The encoder (a fused LSTM over the whole sentence, once) stays float32 in both. `nmt translate
--precision int8|bf16`; `auto`, the default, takes int8 on the CPU and bf16 on a GPU that has
it (translate.auto_precision; speed and BLEU measured in the README).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt import padrows


class Bf16Linear(nn.Module):
    """A Linear layer whose weights and multiply are bf16; float32 in and out."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
        bias = linear.bias
        self.bias = None if bias is None else nn.Parameter(
            bias.detach().to(torch.bfloat16), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        x = x.to(torch.bfloat16)
        return padrows.linear(self._multiply, x, torch.bfloat16).float()

    def _multiply(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


def int8_available() -> bool:
    """Whether this PyTorch has dynamic int8 quantization (deprecated, to move to torchao)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic  # noqa: F401
    except ImportError:
        return False
    return bool({"fbgemm", "qnnpack"} & set(torch.backends.quantized.supported_engines))


def quantize_decoders(model: nn.Module) -> nn.Module:
    """Swap the Linear layers of the model's decoders (but the attention energy) for dynamic int8
    ones, in place."""
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it will move to torchao; it still ships with torch.
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantize_dynamic(model.decoders, set(_swapped(model)), dtype=torch.qint8, inplace=True)
    return model


def bf16_decoders(model: nn.Module) -> nn.Module:
    """Swap the Linear layers of the model's decoders (but the attention energy) for bf16 ones."""
    for name in _swapped(model):
        parent, _, child = name.rpartition(".")
        module = model.decoders.get_submodule(parent)
        setattr(module, child, Bf16Linear(getattr(module, child)))
    return model


def _swapped(model: nn.Module) -> list[str]:
    """Names under model.decoders of the Linear layers to swap (module docstring). A layer that
    decoders share is named once per decoder, as each holds it."""
    energies = {id(decoder.attention.energy) for decoder in model.decoders.values()}
    return [name for name, module in model.decoders.named_modules(remove_duplicate=False)
            if isinstance(module, nn.Linear) and id(module) not in energies]
