"""The reward rules as stated reproduce every row: an implementation written from the rules'
text alone (tests/support/independent_rewards.py, no LoRA Ledger import) recomputes each pinned
report of real demo rounds, under the contribution rule with validators and under the old
claimed rule; amounts are decimal strings so that JavaScript reads them exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aggregator.audit.checks import RoundFacts, check_rewards
from aggregator.rewards import EARLIER_TEXTS, RULES
from chain.bindings import Ledger
from chain.events import History
from chain.network import connect
from demo.run import DemoConfig, run_demo
from fl_node.data import sample_examples
from fl_node.model import ModelConfig, create_tiny_model, load_base_model
from ipfs import ContentStore, open_store
from loraledger.report import RoundReport, fetch_report
from tests.support import independent_rewards


@dataclass
class Played:
    ledger: Ledger
    history: History
    store: ContentStore
    task_id: int

    def report(self, round_: int) -> tuple[bytes, RoundReport]:
        record = next(r for r in self.history.finalized(self.task_id) if r.round == round_)
        return self.store.get_bytes(record.report_cid), fetch_report(self.store, record.report_cid)

    def facts(self, round_: int) -> RoundFacts:
        record = next(r for r in self.history.finalized(self.task_id) if r.round == round_)
        return RoundFacts(
            self.ledger.task(self.task_id),
            self.ledger.round(self.task_id, round_),
            record,
            self.history.submissions(self.task_id, round_),
            [c for c in self.history.claims(self.task_id) if c.round == round_],
            validators=tuple(self.ledger.validators(self.task_id)),
        )


def _play(tmp: Path, *, legacy: bool, malicious: int) -> Played:
    corpus = [m.content for e in sample_examples() for m in e.messages]
    model = load_base_model(ModelConfig(source=str(create_tiny_model(tmp / "tiny", corpus))))
    chain = connect("embedded")
    store = open_store(f"embedded:{tmp / 'store'}")
    config = DemoConfig(
        nodes=3,
        rounds=2,
        malicious=malicious,
        legacy_rewards=legacy,
        steps=1,
        strategy="fedavg",
        task_rank=4,
        ranks=(4,),
        max_length=64,
        batch_size=2,
        validation_examples=4,
        node_eval_examples=4,
    )
    result = run_demo(chain, store, model, config, tmp / "out")
    ledger = Ledger(chain, result.ledger)
    return Played(ledger, History(ledger), store, result.task_id)


@pytest.fixture(scope="module", params=["contribution", "claimed"])
def played(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Played]:
    """Two demo rounds with a malicious node: the default rules (validators' median scores,
    their share of the pool) or the old claimed-examples rule (``--legacy-rewards``)."""
    legacy = request.param == "claimed"
    yield _play(tmp_path_factory.mktemp(request.param), legacy=legacy, malicious=1)


@pytest.mark.slow
def test_an_independent_implementation_of_the_stated_rule_reproduces_every_row(
    played: Played,
) -> None:
    for round_ in (1, 2):
        data, report = played.report(round_)
        table = {line.node.lower(): line.amount for line in report.rewards.lines}
        assert len(table) >= 2
        assert independent_rewards.amounts(data) == table
        assert sum(table.values()) == report.rewards.total <= report.rewards.pool


@pytest.mark.slow
def test_amounts_are_decimal_strings_that_javascript_reads_exactly(played: Played) -> None:
    data, report = played.report(1)
    body = json.loads(data)
    amounts = [line["amount"] for line in body["rewards"]["lines"]]
    assert all(isinstance(a, str) and a.isdigit() for a in amounts)
    assert isinstance(body["rewards"]["pool"], str) and isinstance(body["rewards"]["total"], str)
    assert all(isinstance(v["reward"], str) for v in body.get("validators", []))
    # as JSON numbers they would pass through a double in JavaScript's JSON.parse: digits lost
    assert any(int(float(a)) != int(a) for a in amounts)
    assert RoundReport.from_bytes(data) == report and report.to_bytes() == data


@pytest.mark.slow
def test_a_report_stating_the_rule_as_earlier_versions_did_still_audits(played: Played) -> None:
    _, report = played.report(1)
    rule = report.params["reward_rule"]
    # the agreement the audit re-derives from the sheets (checked there), as the report lists it
    agreement = {v.validator: v.agreement for v in report.validators} or None
    assert check_rewards(played.facts(1), report, agreement) == []
    for earlier in EARLIER_TEXTS.get(rule, ()):
        older = report.model_copy(
            update={
                "rewards": report.rewards.model_copy(
                    update={"rule": report.rewards.rule.replace(RULES[rule], earlier)}
                )
            }
        )
        assert check_rewards(played.facts(1), older, agreement) == []
    other = next(r for r in RULES if r != rule)
    wrong = report.model_copy(
        update={
            "rewards": report.rewards.model_copy(
                update={"rule": report.rewards.rule.replace(RULES[rule], RULES[other])}
            )
        }
    )
    assert any("not the" in p for p in check_rewards(played.facts(1), wrong, agreement))
