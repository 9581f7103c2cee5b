"""What a process that waits on a round is waiting for, in one sentence with its deadline.

``aggregator run``, ``node run``, ``validator run`` and ``aggregator finalize --wait`` show it
live while they poll (the round's counts and deadline as the chain has them, and how far away
the deadline is in chain time), so a wait is never silent.
"""

from __future__ import annotations

from chain.bindings import Round
from chain.round_state import RoundState
from loraledger.display import chain_time

__all__ = ["awaiting"]


def awaiting(
    info: Round, state: RoundState, now: int, *, quorum: int, challenge_window: int
) -> str:
    """``info`` (of round ``info.round``) in state ``state`` at chain time ``now``: what the
    round waits for and until when."""
    n = info.round
    if state is RoundState.UNOPENED:
        return f"waiting for round {n} to be opened"
    if state is RoundState.OPEN:
        return (
            f"round {n}: {info.commits} of {info.eligible} nodes committed; the commit window "
            f"closes at {chain_time(info.deadline, now)}"
        )
    if state is RoundState.REVEALING:
        return (
            f"round {n}: {info.reveals} of {info.commits} commitments revealed; the reveal "
            f"window closes at {chain_time(info.reveal_deadline, now)}"
        )
    if state is RoundState.CLOSED:
        return (
            f"round {n}: closed with {info.reveals} revealed update(s); waiting for score "
            f"sheets ({info.scores_bitmap.bit_count()} posted) and a result signed by "
            f"{quorum} validator(s)"
        )
    if state is RoundState.FINALIZED:
        ends = info.finalized_at + challenge_window
        return f"round {n}: finalized; its challenge window ends at {chain_time(ends, now)}"
    if state is RoundState.SETTLED:
        return f"round {n}: settled; rewards are claimable"
    return f"round {n}: abandoned"
