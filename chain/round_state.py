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
    """Where a round is in its life: Unopened -> Open -> Revealing -> Closed -> Finalized ->
    Settled, and Abandoned from Open/Revealing/Closed. A challenged Finalized round goes back
    to Closed (voided, in a new epoch)."""

    UNOPENED = 0
    """Round 0, or a round not opened yet."""
    OPEN = 1
    """The commit phase: the window has not passed and not every eligible member (active when
    the round opened) has committed."""
    REVEALING = 2
    """The commit phase is over and some commitment is unrevealed, until the reveal deadline."""
    CLOSED = 3
    """Every commitment revealed, or the reveal deadline passed: validators post score sheets,
    results are proposed and signed. Commitments never revealed count for nothing."""
    FINALIZED = 4
    """A result reached its quorum of validator signatures; the challenge window runs (a
    successful challenge voids it back to ``CLOSED``). Nothing can be claimed yet."""
    SETTLED = 5
    """The challenge window passed: rewards can be claimed, the round's slashes executed until
    its slash window closes, and the next round opened."""
    ABANDONED = 6
    """Nobody finalized it within the task's grace period: nothing of it is reserved, its
    commitments unlock."""

    @property
    def pending(self) -> bool:
        """Opened and not finalized yet (``OPEN``, ``REVEALING`` or ``CLOSED``)."""
        return self in (RoundState.OPEN, RoundState.REVEALING, RoundState.CLOSED)

    @property
    def claimable(self) -> bool:
        """Rewards can be claimed (``SETTLED``)."""
        return self is RoundState.SETTLED

    @property
    def final(self) -> bool:
        """The round has ended for good (``SETTLED`` or ``ABANDONED``): the next one may open."""
        return self in (RoundState.SETTLED, RoundState.ABANDONED)

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
