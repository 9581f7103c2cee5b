"""The reward rules as stated reproduce every row: an implementation written from the rules'
text alone (tests/support/independent_rewards.py, no LoRA Ledger import) recomputes each pinned
report of real demo rounds, under the contribution rule with validators and under the old
claimed rule; amounts are decimal strings so that JavaScript reads them exactly."""

from __future__ import annotations

import json

import pytest

from aggregator.audit.checks import RoundFacts, check_rewards
from aggregator.rewards import EARLIER_TEXTS, RULES
from loraledger.report import RoundReport, fetch_report
from tests.support import independent_rewards
from tests.support.demo import PlayedDemo, play_tiny_demo


def _report(played: PlayedDemo, round_: int) -> tuple[bytes, RoundReport]:
    record = next(r for r in played.history.finalized(played.task_id) if r.round == round_)
    return played.store.get_bytes(record.report_cid), fetch_report(played.store, record.report_cid)


def _facts(played: PlayedDemo, round_: int) -> RoundFacts:
    record = next(r for r in played.history.finalized(played.task_id) if r.round == round_)
    return RoundFacts(
        played.ledger.task(played.task_id),
        played.ledger.round(played.task_id, round_),
        record,
        played.history.submissions(played.task_id, round_),
        [c for c in played.history.claims(played.task_id) if c.round == round_],
        validators=tuple(played.ledger.validators(played.task_id)),
    )


@pytest.fixture(scope="module", params=["contribution", "claimed"])
def played(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> PlayedDemo:
    """Two demo rounds of three nodes and a malicious one: the default rules (validators'
    median scores, their share of the pool) or the old claimed-examples rule
    (``--legacy-rewards``)."""
    return play_tiny_demo(
        tmp_path_factory.mktemp(request.param),
        nodes=3,
        rounds=2,
        malicious=1,
        legacy_rewards=request.param == "claimed",
        steps=3,  # enough training and held-out data that honest updates score above zero
        validation_examples=16,
    )


def _paying_round(played: PlayedDemo) -> int:
    """The round whose table has the most lines (a round may legitimately pay nobody)."""
    return max((1, 2), key=lambda r: len(_report(played, r)[1].rewards.lines))


@pytest.mark.slow
def test_an_independent_implementation_of_the_stated_rule_reproduces_every_row(
    played: PlayedDemo,
) -> None:
    rows = 0
    for round_ in (1, 2):
        data, report = _report(played, round_)
        table = {line.node.lower(): line.amount for line in report.rewards.lines}
        assert independent_rewards.amounts(data) == table
        assert sum(table.values()) == report.rewards.total <= report.rewards.pool
        rows += len(table)
    assert rows >= 2  # the rounds paid someone: the comparison covered real rows


@pytest.mark.slow
def test_amounts_are_decimal_strings_that_javascript_reads_exactly(played: PlayedDemo) -> None:
    data, report = _report(played, _paying_round(played))
    body = json.loads(data)
    amounts = [line["amount"] for line in body["rewards"]["lines"]]
    assert amounts and all(isinstance(a, str) and a.isdigit() for a in amounts)
    assert isinstance(body["rewards"]["pool"], str) and isinstance(body["rewards"]["total"], str)
    assert all(isinstance(v["reward"], str) for v in body.get("validators", []))
    # as JSON numbers they would pass through a double in JavaScript's JSON.parse: digits lost
    assert any(int(float(a)) != int(a) for a in amounts)
    assert RoundReport.from_bytes(data) == report and report.to_bytes() == data


@pytest.mark.slow
def test_a_report_stating_the_rule_as_earlier_versions_did_still_audits(played: PlayedDemo) -> None:
    n = _paying_round(played)
    _, report = _report(played, n)
    rule = report.params["reward_rule"]
    # the agreement the audit re-derives from the sheets (checked there), as the report lists it
    agreement = {v.validator: v.agreement for v in report.validators} or None
    assert check_rewards(_facts(played, n), report, agreement) == []
    for earlier in EARLIER_TEXTS.get(rule, ()):
        older = report.model_copy(
            update={
                "rewards": report.rewards.model_copy(
                    update={"rule": report.rewards.rule.replace(RULES[rule], earlier)}
                )
            }
        )
        assert check_rewards(_facts(played, n), older, agreement) == []
    other = next(r for r in RULES if r != rule)
    wrong = report.model_copy(
        update={
            "rewards": report.rewards.model_copy(
                update={"rule": report.rewards.rule.replace(RULES[rule], RULES[other])}
            )
        }
    )
    assert any("not the" in p for p in check_rewards(_facts(played, n), wrong, agreement))
