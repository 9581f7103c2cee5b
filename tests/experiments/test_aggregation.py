"""The attacks a poisoned node sends, relative to the round's global adapter."""

from __future__ import annotations

import math

import pytest
import torch

from experiments.aggregation import Attack
from loraledger.errors import ConfigError


def test_attacks_change_the_update_relative_to_the_global_adapter() -> None:
    reference = {"w": torch.tensor([1.0, 1.0, 1.0])}
    update = {"w": torch.tensor([2.0, 0.0, 1.0])}  # delta (1, -1, 0)
    assert torch.equal(
        Attack("scale", 10).poison(0)(update, reference)["w"], torch.tensor([11.0, -9.0, 1.0])
    )
    assert torch.equal(
        Attack("sign-flip", 2).poison(0)(update, reference)["w"], torch.tensor([-1.0, 3.0, 1.0])
    )
    noisy = Attack("noise", 3).poison(0)(update, reference)["w"] - reference["w"]
    assert float(noisy.norm()) == pytest.approx(3 * math.sqrt(2), rel=1e-5)
    with pytest.raises(ConfigError, match="attack must be one of"):
        Attack("flood", 1)
