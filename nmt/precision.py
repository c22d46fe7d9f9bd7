"""Low-precision decoding: the decoders' multiplies at translation, one Linear swap per
precision (int8, bf16, fp32), and the choice of `--precision auto`.

Every swap keeps a row's result independent of the other rows in the call, so that a sentence
translates the same way whatever the batch, window or resume around it.

int8: y = s_x s_w (q_x q_w^T) + b. The weights are rounded once to int8 with a scale per output
row (s_w); each call rounds its input to int8 with a scale per input row (s_x, the row's largest
magnitude over 127) and multiplies the integers exactly (int32 sums). A row's result therefore
depends on that row alone. (PyTorch's dynamic quantization takes one input scale for the whole
batch, so a sentence's neighbours changed its translation.)

bf16: weights are kept in bf16 and multiplied in bf16 (AMX or AVX512-BF16 on recent x86 CPUs,
tensor cores on GPUs); inputs are rounded to bf16 on the way in and results come back as float32,
so the recurrent state, attention and scores stay float32. Rows are padded to a few fixed
counts (kernels/shapes.py), at which the kernels' sums did not depend on the row count.

fp32: the CPU's float32 kernels sum a row in an order that depends on how many rows the call
has, so the rows go through in blocks of a fixed size (Fp32Linear), the last one padded.

Each swaps every Linear layer of every decoder but one: output layer, recurrent and input-feeding
multiplies, attention query, combine, embedding projection (which a search step uses only where
the decoder keeps no float32 table of it: Decoder.tabulate_inputs) and bridge. The attention
energy v stays float32: its input is (N, S, A) per step, and rounding it costs more than its
multiply. The encoder (a fused LSTM over the whole sentence, once) stays float32 and unswapped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.errors import ConfigError
from nmt.kernels import shapes


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
        return shapes.linear(self._multiply, x, torch.bfloat16).float()

    def _multiply(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class Fp32Linear(nn.Module):
    """A float32 Linear layer that multiplies its rows in blocks of BLOCK_ROWS (module docstring),
    on the CPU; elsewhere the plain layer."""

    BLOCK_ROWS = 64

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu":
            return self.linear(x)
        rows = x.reshape(-1, x.size(-1))  # (M, K)
        padded = F.pad(rows, (0, 0, 0, -rows.size(0) % self.BLOCK_ROWS))
        out = torch.cat([self.linear(block) for block in padded.split(self.BLOCK_ROWS)])
        return out[: rows.size(0)].view(*x.shape[:-1], -1)


class Int8Linear(nn.Module):
    """A Linear layer with int8 weights and inputs (module docstring); float32 in and out."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()  # (N, K)
        scale = _row_scale(weight)  # (N, 1)
        self.register_buffer("weight_t", _round_int8(weight, scale).t())  # (K, N)
        self.register_buffer("weight_scale", scale.view(-1))  # (N,)
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().float())

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, x.size(-1))  # (M, K)
        scale = _row_scale(rows)  # (M, 1)
        out = int8_matmul(_round_int8(rows, scale), self.weight_t).float()  # (M, N)
        out = out.mul_(scale).mul_(self.weight_scale)
        if self.bias is not None:
            out = out.add_(self.bias)
        return out.view(*x.shape[:-1], out.size(-1))


def _row_scale(x: Tensor) -> Tensor:
    """Per row of x (M, K): its largest magnitude / 127 (M, 1), so the row maps onto [-127, 127]."""
    return x.abs().amax(dim=1, keepdim=True).clamp_(min=1e-30).div_(127.0)


def _round_int8(x: Tensor, scale: Tensor) -> Tensor:
    return x.div(scale).round_().to(torch.int8)


def int8_matmul(a: Tensor, b: Tensor) -> Tensor:
    """a (M, K) int8 @ b (K, N) int8 -> (M, N) int32, exact.

    torch._int_mm is PyTorch's int8 x int8 -> int32 product (oneDNN on the CPU, since 2.3); the
    public torch.mm(..., out_dtype=torch.int32) has no CPU kernel yet (torch 2.13).
    """
    return torch._int_mm(a, b)


def int8_available() -> bool:
    """Whether this PyTorch multiplies int8 matrices on the CPU."""
    try:
        ones = torch.ones(1, 8, dtype=torch.int8)
        return int(int8_matmul(ones, ones.t())) == 8
    except (AttributeError, RuntimeError):
        return False


def auto_precision(device: torch.device) -> str:
    """int8 on the CPU (where PyTorch multiplies int8 matrices), the fastest precision there with
    the BLEU of fp32 (README); bf16 on a GPU that has it; else fp32."""
    from nmt.device import native_bf16

    if device.type == "cpu":
        return "int8" if int8_available() else "fp32"
    return "bf16" if native_bf16(device) else "fp32"


def choose_precision(precision: str, device: torch.device) -> str:
    """`precision` checked for `device` (one of config.PRECISIONS; int8 on the CPU only), auto
    resolved by auto_precision."""
    from nmt.config import PRECISIONS

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and device.type != "cpu":
        raise ConfigError("int8 precision is for translation on the CPU")
    return auto_precision(device) if precision == "auto" else precision


def lower_decoders(model: nn.Module, precision: str) -> nn.Module:
    """Swap the decoders' Linear layers for those of `precision` (int8, bf16 or fp32), in place."""
    swaps = {"int8": int8_decoders, "bf16": bf16_decoders, "fp32": fp32_decoders}
    return swaps[precision](model)


def int8_decoders(model: nn.Module) -> nn.Module:
    """Swap the Linear layers of the model's decoders (but the attention energy) for int8 ones."""
    return _swap(model, Int8Linear)


def fp32_decoders(model: nn.Module) -> nn.Module:
    """Swap the Linear layers of the model's decoders (but the attention energy) for blocked
    float32 ones."""
    return _swap(model, Fp32Linear)


def bf16_decoders(model: nn.Module) -> nn.Module:
    """Swap the Linear layers of the model's decoders (but the attention energy) for bf16 ones."""
    return _swap(model, Bf16Linear)


def _swap(model: nn.Module, low: type[nn.Module]) -> nn.Module:
    """Replace each Linear layer that `_swapped` names by low(layer), in place; a layer that
    decoders share stays shared."""
    made: dict[int, nn.Module] = {}
    for name in _swapped(model):
        parent, _, child = name.rpartition(".")
        module = model.decoders.get_submodule(parent)
        linear = getattr(module, child)
        if not isinstance(linear, nn.Linear):  # a shared parent already swapped it
            continue
        if id(linear) not in made:
            made[id(linear)] = low(linear)
        setattr(module, child, made[id(linear)])
    return model


def _swapped(model: nn.Module) -> list[str]:
    """Names under model.decoders of the Linear layers to swap (module docstring). A layer that
    decoders share is named once per decoder, as each holds it."""
    energies = {id(decoder.attention.energy) for decoder in model.decoders.values()}
    return [name for name, module in model.decoders.named_modules(remove_duplicate=False)
            if isinstance(module, nn.Linear) and id(module) not in energies]
