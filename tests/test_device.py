import pytest
import torch

from nmt.device import _bf16_multiplies_faster, autocast_dtype, fast_bf16, native_bf16
from nmt.errors import ConfigError

CPU = torch.device("cpu")


@pytest.mark.parametrize(("native", "faster"), [(True, True), (True, False), (False, False)])
def test_cpu_precisions(monkeypatch, native, faster):
    monkeypatch.setattr("nmt.device.native_bf16", lambda device: native)
    monkeypatch.setattr("nmt.device._bf16_multiplies_faster", lambda: faster)
    assert autocast_dtype(CPU, "fp32") is None
    # auto takes bf16 only where it is measured faster; asked for, it runs wherever it is native.
    assert autocast_dtype(CPU, "auto") == (torch.bfloat16 if faster else None)
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


def test_fast_bf16_probes_only_the_cpu(monkeypatch):
    probed = []
    monkeypatch.setattr("nmt.device._bf16_multiplies_faster", lambda: probed.append(1) or False)
    monkeypatch.setattr("nmt.device.native_bf16", lambda device: False)
    assert fast_bf16(CPU) is False and not probed  # not native: no probe
    monkeypatch.setattr("nmt.device.native_bf16", lambda device: True)
    assert fast_bf16(torch.device("cuda")) is True and not probed  # a GPU with bf16 is fast
    assert fast_bf16(CPU) is False and probed == [1]


def test_the_probe_measures_without_drawing_random_numbers():
    torch.manual_seed(0)
    want = torch.rand(3)
    torch.manual_seed(0)
    assert isinstance(_bf16_multiplies_faster.__wrapped__(), bool)
    assert torch.equal(torch.rand(3), want)  # training's seeded initialisation is unchanged
