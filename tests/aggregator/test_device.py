from __future__ import annotations

import pytest
import torch

from aggregator.device import Compute, select_compute
from loraledger.errors import ConfigError


def test_select_compute_prefers_cuda_when_present_and_cpu_otherwise():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_compute().device.type == expected
    assert select_compute(gpu=False).device.type == "cpu"


def test_select_compute_refuses_a_gpu_request_without_cuda_or_gives_cuda():
    if torch.cuda.is_available():
        assert select_compute(gpu=True).device.type == "cuda"
    else:
        with pytest.raises(ConfigError, match="CUDA is not available") as info:
            select_compute(gpu=True)
        assert info.value.hint


def test_compute_rejects_a_half_precision_accumulator():
    with pytest.raises(ConfigError, match=r"float32 or float64, got torch\.float16"):
        Compute(dtype=torch.float16)
