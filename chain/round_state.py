"""The state of a round, mirroring ``ILoRALedger.RoundState``.

The contract is the one place that decides a round's state (``roundState(taskId, round)``);
:meth:`chain.bindings.Ledger.round_state` reads it and nothing in Python re-derives it from
the round's raw fields. Errors carry a set of allowed states as a bitmap, bit ``int(state)``
per state (``LedgerUnexpectedRoundState.expectedStates``), as OpenZeppelin's Governor does.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class RoundState(IntEnum):
    """Where a round is in its life: Unopened -> Open -> Revealing -> Closed -> Finalized."""

    UNOPENED = 0
    """Round 0, or a round not opened yet."""
    OPEN = 1
    """The commit phase: the window has not passed and not every joined node has committed
    (once all had, a later join does not reopen it)."""
    REVEALING = 2
    """The commit phase is over and some commitment is unrevealed, until the reveal deadline."""
    CLOSED = 3
    """Every commitment revealed, or the reveal deadline passed; awaiting finalization.
    Commitments never revealed count for nothing."""
    FINALIZED = 4
    """Result and reward root recorded; rewards can be claimed."""

    @property
    def pending(self) -> bool:
        """Opened and not finalized yet (``OPEN``, ``REVEALING`` or ``CLOSED``)."""
        return self in (RoundState.OPEN, RoundState.REVEALING, RoundState.CLOSED)

    @classmethod
    def from_bitmap(cls, bitmap: bytes) -> frozenset[RoundState]:
        """The states whose bit is set in a 32-byte state bitmap."""
        bits = int.from_bytes(bitmap, "big")
        unknown = bits & ~sum(1 << state for state in cls)
        if unknown:
            raise ValueError(f"state bitmap has bits for no known round state: {unknown:#x}")
        return frozenset(state for state in cls if bits >> state & 1)

    @staticmethod
    def to_bitmap(states: Iterable[RoundState]) -> bytes:
        """The 32-byte bitmap of ``states``, as the contract encodes it."""
        return sum(1 << state for state in set(states)).to_bytes(32, "big")
