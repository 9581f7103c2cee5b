"""A loop rides out a few chain-changed errors in a row, waiting longer each time, and gives
up with the error itself when the chain keeps disagreeing."""

from __future__ import annotations

import pytest

from chain.errors import ChainMoved
from chain.recovery import Recovery


def test_pauses_double_up_to_the_longest_and_a_success_starts_again() -> None:
    recovery = Recovery("test loop", attempts=6, first=0.5, longest=3.0)
    error = ChainMoved("round 2 is gone")
    assert [recovery.failed(error) for _ in range(4)] == [0.5, 1.0, 2.0, 3.0]
    recovery.succeeded()
    assert recovery.failed(error) == 0.5  # counted afresh
    assert recovery.recovered == 5


def test_the_error_stands_when_the_chain_keeps_disagreeing() -> None:
    recovery = Recovery("test loop", attempts=3)
    error = ChainMoved("never published")
    recovery.failed(error)
    recovery.failed(error)
    with pytest.raises(ChainMoved, match="never published"):
        recovery.failed(error)
