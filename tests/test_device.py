import pytest
import torch

from nmt.device import autocast_dtype
from nmt.errors import ConfigError

CPU = torch.device("cpu")


def test_cpu_precisions():
    assert autocast_dtype(CPU, "fp32") is None
    assert autocast_dtype(CPU, "auto") is None
    assert autocast_dtype(CPU, "bf16") == torch.bfloat16
    with pytest.raises(ConfigError, match="fp16 is for CUDA"):
        autocast_dtype(CPU, "fp16")
