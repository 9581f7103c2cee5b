"""The validators' consensus: a lying minority moves no verdict, score or token."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.consensus import (
    Consensus,
    NodeConsensus,
    decide,
    split_round_pool,
    validator_amounts,
)
from aggregator.rewards import Share, round_amounts
from loraledger.errors import ConfigError, UpdateRejected
from loraledger.report import ScoreSheet, SheetEntry

NODES = ["0xAa", "0xBb", "0xCc"]


def sheet(validator: str, scores: dict[str, float | None], **entries: str) -> ScoreSheet:
    """A sheet scoring each node (``None``: rejected with the reason in ``entries``)."""
    return ScoreSheet(
        task_id=1,
        round=1,
        validator=validator,
        rule="contribution",
        start_loss=2.0,
        all_loss=1.5,
        entries=tuple(
            SheetEntry(node=n, verdict="accepted", score=s, eval_loss=2.0 - (s or 0))
            if s is not None
            else SheetEntry(node=n, verdict="rejected", reason=entries.get(n, "validation_worse"))
            for n, s in scores.items()
        ),
    )


def of(consensus: Consensus, node: str) -> NodeConsensus:
    decided = consensus.of(node)
    assert decided is not None
    return decided


def test_median_ignores_one_liar_of_three() -> None:
    honest_a = sheet("v1", {"0xAa": 0.10, "0xBb": 0.05, "0xCc": 0.02})
    honest_b = sheet("v2", {"0xAa": 0.12, "0xBb": 0.04, "0xCc": 0.03})
    # the liar: its crony 0xCc far above, an honest node rejected
    liar = sheet("v3", {"0xAa": None, "0xBb": 0.0, "0xCc": 5.0})
    c = decide(NODES, [honest_a, honest_b, liar], scored=True)
    assert all(of(c, n).accepted for n in NODES)
    assert of(c, "0xAa").score == pytest.approx(0.10)
    assert of(c, "0xCc").score == pytest.approx(0.03)
    assert c.agreement["v3"] < 0.5 < c.agreement["v1"]
    pay = validator_amounts(1000, c.agreement)
    assert pay.get("v3", 0) < pay["v1"]


def test_rejection_takes_the_majority_reason() -> None:
    sheets = [
        sheet("v1", {"0xAa": None}, **{"0xAa": "norm_outlier"}),
        sheet("v2", {"0xAa": None}, **{"0xAa": "norm_outlier"}),
        sheet("v3", {"0xAa": 1.0}),
    ]
    c = decide(["0xAa"], sheets, scored=True)
    decided = c.of("0xaa")
    assert decided is not None and not decided.accepted
    assert decided.reason == "norm_outlier" and decided.score == 0.0


def test_all_kept_but_median_not_positive_is_no_contribution() -> None:
    c = decide(["0xAa"], [sheet("v1", {"0xAa": -0.1}), sheet("v2", {"0xAa": 0.0})], scored=True)
    assert of(c, "0xAa").reason == "no_contribution"


def test_without_scores_a_strict_majority_of_verdicts_decides() -> None:
    sheets = [
        sheet("v1", {"0xAa": None, "0xBb": 0.0}),
        sheet("v2", {"0xAa": 0.0, "0xBb": 0.0}),
    ]
    c = decide(["0xAa", "0xBb"], sheets, scored=False)
    assert not of(c, "0xAa").accepted  # 1 of 2 is no majority
    assert of(c, "0xBb").accepted
    assert c.agreement == {"v1": 1.0, "v2": 0.5}


def test_no_sheet_keeps_every_update_and_an_empty_sheet_earns_nothing() -> None:
    assert of(decide(NODES, [], scored=True), "0xAa").accepted
    empty = ScoreSheet(task_id=1, round=1, validator="v3", rule="", entries=())
    c = decide(
        ["0xAa"], [sheet("v1", {"0xAa": 0.2}), sheet("v2", {"0xAa": 0.2}), empty], scored=True
    )
    assert of(c, "0xAa").score == pytest.approx(0.2)
    assert c.agreement["v3"] == 0.0
    assert "v3" not in validator_amounts(100, c.agreement)


def test_two_sheets_of_one_validator_are_refused() -> None:
    with pytest.raises(ConfigError):
        decide(NODES, [sheet("v1", {}), sheet("V1", {})], scored=True)


def test_sheets_refuse_non_finite_numbers_and_check_their_digest() -> None:
    with pytest.raises(ValueError):
        SheetEntry(node="0xAa", verdict="accepted", score=math.inf)
    s = sheet("v1", {"0xAa": 0.1})
    assert ScoreSheet.from_bytes(s.to_bytes()).digest == s.digest
    with pytest.raises(UpdateRejected):
        ScoreSheet.from_bytes(b'{"entries": 3}')


def test_validators_share_is_paid_only_when_an_update_is_accepted() -> None:
    assert split_round_pool(1000, 1000, True) == (900, 100)
    assert split_round_pool(1000, 1000, False) == (1000, 0)
    with pytest.raises(ConfigError):
        split_round_pool(1000, 10_001, True)
    shares = [Share("0xAa", 10, score=0.1), Share("0xBb", 10, score=0.3)]
    amounts = round_amounts(
        1000, shares, "contribution", share_bps=1000, agreement={"0xV1": 1.0, "0xBb": 1.0}
    )
    # the validators' 100 split evenly; 0xBb is a node and a validator: one line, the sum
    assert amounts == {"0xAa": 225, "0xBb": 675 + 50, "0xV1": 50}


scores = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    honest=st.lists(st.lists(scores, min_size=3, max_size=3), min_size=2, max_size=4),
    lies=st.lists(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=3)),
    pool=st.integers(0, 10**24),
)
def test_a_lying_minority_keeps_every_median_within_the_honest_range(
    honest: list[list[float]], lies: list[list[float]], pool: int
) -> None:
    lies = lies[: len(honest) - 1]  # a strict minority
    sheets = [sheet(f"h{i}", dict(zip(NODES, s, strict=True))) for i, s in enumerate(honest)]
    sheets += [sheet(f"l{i}", dict(zip(NODES, s, strict=True))) for i, s in enumerate(lies)]
    c = decide(NODES, sheets, scored=True)
    for j, node in enumerate(NODES):
        column = [s[j] for s in honest]
        median = of(c, node).score
        assert median is not None and min(column) <= median <= max(column)
    pay = validator_amounts(pool, c.agreement)
    assert sum(pay.values()) <= pool
    assert all(0.0 <= a <= 1.0 for a in c.agreement.values())
