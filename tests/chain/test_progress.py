from __future__ import annotations

from dataclasses import replace

import pytest

from chain.bindings import Round
from chain.progress import awaiting
from chain.round_state import RoundState

NOW = 1796175400
ROUND = Round(
    task_id=1,
    round=2,
    start_digest=b"",
    result_digest=b"",
    reward_root=b"",
    reward_total=0,
    claimed=0,
    result_hash=b"",
    slash_root=b"",
    opened_at=NOW - 10,
    deadline=NOW + 26,
    reveal_deadline=NOW + 86,
    finalized_at=0,
    voided_at=0,
    eligible=3,
    commits=1,
    reveals=0,
    accepted=0,
    rejected=0,
    epoch=0,
    scores_bitmap=0b101,
    signers=0,
    abandoned=False,
)


@pytest.mark.parametrize(
    ("state", "changes", "text"),
    [
        (RoundState.UNOPENED, {}, "waiting for round 2 to be opened"),
        (
            RoundState.OPEN,
            {},
            "round 2: 1 of 3 nodes committed; the commit window closes at "
            "2026-12-02 01:37:06 UTC (in 26 s)",
        ),
        (
            RoundState.REVEALING,
            {"commits": 2, "reveals": 1},
            "round 2: 1 of 2 commitments revealed; the reveal window closes at "
            "2026-12-02 01:38:06 UTC (in 86 s)",
        ),
        (
            RoundState.CLOSED,
            {"reveals": 2},
            "round 2: closed with 2 revealed update(s); waiting for score sheets (2 posted) and "
            "a result signed by 2 validator(s)",
        ),
        (
            RoundState.FINALIZED,
            {"finalized_at": NOW - 100},
            "round 2: finalized; its challenge window ends at 2026-12-02 01:45:00 UTC (in 8 min)",
        ),
        (RoundState.SETTLED, {}, "round 2: settled; rewards are claimable"),
        (RoundState.ABANDONED, {}, "round 2: abandoned"),
    ],
)
def test_a_wait_says_what_it_waits_for_and_until_when(
    state: RoundState, changes: dict[str, int], text: str
) -> None:
    info = replace(ROUND, **changes)
    assert awaiting(info, state, NOW, quorum=2, challenge_window=600) == text
