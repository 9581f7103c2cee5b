"""A task's privacy policy in the round loop and the audit, on the embedded chain: updates that
break an example-level policy (no DP-SGD, less noise, a misstated epsilon) or a node-level one
(an unclipped change, no noise share) are rejected with a reason code and unpaid; node-level DP
aggregates with equal weights, keeps the adapter below its minimum of nodes and states what the
global adapters spent; the audit re-derives all of it and fails reports that lie about it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aggregator.combine import StrategyConfig
from aggregator.errors import REASON_CLIP_BOUND, REASON_PRIVACY_POLICY
from aggregator.round import RoundSettings
from chain.bindings import Finalization
from chain.events import History
from loraledger.errors import ConfigError
from loraledger.privacy import (
    Stretch,
    TaskPrivacy,
    clip_and_noise,
    epsilon,
    global_epsilon,
)
from loraledger.report import RoundReport
from loraledger.update import LocalMetrics, PrivacyRecord, parse_global_adapter
from tests.aggregator.round_builders import RoundWorld, make_world
from tests.aggregator.test_audit import auditor, failures, finalization, forge
from tests.support.chain import LedgerEnv

EXAMPLE = TaskPrivacy("example", 1.0, 1.0, 8.0, 1e-5, "rdp")
NODE = TaskPrivacy("node", 1.0, 0.01, 50.0, 1e-5, "rdp", 2)


def dp_sgd(noise: float = 1.1, *, stated: float | None = None) -> LocalMetrics:
    spent = epsilon([Stretch(noise, 0.05, 20)], 1e-5, "rdp")
    record = PrivacyRecord(
        noise_multiplier=noise,
        clip_norm=1.0,
        sample_rate=0.05,
        steps=20,
        delta=1e-5,
        epsilon=spent if stated is None else stated,
    )
    return LocalMetrics(privacy=record)


def share_record(policy: TaskPrivacy = NODE) -> LocalMetrics:
    share = Stretch(policy.share_multiplier, 1.0, 1)
    return LocalMetrics(
        privacy=PrivacyRecord(
            mode="node",
            noise_multiplier=policy.share_multiplier,
            clip_norm=policy.clip_norm,
            sample_rate=1.0,
            steps=1,
            delta=policy.delta,
            epsilon=epsilon([share], policy.delta, "rdp"),
        )
    )


def noised(world: RoundWorld, seed: int, round_: int = 1) -> dict[str, torch.Tensor]:
    """An honest node-level update of ``round_``: its change from the round's start adapter
    clipped to the bound, plus its noise share."""
    digest = world.env.ledger.round(world.task_id, round_).start_digest
    cid = History(world.env.ledger).global_adapter_at(world.task_id, digest)
    start = parse_global_adapter(world.store.get_bytes(cid)).tensors
    generator = torch.Generator().manual_seed(1000 + seed)
    return clip_and_noise(world.honest(seed), start, NODE, generator)


def verdicts(report: RoundReport) -> dict[str, str | None]:
    return {s.node: s.reason for s in report.submissions}


def test_an_example_level_task_rejects_updates_without_its_dp_and_the_audit_agrees(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=5, max_rounds=2, privacy=EXAMPLE)
    runner = world.runner()
    honest, clear, weak, liar, other_delta = embedded.nodes[:5]
    round_ = runner.open()
    world.submit(round_, honest, world.honest(1), metrics=dp_sgd())
    world.submit(round_, clear, world.honest(2))  # trained without DP: free of its cost
    world.submit(round_, weak, world.honest(3), metrics=dp_sgd(noise=0.5))  # less noise
    world.submit(round_, liar, world.honest(4), metrics=dp_sgd(stated=0.1))  # claims less
    spent = epsilon([Stretch(1.1, 0.05, 20)], 1e-4, "rdp")
    at_other_delta = LocalMetrics(
        privacy=PrivacyRecord(
            noise_multiplier=1.1,
            clip_norm=1.0,
            sample_rate=0.05,
            steps=20,
            delta=1e-4,
            epsilon=spent,
        )
    )
    world.submit(round_, other_delta, world.honest(5), metrics=at_other_delta)
    report = runner.finalize(round_).report
    reasons = verdicts(report)
    assert reasons[honest.address] is None
    for node in (clear, weak, liar, other_delta):
        assert reasons[node.address] == REASON_PRIVACY_POLICY
    details = {s.node: s.detail or "" for s in report.submissions}
    assert "trained without DP-SGD" in details[clear.address]
    assert "noise multiplier 0.5 is below the task's 1" in details[weak.address]
    assert "states epsilon 0.1, its own settings spend" in details[liar.address]
    assert "delta 0.0001" in details[other_delta.address]
    paid = {line.node for line in report.rewards.lines}
    assert honest.address in paid
    assert not paid & {n.address for n in (clear, weak, liar, other_delta)}
    assert report.privacy is None  # the global adapter's epsilon is node-level only
    assert failures(auditor(world).verify(world.task_id)) == {}
    world.settle(runner, round_)

    # a colluding majority accepts the clear update and pays it: the audit re-derives the verdict
    round_ = runner.open()
    world.submit(round_, honest, world.honest(11), metrics=dp_sgd())
    world.submit(round_, clear, world.honest(12))
    world.reveal_all(round_)

    def accept_all(report: RoundReport) -> Finalization:
        subs = tuple(
            s.model_copy(update={"verdict": "accepted", "reason": None, "detail": None})
            for s in report.submissions
        )
        return finalization(world, report.model_copy(update={"submissions": subs}))

    forge(world, round_, accept_all)
    failed = failures(auditor(world).verify(world.task_id, round_))
    assert (round_, "updates") in failed
    assert f"{clear.address}: re-derived privacy_policy" in failed[(round_, "updates")]


def test_a_node_level_task_sums_clipped_noised_updates_with_equal_weights(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=4, max_rounds=3, privacy=NODE)
    runner = world.runner()
    a, b, unclipped, silent = embedded.nodes[:4]
    round_ = runner.open()
    world.submit(round_, a, noised(world, 1), metrics=share_record(), examples=10)
    world.submit(round_, b, noised(world, 2), metrics=share_record(), examples=40)
    world.submit(round_, unclipped, world.honest(3), metrics=share_record())  # never clipped
    world.submit(round_, silent, noised(world, 4))  # states no noise share
    report = runner.finalize(round_).report
    reasons = verdicts(report)
    assert reasons[a.address] is None and reasons[b.address] is None
    assert reasons[unclipped.address] == REASON_CLIP_BOUND
    assert reasons[silent.address] == REASON_PRIVACY_POLICY
    weights = {s.node: s.weight for s in report.submissions if s.verdict == "accepted"}
    assert weights == {a.address: pytest.approx(0.5), b.address: pytest.approx(0.5)}  # not 1:4
    assert report.params["strategy"]["weighting"] == "equal"
    assert report.privacy is not None
    assert report.privacy.summed == 2
    assert report.privacy.epsilon == pytest.approx(global_epsilon(NODE, [2]))
    assert report.privacy.total == report.privacy.epsilon
    assert failures(auditor(world).verify(world.task_id)) == {}
    first_total = report.privacy.total
    world.settle(runner, round_)

    # one update is fewer than the 2 whose noise shares the policy needs: nothing is published
    round_ = runner.open()
    start = embedded.ledger.round(world.task_id, round_).start_digest
    world.submit(round_, a, noised(world, 5, round_), metrics=share_record())
    world.submit(round_, unclipped, world.honest(6), metrics=share_record())
    world.reveal_all(round_)
    outcome = runner.finalize(round_)
    assert outcome.report.privacy is not None
    assert (outcome.report.privacy.summed, outcome.report.privacy.epsilon) == (0, 0.0)
    assert outcome.report.privacy.total == pytest.approx(first_total)
    assert outcome.finalization.global_digest == start  # the task kept its adapter
    paid = {line.node for line in outcome.report.rewards.lines}
    assert a.address in paid and unclipped.address not in paid  # still paid for its work
    assert failures(auditor(world).verify(world.task_id)) == {}
    world.settle(runner, round_)

    # a report that understates what the global adapters spent, or that weighs by examples
    round_ = runner.open()
    world.submit(round_, a, noised(world, 7, round_), metrics=share_record(), examples=10)
    world.submit(round_, b, noised(world, 8, round_), metrics=share_record(), examples=40)
    world.reveal_all(round_)

    def understate(report: RoundReport) -> Finalization:
        assert report.privacy is not None
        lower = report.privacy.model_copy(update={"total": report.privacy.epsilon})
        strategy = {**report.params["strategy"], "weighting": "examples"}
        params = {**report.params, "strategy": strategy}
        forged = report.model_copy(update={"privacy": lower, "params": params})
        return finalization(world, forged)

    forge(world, round_, understate)
    failed = failures(auditor(world).verify(world.task_id, round_))
    assert list(failed) == [(round_, "aggregate")]
    detail = failed[(round_, "aggregate")]
    assert "the report states privacy" in detail
    assert "weighs them by examples" in detail


def test_a_node_level_task_refuses_an_aggregator_strategy_that_drops_noise(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=2, privacy=NODE)
    with pytest.raises(ConfigError, match="noise shares add up only in FedAvg"):
        world.runner(RoundSettings(strategy=StrategyConfig(name="median")))
    runner = world.runner(RoundSettings(strategy=StrategyConfig(name="fedavg")))
    assert runner.settings.strategy.weighting == "equal"
