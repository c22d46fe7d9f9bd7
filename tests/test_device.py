import pytest
import torch

from nmt.device import autocast_dtype, native_bf16
from nmt.errors import ConfigError

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_precisions(monkeypatch, native):
    monkeypatch.setattr("nmt.device.native_bf16", lambda device: native)
    assert autocast_dtype(CPU, "fp32") is None
    assert autocast_dtype(CPU, "auto") == (torch.bfloat16 if native else None)
    if native:
        assert autocast_dtype(CPU, "bf16") == torch.bfloat16
    else:
        with pytest.raises(ConfigError, match="needs AMX-BF16 or AVX512-BF16"):
            autocast_dtype(CPU, "bf16")
    with pytest.raises(ConfigError, match="fp16 is for CUDA"):
        autocast_dtype(CPU, "fp16")


@pytest.mark.parametrize(("flags", "native"), [("fpu avx2 amx_bf16 amx_tile", True),
                                               ("fpu avx512f avx512_bf16", True),
                                               ("fpu avx2 fma", False)])
def test_native_bf16_reads_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n")
    assert native_bf16(CPU, str(cpuinfo)) is native
    assert native_bf16(CPU, str(tmp_path / "missing")) is False
