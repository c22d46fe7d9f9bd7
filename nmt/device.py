"""Device choice, threads, mixed precision, and torchrun process groups.

On CUDA the forward pass runs under bf16 autocast where the GPU supports it (fp16 with a gradient
scaler as the alternative); on the CPU too where it multiplies bf16 natively (AMX, AVX512-BF16)
and faster than fp32 (`fast_bf16`), else in fp32. Under torchrun (RANK/WORLD_SIZE set)
`init_distributed` joins the process group: NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from nmt.errors import ConfigError


def choose_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"device: unknown device {name!r} (use auto, cpu, cuda or cuda:N)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: CUDA was asked for but is not available")
    return device


def set_threads(threads: int) -> None:
    """One intra-op thread per core by default; never oversubscribe the cores."""
    if threads > 0:
        torch.set_num_threads(threads)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32. auto is bf16 where it is native and faster
    than fp32 (`fast_bf16`)."""
    if precision == "fp32":
        return None
    if device.type == "cpu":
        if precision == "fp16":
            raise ConfigError("precision: fp16 is for CUDA; on the CPU use bf16 or fp32")
        if precision == "auto":
            return torch.bfloat16 if fast_bf16(device) else None
        if not native_bf16(device):
            # oneDNN has no bf16 LSTM kernel on such CPUs (AVX2 only), and emulated bf16
            # multiplies are slower than fp32 anyway.
            raise ConfigError("precision: bf16 on the CPU needs AMX-BF16 or AVX512-BF16, which "
                              "this CPU lacks; use fp32 or auto")
        return torch.bfloat16
    if device.type != "cuda":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def native_bf16(device: torch.device, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether bf16 multiplies run natively (rather than emulated): CUDA with bf16 support, or
    an x86 CPU with AMX-BF16 or AVX512-BF16 (read from /proc/cpuinfo; elsewhere False)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 multiplies are native and, on the CPU, measured faster than fp32.

    The flags do not tell: some CPUs with AVX512-BF16 multiply bf16 faster than fp32, others
    slower (recipes/README.md).
    """
    if not native_bf16(device):
        return False
    return device.type != "cpu" or _bf16_multiplies_faster()


@functools.cache
def _bf16_multiplies_faster() -> bool:
    """A short probe, once a process: the best of three (256, 512) x (512, 1024) products (the
    decoder's and the output layer's shapes) in each dtype; bf16 must be 1.2x faster. Constant
    operands: the probe must not draw from the random generator that seeds the model."""
    a, b = torch.full((256, 512), 0.5), torch.full((512, 1024), 0.25)

    def best(x: torch.Tensor, y: torch.Tensor) -> float:
        x @ y  # warm-up: the first call picks and prepares the kernel
        times = []
        for _ in range(3):
            start = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - start)
        return min(times)

    return best(a.bfloat16(), b.bfloat16()) * 1.2 < best(a, b)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's picklable `value` in rank order on rank 0, None on the others; a
        collective call, so every rank must make it."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        gathered = [None] * self.world if self.main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered


def init_distributed(device_name: str) -> Dist:
    """Join the torchrun process group when launched by torchrun; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank)
