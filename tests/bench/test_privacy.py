"""``bench.privacy``: DP-SGD against clear training in one run, and the phases of a step."""

from __future__ import annotations

import math

import pytest

from bench.privacy import CLEAR, PRIVATE, measure
from loraledger.errors import ConfigError


@pytest.mark.slow
def test_dp_sgd_and_clear_training_are_measured_side_by_side_with_the_phases_of_a_step() -> None:
    bench = measure("tiny", 3, 8, 64, 4, 1.0, 1)
    assert (bench.clear.path, bench.private.path) == (CLEAR, PRIVATE)
    assert bench.clear.tokens > 0 and bench.private.tokens > 0
    assert math.isfinite(bench.ratio) and bench.ratio > 0
    assert bench.epsilon > 0  # the private runs really were private
    # only a DP-SGD step clips each example's gradient and adds noise
    assert bench.private_phases.privatize > bench.clear_phases.privatize >= 0
    for phases in (bench.clear_phases, bench.private_phases):
        assert phases.forward > 0 and phases.backward > 0 and phases.update > 0
        assert phases.step == pytest.approx(sum(phases.as_tuple()))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("gpt2", 3, 8, 64, 4, 1.0, 1), "--model must be tiny or smollm2"),
        (("tiny", 0, 8, 64, 4, 1.0, 1), "must be positive"),
        (("tiny", 3, 8, 64, 4, 1.0, 0), "must be positive"),
        (("tiny", 3, 8, 64, 4, 0.0, 1), "noise multiplier must be positive"),
    ],
)
def test_impossible_settings_are_refused_before_anything_loads(
    args: tuple[str, int, int, int, int, float, int], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        measure(*args)
