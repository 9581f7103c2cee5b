"""Long-running loops ride out a chain that changes under them, and services that restart.

``aggregator run``, ``node run`` and ``validator run`` read the chain, act, and read it again.
A reorganisation (or an RPC node that lags behind another) can make what they read a moment ago
untrue: a round that was finalized is open again, an adapter a round starts from was never
published, a commitment is gone. Each step of those loops is safe to repeat (journals and the
contract's own state decide what is left to do), so such an error is not a reason to exit: the
loop waits a little and reads the chain again, as a restart would, and gives up only when the
chain keeps disagreeing for :attr:`Recovery.attempts` tries in a row. The same holds for a
chain RPC or an IPFS node that does not answer (:class:`ServiceUnavailable`, raised once one
request's own retries are spent): a restarting daemon is waited for, with one line per wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from chain.errors import (
    ChainMoved,
    LedgerCountMismatch,
    LedgerScoresMismatch,
    LedgerUnknownProposal,
    NonceTaken,
    RoundStateRevert,
)
from loraledger.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

CHAIN_CHANGED: tuple[type[Exception], ...] = (
    ChainMoved,
    RoundStateRevert,
    LedgerCountMismatch,
    LedgerScoresMismatch,
    LedgerUnknownProposal,  # a proposal just read or made was reorganised away
    NonceTaken,
)
"""Errors that say the chain is not what the loop read: read it again rather than exit."""

RECOVERABLE: tuple[type[Exception], ...] = (*CHAIN_CHANGED, ServiceUnavailable)
"""What a long-running loop waits out: the chain changed, or a service did not answer."""


@dataclass
class Recovery:
    """Consecutive chain-changed errors of one loop, and how long to wait after each
    (``first`` seconds, doubling up to ``longest``)."""

    what: str
    attempts: int = 8
    first: float = 0.5
    longest: float = 30.0
    failures: int = field(default=0, init=False)
    recovered: int = field(default=0, init=False)  # errors ridden out over the loop's life

    def failed(self, error: Exception) -> float:
        """Count ``error``; re-raise it once ``attempts`` came in a row, else return the pause
        before reading the chain again."""
        self.failures += 1
        if self.failures >= self.attempts:
            raise error
        self.recovered += 1
        pause = min(self.first * 2.0 ** (self.failures - 1), self.longest)
        why = (
            "a service does not answer"
            if isinstance(error, ServiceUnavailable)
            else "the chain changed under it"
        )
        logger.warning(
            "%s: %s (%s); trying again in %.1f s (%s of %s)",
            self.what,
            why,
            error,
            pause,
            self.failures,
            self.attempts - 1,
        )
        return pause

    def succeeded(self) -> None:
        """A step went through: the next error starts counting again."""
        self.failures = 0


T = TypeVar("T")


def outlast(start: Callable[[], T], what: str) -> T:
    """``start()`` (a long-running command's setup: connect, open the store, read the task),
    called again while a service does not answer, as the loops do (:class:`Recovery`): a command
    started while its chain or IPFS node restarts waits for them instead of exiting."""
    recovery = Recovery(what)
    while True:
        try:
            return start()
        except ServiceUnavailable as exc:
            time.sleep(recovery.failed(exc))
