"""The round loop on the embedded chain and store: verification against commitments,
aggregation, publishing, rewards nodes can claim, and recovery from a crash at every step."""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path

import pytest
import torch
from eth_account.signers.local import LocalAccount

from aggregator.client_update import ClientUpdate
from aggregator.combine import StrategyConfig
from aggregator.flexlora import RankTarget, flexlora
from aggregator.round import STEPS, RoundNotOpened, RoundNotReady, RoundRunner, RoundSettings
from aggregator.verify import VerifyPolicy
from chain import errors
from chain.events import History
from chain.merkle import leaf_hash, verify
from chain.round_state import RoundState
from chain.session import Session
from fl_node.node import claim
from ipfs import compute_cid
from loraledger.display import chain_time
from loraledger.errors import ChainError
from loraledger.update import Expected, PeftSpec, parse_global_adapter
from tests.aggregator.round_builders import (
    SPEC,
    RoundWorld,
    make_world,
    raw_update,
    update_metadata,
)
from tests.support.chain import LedgerEnv


class Crash(Exception):
    pass


def _global(world: RoundWorld, outcome_cid: str, digest: str) -> dict[str, torch.Tensor]:
    data = world.store.get_bytes(outcome_cid)
    return parse_global_adapter(data, Expected(task_id=world.task_id, digest=digest)).tensors


def _fedavg(parts: list[tuple[dict[str, torch.Tensor], int]]) -> dict[str, torch.Tensor]:
    total = sum(n for _, n in parts)
    return {k: sum(t[k].double() * (n / total) for t, n in parts).float() for k in parts[0][0]}


def test_an_honest_round_is_aggregated_published_finalized_and_claimable(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=3)
    runner = world.runner()
    round_ = runner.open()
    examples = [10, 20, 30]
    updates = [world.honest(i) for i in range(3)]
    for node, tensors, n in zip(embedded.nodes[:3], updates, examples, strict=True):
        world.submit(round_, node, tensors, examples=n)
    assert runner.ready(round_)  # every joined node submitted: no need to wait for the window

    outcome = runner.finalize(round_)

    report = outcome.report
    assert [s.verdict for s in report.submissions] == ["accepted"] * 3
    assert (report.task_id, report.round, report.strategy) == (world.task_id, round_, "fedavg")
    weights = {s.node: s.weight for s in report.submissions}
    assert math.isclose(sum(weights.values()), 1.0)
    # claims are capped at the median claim (20): weights 10/50, 20/50, 20/50
    capped = [10, 20, 20]
    assert [s.weight_examples for s in report.submissions] == capped
    assert weights[embedded.nodes[2].address] == pytest.approx(0.4)
    on_chain = embedded.ledger.round(world.task_id, round_)
    assert on_chain.finalized and (on_chain.accepted, on_chain.rejected) == (3, 0)
    assert on_chain.result_digest.hex() == report.global_digest
    # the global adapter is the (capped) example-weighted mean, computed here independently
    got = _global(world, report.global_cid, report.global_digest)
    expected = _fedavg(list(zip(updates, capped, strict=True)))
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)
    # rewards (no validation data: the examples rule): 90% of the pool split by capped
    # examples, the validators' 10% split by their agreement (all agree: evenly), each proof
    # valid against the on-chain root
    assert report.params["reward_rule"] == "examples"
    task = embedded.ledger.task(world.task_id)
    pool, share = task.reward_per_round, task.validator_share_bps
    to_nodes = pool - pool * share // 10_000
    amounts = {line.node: line.amount for line in report.rewards.lines}
    validators = {v.address: pool * share // 10_000 // 3 for v in embedded.validators}
    assert (
        amounts
        == {n.address: to_nodes * e // 50 for n, e in zip(embedded.nodes[:3], capped, strict=True)}
        | validators
    )
    assert [line.agreement for line in report.validators] == [1.0, 1.0, 1.0]
    assert on_chain.signers.bit_count() >= task.quorum
    assert report.rewards.total == sum(amounts.values()) == on_chain.reward_total
    for line in report.rewards.lines:
        leaf = leaf_hash(world.task_id, round_, line.node, line.amount)
        assert verify(on_chain.reward_root, leaf, [bytes.fromhex(p) for p in line.proof])
    # the report is pinned under the CID on chain, and nodes claim with it
    (record,) = History(embedded.ledger).finalized(world.task_id)
    assert record.report_cid == outcome.report_cid and world.store.has(record.report_cid)
    node = embedded.nodes[2]
    before = embedded.token.balance_of(node.address)
    session = Session(embedded.ledger, History(embedded.ledger), world.store, node)
    assert claim(session, world.task_id) == []  # the challenge window is still running
    world.settle(runner, round_)
    claimed = claim(
        Session(embedded.ledger, History(embedded.ledger), world.store, node), world.task_id
    )
    assert [c.amount for c in claimed] == [amounts[node.address]]
    assert embedded.token.balance_of(node.address) - before == amounts[node.address]


def test_bad_updates_are_rejected_with_their_reason_and_the_aggregate_is_the_clean_one(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=8)
    nodes = embedded.nodes
    runner = world.runner()
    round_ = runner.open()
    tid = world.task_id
    clean = [world.honest(i) for i in range(3)]
    for node, tensors in zip(nodes[:3], clean, strict=True):
        world.submit(round_, node, tensors)
    # x100 scaled weights: a norm outlier
    world.submit(round_, nodes[3], {k: v * 100 for k, v in world.honest(3).items()})
    # NaN values (forged past the builder's checks)
    nan = world.honest(4)
    next(iter(nan.values()))[0, 0] = float("nan")
    world.submit(
        round_, nodes[4], data=raw_update(nan, update_metadata(tid, round_, nodes[4].address, 10))
    )
    # committed digest of other bytes than those pinned
    world.submit(
        round_, nodes[5], world.honest(5), commit_digest=hashlib.sha256(b"something else").digest()
    )
    # a replay: node 6 sends node 0's tensors under its own name
    world.submit(round_, nodes[6], clean[0])
    # a CID nobody stored
    world.submit(round_, nodes[7], data=b"never pinned", cid=compute_cid(b"never pinned"))

    outcome = runner.finalize(round_)

    verdicts = {s.node: (s.verdict, s.reason) for s in outcome.report.submissions}
    assert verdicts == {
        nodes[0].address: ("accepted", None),
        nodes[1].address: ("accepted", None),
        nodes[2].address: ("accepted", None),
        nodes[3].address: ("rejected", "norm_outlier"),
        nodes[4].address: ("rejected", "non_finite"),
        nodes[5].address: ("rejected", "digest_mismatch"),
        nodes[6].address: ("rejected", "replayed_update"),
        nodes[7].address: ("rejected", "unavailable"),
    }
    for s in outcome.report.submissions:
        assert (s.detail is None) == (s.verdict == "accepted")
        if s.verdict == "rejected":
            assert s.weight == 0 and outcome.report.reward_for(s.node) is None
    info = embedded.ledger.round(tid, round_)
    assert (info.accepted, info.rejected) == (3, 5)
    got = _global(world, outcome.report.global_cid, outcome.report.global_digest)
    expected = _fedavg([(t, 10) for t in clean])
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)


def test_metadata_that_disagrees_with_the_commitment_is_rejected(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=6)
    nodes, tid = embedded.nodes, world.task_id
    runner = world.runner()
    round_ = runner.open()
    world.submit(round_, nodes[0], world.honest(0))
    world.submit(
        round_,
        nodes[1],
        data=raw_update(world.honest(1), update_metadata(tid, round_, nodes[0].address, 10)),
    )
    world.submit(
        round_,
        nodes[2],
        data=raw_update(world.honest(2), update_metadata(tid, round_, nodes[2].address, 99)),
    )
    world.submit(
        round_,
        nodes[3],
        data=raw_update(world.honest(3), update_metadata(tid, round_ + 1, nodes[3].address, 10)),
    )
    other_layers = {k.replace("q_proj", "k_proj"): v for k, v in world.honest(4).items()}
    world.submit(
        round_,
        nodes[4],
        other_layers,
        spec=PeftSpec(rank=4, alpha=8.0, target_modules=("k_proj", "v_proj")),
    )
    world.submit(round_, nodes[5], data=b"not safetensors at all")

    outcome = runner.finalize(round_)

    reasons = [s.reason for s in outcome.report.submissions]
    assert reasons == [
        None,
        "wrong_node",
        "examples_mismatch",
        "wrong_round",
        "spec_mismatch",
        "not_safetensors",
    ]


@pytest.mark.parametrize("outlier_check", [True, False])
def test_a_sign_flip_is_rejected_by_the_norm_check_or_neutralised_by_the_median(
    embedded: LedgerEnv, tmp_path: Path, outlier_check: bool
) -> None:
    policy = VerifyPolicy() if outlier_check else VerifyPolicy(outliers=None)
    world = make_world(embedded, tmp_path, nodes=6)
    runner = world.runner(RoundSettings(strategy=StrategyConfig(name="median"), verify=policy))
    round_ = runner.open()
    clean = [world.honest(i, noise=0.01) for i in range(5)]
    for node, tensors in zip(embedded.nodes[:5], clean, strict=True):
        world.submit(round_, node, tensors)
    flipped = {k: (-v if "lora_B" in k else v) for k, v in world.honest(5, noise=0.01).items()}
    world.submit(round_, embedded.nodes[5], flipped)

    outcome = runner.finalize(round_)

    flip_verdict = outcome.report.submissions[-1]
    assert (flip_verdict.verdict, flip_verdict.reason) == (
        ("rejected", "norm_outlier") if outlier_check else ("accepted", None)
    )
    got = _global(world, outcome.report.global_cid, outcome.report.global_digest)
    reference = _fedavg([(t, 10) for t in clean])
    naive = _fedavg([(t, 10) for t in [*clean, flipped]])
    error = max(float((got[k] - reference[k]).abs().max()) for k in reference)
    naive_error = max(float((naive[k] - reference[k]).abs().max()) for k in reference)
    assert error < 0.05 < naive_error


def test_heterogeneous_ranks_with_flexlora_and_projection_for_fedavg(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    small = PeftSpec(rank=2, alpha=4.0, target_modules=SPEC.target_modules)
    for name in ("flexlora", "fedavg"):
        world = make_world(embedded, tmp_path / name, nodes=3)
        runner = world.runner(RoundSettings(strategy=StrategyConfig(name=name)))
        round_ = runner.open()
        updates = [
            (world.honest(0), SPEC),
            (world.honest(1, spec=small), small),
            (world.honest(2), SPEC),
        ]
        for node, (tensors, spec) in zip(embedded.nodes[:3], updates, strict=True):
            world.submit(round_, node, tensors, spec=spec)
        outcome = runner.finalize(round_)
        assert [s.verdict for s in outcome.report.submissions] == ["accepted"] * 3
        got = _global(world, outcome.report.global_cid, outcome.report.global_digest)
        assert all(v.shape[0 if "lora_A" in k else 1] == SPEC.rank for k, v in got.items())
        if name == "flexlora":
            target = RankTarget(SPEC.rank, SPEC.alpha)
            inputs = [
                ClientUpdate.in_memory(n.address, t, num_examples=10, rank=s.rank, alpha=s.alpha)
                for n, (t, s) in zip(embedded.nodes[:3], updates, strict=True)
            ]
            expected = flexlora(inputs, [target]).adapters[target]
            for key in expected:
                torch.testing.assert_close(got[key], expected[key])


@pytest.mark.parametrize("step", STEPS[1:])
def test_a_crash_after_any_step_is_recovered_and_finalizes_once(
    embedded: LedgerEnv, tmp_path: Path, step: str
) -> None:
    world = make_world(embedded, tmp_path, nodes=3)
    round_ = world.runner().open()
    for i, node in enumerate(embedded.nodes[:3]):
        world.submit(round_, node, world.honest(i), examples=10 + i)

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        world.runner(checkpoint=crash).finalize(round_)
    outcome = world.runner().finalize(round_)

    history = History(embedded.ledger)
    finalized = [f for f in history.finalized(world.task_id) if f.round == round_]
    assert len(finalized) == 1
    assert (finalized[0].accepted, finalized[0].rejected) == (3, 0)
    assert outcome.report_cid == finalized[0].report_cid
    # one proposal in all: a crash before the journal had proposed nothing, and from the
    # journal on the restarted run proposes what was journaled (once, if not on chain yet)
    (proposal,) = history.proposals(world.task_id, round_)
    assert proposal.result_hash == finalized[0].result_hash
    assert outcome.resumed == (step in ("journaled", "proposed", "finalized"))
    assert (
        sum(line.amount for line in outcome.report.rewards.lines) == finalized[0].reward_total > 0
    )


def test_a_journal_computed_from_commitments_a_reorganisation_replaced_is_not_proposed(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """Crashed with the result journaled; then a reorganisation replaces all three commitments
    with others, at the same count, the same reveals and no sheet: the restarted run must not
    propose the journal, which pays for updates the chain no longer has."""
    world = make_world(embedded, tmp_path, nodes=3)
    round_ = world.runner().open()
    before = embedded.snapshot()
    for i, node in enumerate(embedded.nodes[:3]):
        world.submit(round_, node, world.honest(i), examples=10 + i)

    def crash(at: str) -> None:
        if at == "journaled":
            raise Crash(at)

    with pytest.raises(Crash):
        world.runner(checkpoint=crash).finalize(round_)
    stale = {
        c.digest for c in world.runner().inputs(round_, 3).commitments
    }  # what the journal was computed from

    embedded.revert(before)  # the commitments and reveals are gone
    for i, node in enumerate(embedded.nodes[:3]):
        world.submit(round_, node, world.honest(10 + i), examples=10 + i)  # others, same count
    outcome = world.runner().finalize(round_)

    assert not outcome.resumed  # recomputed from what the chain has now
    paid = {s.digest for s in outcome.report.submissions}
    assert len(paid) == 3 and not paid & stale
    (finalized,) = [f for f in History(embedded.ledger).finalized(world.task_id) if f.round == 1]
    assert finalized.report_cid == outcome.report_cid


def test_a_crash_after_opening_does_not_open_twice(embedded: LedgerEnv, tmp_path: Path) -> None:
    world = make_world(embedded, tmp_path, nodes=1)

    def crash(at: str) -> None:
        raise Crash(at)

    with pytest.raises(Crash):
        world.runner(checkpoint=crash).open()
    assert world.runner().open() == 1
    assert embedded.ledger.task(world.task_id).rounds_opened == 1


def test_a_node_joining_while_finalizing_cannot_reopen_the_round(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """Every joined node committed: a late joiner (who has seen the reveals) cannot commit."""
    world = make_world(embedded, tmp_path, nodes=2)
    round_ = world.runner().open()
    for i, node in enumerate(embedded.nodes[:2]):
        world.submit(round_, node, world.honest(i))
    late = embedded.nodes[2]
    refused: list[RoundState] = []

    def join_and_submit(at: str) -> None:
        if at == "journaled" and not refused:
            embedded.join(world.task_id, late)
            with pytest.raises(errors.LedgerUnexpectedRoundState) as info:
                world.submit(round_, late, world.honest(2))
            refused.append(info.value.current)

    outcome = world.runner(checkpoint=join_and_submit).finalize(round_)
    assert refused == [RoundState.CLOSED]
    assert len(outcome.report.submissions) == 2
    assert embedded.ledger.round(world.task_id, round_).accepted == 2


def test_a_round_another_run_finalizes_meanwhile_is_returned_not_finalized_twice(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=2)
    round_ = world.runner().open()
    for i, node in enumerate(embedded.nodes[:2]):
        world.submit(round_, node, world.honest(i))
    other: list[str] = []

    def another_run_finalizes_first(at: str) -> None:
        if at == "journaled" and not other:  # this run is about to send finalizeRound
            other.append(world.runner().finalize(round_).report_cid)

    outcome = world.runner(checkpoint=another_run_finalizes_first).finalize(round_)
    history = History(embedded.ledger)
    (finalized,) = [f for f in history.finalized(world.task_id) if f.round == round_]
    assert outcome.report_cid == other[0] == finalized.report_cid
    assert embedded.ledger.round_state(world.task_id, round_) is RoundState.FINALIZED
    # the late run's result was refused on chain, not left as a second proposal to sign
    assert [p.result_hash for p in history.proposals(world.task_id, round_)] == [
        finalized.result_hash
    ]


def test_finalizing_a_round_never_opened_fails_clearly(embedded: LedgerEnv, tmp_path: Path) -> None:
    world = make_world(embedded, tmp_path, nodes=1)
    runner = world.runner()
    with pytest.raises(ChainError, match=r"round 1 of task .* has not been opened"):
        runner.finalize(1)
    with pytest.raises(RoundNotOpened, match=r"round 1 of task .* has not been opened"):
        runner.ready(1)  # a wait for it would never end


def test_an_open_window_and_a_wrong_account_fail_clearly(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """Only the task's aggregator and its validators run the round loop: a node's account is
    refused at once, a validator's proposes the round's result like the aggregator's would."""
    world = make_world(embedded, tmp_path, nodes=2)
    runner = world.runner()
    round_ = runner.open()
    world.submit(round_, embedded.nodes[0], world.honest(0))
    with pytest.raises(RoundNotReady, match="1 of 2 nodes committed"):
        runner.finalize(round_)
    assert not runner.wait(round_, poll_seconds=0.01, timeout=0.05)
    embedded.chain.advance_time(3601)
    with pytest.raises(RoundNotReady, match="0 of 1 commitments revealed"):
        runner.finalize(round_)
    world.reveal_all(round_)
    with pytest.raises(ChainError, match="is neither the aggregator nor a validator"):
        RoundRunner(world.session(embedded.nodes[0]), world.task_id)
    validator = embedded.validators[0]
    by_validator = RoundRunner(
        world.session(validator), world.task_id, validators=world.validators(), sheet_timeout=0.0
    )
    assert not by_validator.is_aggregator

    outcome = by_validator.finalize(round_)  # the window closed: the absent node does not block

    assert [s.node for s in outcome.report.submissions] == [embedded.nodes[0].address]
    (finalized,) = History(embedded.ledger).finalized(world.task_id)
    assert (finalized.proposer, finalized.report_cid) == (validator.address, outcome.report_cid)


def _nodes_train_from_the_start(
    world: RoundWorld, history: History, nodes: list[LocalAccount], round_: int
) -> None:
    """Each node commits and reveals the adapter ``round_`` starts from plus its own noise."""
    start_digest = world.env.ledger.round(world.task_id, round_).start_digest
    start_cid = history.global_adapter_at(world.task_id, start_digest)
    start = parse_global_adapter(world.store.get_bytes(start_cid)).tensors
    for i, node in enumerate(nodes):
        g = torch.Generator().manual_seed(100 * round_ + i)
        tensors = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in start.items()}
        world.submit(round_, node, tensors)


def test_run_goes_round_after_round_carrying_the_server_optimizer_state(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=3, max_rounds=2)
    nodes = embedded.nodes[:3]
    history = History(embedded.ledger)

    def nodes_submit(at: str) -> None:
        round_ = embedded.ledger.task(world.task_id).rounds_opened
        if at == "finalized":  # time travel past the challenge window: run() settles the round
            embedded.settle(world.task_id, round_)
        if at != "opened":
            return
        _nodes_train_from_the_start(world, history, nodes, round_)

    settings = RoundSettings(strategy=StrategyConfig(name="fedadam", server_lr=0.05))
    outcomes = world.runner(settings, checkpoint=nodes_submit).run(poll_seconds=0.01)

    assert [o.round for o in outcomes] == [1, 2]
    assert embedded.ledger.is_complete(world.task_id)
    assert [embedded.ledger.round_state(world.task_id, r) for r in (1, 2)] == [
        RoundState.SETTLED
    ] * 2
    first, second = (o.report for o in outcomes)
    assert second.start_digest == first.global_digest
    assert (
        first.params["server_state_cid"]
        and second.params["server_state_cid_in"] == first.params["server_state_cid"]
    )
    assert [(s.verdict, s.detail) for o in outcomes for s in o.report.submissions] == [
        ("accepted", None)
    ] * 6
    assert world.runner(settings).run(poll_seconds=0.01) == []  # complete: nothing more to do


def test_run_rides_out_a_reorganisation_that_removes_a_finalization_and_the_next_round(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """As the issue saw on anvil: blocks replaced under a running aggregator took away round
    1's finalization, round 2's opening and the nodes' round-2 commitments. The run reads the
    chain again (as a restart would) and finishes both rounds, each finalized once."""
    world = make_world(embedded, tmp_path, nodes=3, max_rounds=2)
    nodes = embedded.nodes[:3]
    history = History(embedded.ledger)
    marks: dict[str, object] = {}

    def nodes_submit_and_reorganise(at: str) -> None:
        round_ = embedded.ledger.task(world.task_id).rounds_opened
        if at == "collected" and round_ == 1 and "before" not in marks:
            marks["before"] = embedded.snapshot()  # round 1 not finalized yet
        if at == "collected" and round_ == 2 and "reorganised" not in marks:
            marks["reorganised"] = True
            embedded.revert(marks["before"])  # gone: round 1's result, round 2, its updates
        if at == "finalized":
            embedded.settle(world.task_id, round_)
        if at != "opened":
            return
        _nodes_train_from_the_start(world, history, nodes, round_)

    runner = world.runner(checkpoint=nodes_submit_and_reorganise)
    outcomes = runner.run(poll_seconds=0.01)

    assert marks.get("reorganised") and runner.recovered >= 1  # it happened, and was ridden out
    assert [o.round for o in outcomes] == [1, 2]
    assert embedded.ledger.is_complete(world.task_id)
    finalized = [f.round for f in history.finalized(world.task_id)]
    assert finalized == [1, 2]  # on the chain as it is now: each round once
    first, second = (o.report for o in outcomes)
    assert second.start_digest == first.global_digest
    assert [s.verdict for o in outcomes for s in o.report.submissions] == ["accepted"] * 6


def test_a_wait_tells_what_it_waits_for_and_until_when(embedded: LedgerEnv, tmp_path: Path) -> None:
    world = make_world(embedded, tmp_path, nodes=3, max_rounds=1)
    heard: list[str] = []
    runner = world.runner(on_wait=heard.append)
    round_ = runner.open()
    deadline = embedded.ledger.round(world.task_id, round_).deadline
    assert not runner.wait(round_, poll_seconds=0.01, timeout=0.2)  # nobody commits
    assert heard, "a wait of 0.2 s polled at least once"
    assert all(
        h.startswith(
            f"round 1: 0 of 3 nodes committed; the commit window closes at {chain_time(deadline)} "
            "(in "
        )
        for h in heard
    )


@pytest.mark.ganache
def test_on_ganache_a_node_that_drops_out_does_not_block_the_round(
    ganache_env: LedgerEnv, tmp_path: Path
) -> None:
    """Ganache mines only on transactions: with nobody submitting its clock would stand still,
    so waiting keeps it moving and the window closes on time."""
    snapshot = ganache_env.snapshot()
    try:
        world = make_world(ganache_env, tmp_path, nodes=2, window=3)
        runner = world.runner()
        round_ = runner.open()
        world.submit(round_, ganache_env.nodes[0], world.honest(0))
        world.reveal_all(round_)  # once the commit window is over
        assert runner.wait(round_, poll_seconds=0.2, timeout=60)
        outcome = runner.finalize(round_)
        assert [s.node for s in outcome.report.submissions] == [ganache_env.nodes[0].address]
        assert {line.node for line in outcome.report.rewards.lines} == {
            ganache_env.nodes[0].address,
            *(v.address for v in ganache_env.validators),
        }
    finally:
        ganache_env.revert(snapshot)


def test_commitments_follow_the_commit_order_and_unrevealed_nodes_are_named(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """Who was first is decided by the hidden commitments, not by who revealed first; a node
    that committed and never revealed is named, and not collected."""
    world = make_world(embedded, tmp_path, nodes=3)
    runner = world.runner()
    round_ = runner.open()
    a, b, c = embedded.nodes[:3]
    for i, node in enumerate((b, a, c)):
        world.submit(round_, node, world.honest(i))  # c's commitment ends the commit phase
    commits = History(embedded.ledger).commits(world.task_id, round_)
    collected = runner._commitments(round_, 3)
    assert [x.node for x in collected] == [b.address, a.address, c.address]
    assert [(x.block, x.tx_index) for x in collected] == [(e.block, e.tx_index) for e in commits]
    assert runner._unrevealed(round_) == []

    world2 = make_world(embedded, tmp_path / "second", nodes=3)
    runner2 = world2.runner()
    round2 = runner2.open()
    world2.submit(round2, c, world2.honest(0))
    world2.submit(round2, b, world2.honest(1))
    embedded.chain.advance_time(3601)  # a never commits: the window ends the commit phase
    embedded.ledger.reveal_update(
        world2.task_id, round2, *world2.unrevealed.pop((round2, b.address))[1:], b
    )
    embedded.chain.advance_time(3601)  # c never reveals
    assert embedded.ledger.round_state(world2.task_id, round2) is RoundState.CLOSED
    assert [x.node for x in runner2._commitments(round2, 1)] == [b.address]
    assert runner2._unrevealed(round2) == [c.address]
    with pytest.raises(ChainError, match="counts 2 reveals but 1"):
        runner2._commitments(round2, 2)


def test_a_copy_of_an_earlier_rounds_update_and_a_resubmitted_global_adapter_earn_nothing(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=4)
    runner = world.runner()
    nodes = embedded.nodes
    round_one = runner.open()
    first = [world.honest(i) for i in range(4)]
    for node, tensors in zip(nodes[:4], first, strict=True):
        world.submit(round_one, node, tensors)
    one = runner.finalize(round_one)
    assert [s.verdict for s in one.report.submissions] == ["accepted"] * 4
    global_one = parse_global_adapter(world.store.get_bytes(one.report.global_cid)).tensors
    world.settle(runner, round_one)

    round_two = runner.open()
    world.submit(round_two, nodes[0], world.honest(10))
    world.submit(round_two, nodes[1], world.honest(11))
    # node 2 sends node 0's round-1 update again with other bytes (A x 4, B / 4)
    stale = {k: v * 4 if "lora_A" in k else v / 4 for k, v in first[0].items()}
    world.submit(round_two, nodes[2], stale)
    # node 3 sends the round's start adapter (round 1's global) back
    world.submit(round_two, nodes[3], dict(global_one))
    two = runner.finalize(round_two)

    verdicts = {s.node: s for s in two.report.submissions}
    assert verdicts[nodes[2].address].reason == "copied_update"
    assert f"of {nodes[0].address} in round 1" in (verdicts[nodes[2].address].detail or "")
    assert verdicts[nodes[3].address].reason == "free_rider"
    paid = {line.node for line in two.report.rewards.lines}
    assert paid == {nodes[0].address, nodes[1].address, *(v.address for v in embedded.validators)}
    # the copier is slashed with the report as evidence once the round settles; the free rider
    # only earns nothing
    assert [(s.node, s.reason) for s in two.report.slashes] == [(nodes[2].address, "copied_update")]
    stake = embedded.ledger.member(world.task_id, nodes[2].address).stake
    assert History(embedded.ledger).slashes(world.task_id) == []
    world.settle(runner, round_two)
    (slashed,) = History(embedded.ledger).slashes(world.task_id)
    assert (slashed.node, slashed.round, slashed.evidence_cid) == (
        nodes[2].address,
        round_two,
        two.report_cid,
    )
    assert embedded.ledger.member(world.task_id, nodes[2].address).stake == stake - slashed.amount
    min_stake = embedded.ledger.task(world.task_id).min_stake
    assert embedded.ledger.member(world.task_id, nodes[3].address).stake == min_stake
    from aggregator.audit import Auditor

    checks = Auditor(embedded.ledger, History(embedded.ledger), world.store).verify(world.task_id)
    assert [c for c in checks if not c.ok] == []


def test_the_contribution_rule_without_validation_data_is_refused_before_anything_is_proposed(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """Validators without held-out data post sheets with verdicts and no scores: a round told
    to pay by contribution scores has nothing to go by, and proposes nothing."""
    from loraledger.errors import ConfigError

    world = make_world(embedded, tmp_path, nodes=2)
    runner = world.runner(RoundSettings(reward_rule="contribution"))
    round_ = runner.open()
    for i, node in enumerate(embedded.nodes[:2]):
        world.submit(round_, node, world.honest(i))

    with pytest.raises(ConfigError, match="needs validators' score sheets"):
        runner.finalize(round_)

    assert History(embedded.ledger).proposals(world.task_id, round_) == []
    assert embedded.ledger.round_state(world.task_id, round_) is RoundState.CLOSED


def test_with_confirmations_a_result_is_proposed_only_once_its_inputs_are_deep_enough(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """``--confirmations 3``: the aggregator waits (telling what for) until the round's newest
    input (opening, commitment, reveal, score sheet) has 3 blocks on top before it proposes."""
    world = make_world(embedded, tmp_path, nodes=2)
    runner = world.runner()
    round_ = runner.open()
    for i, node in enumerate(embedded.nodes[:2]):
        world.submit(round_, node, world.honest(i), examples=10)
    waits: list[str] = []

    def others_mine_a_block(text: str) -> None:  # meanwhile, the chain goes on
        waits.append(text)
        embedded.chain.advance_time(1)

    runner.on_wait = others_mine_a_block
    embedded.chain.confirmations = 3
    try:
        runner.finalize(round_, poll_seconds=0.01)
    finally:
        embedded.chain.confirmations = 0
    history = History(embedded.ledger)
    newest = max(
        e.block
        for e in [
            *history.commits(world.task_id, round_),
            *history.reveals(world.task_id, round_),
            *history.scores(world.task_id, round_),
        ]
    )
    (proposal,) = history.proposals(world.task_id, round_)
    assert proposal.block - newest >= 3 + 1  # 3 on top, then the proposal's own block
    assert len(waits) >= 3
    assert embedded.ledger.round_state(world.task_id, round_) in (
        RoundState.FINALIZED,
        RoundState.SETTLED,
    )


def test_an_ipfs_node_that_does_not_answer_is_waited_for_never_a_verdict(
    embedded: LedgerEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The aggregator's own IPFS node not answering (a restarting daemon) says nothing about
    the node whose update it fetches: the round is not proposed with that update rejected as
    'unavailable' (found by `loraledger chaos`); it raises StorageUnavailable, which
    `aggregator run` waits out, and once the node answers the update is accepted."""
    from ipfs.errors import StorageUnavailable

    world = make_world(embedded, tmp_path, nodes=2)
    runner = world.runner()
    round_ = runner.open()
    for i, node in enumerate(embedded.nodes[:2]):
        world.submit(round_, node, world.honest(i), examples=10)
    (victim, *_) = History(embedded.ledger).reveals(world.task_id, round_)
    real = world.store.get_bytes

    def down(cid: str, **kwargs: int) -> bytes:
        if cid == victim.cid:
            raise StorageUnavailable("IPFS node at http://127.0.0.1:5001 failed: ConnectError")
        return real(cid, **kwargs)

    monkeypatch.setattr(world.store, "get_bytes", down)
    with pytest.raises(StorageUnavailable):
        runner.finalize(round_)
    assert embedded.ledger.round_state(world.task_id, round_) is RoundState.CLOSED
    assert History(embedded.ledger).proposals(world.task_id, round_) == []

    monkeypatch.setattr(world.store, "get_bytes", real)
    outcome = runner.finalize(round_)
    assert [s.verdict for s in outcome.report.submissions] == ["accepted", "accepted"]


def test_run_restarted_in_a_challenge_window_settles_the_round_before_opening_the_next(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """An aggregator killed after finalizing round 1 and started again while its challenge
    window runs waits for the window (one line per poll) and then opens round 2; it does not
    try to open round 2 early, get refused and give up (found by `loraledger chaos`)."""
    world = make_world(embedded, tmp_path, nodes=2, max_rounds=2)
    nodes = embedded.nodes[:2]
    history = History(embedded.ledger)
    first = world.runner()
    round_ = first.open()
    _nodes_train_from_the_start(world, history, nodes, round_)
    first.finalize(round_, poll_seconds=0.01)  # ... then the process is killed
    assert embedded.ledger.round_state(world.task_id, 1) is RoundState.FINALIZED
    heard: list[str] = []

    def window_passes(text: str) -> None:
        heard.append(text)
        if embedded.ledger.round_state(world.task_id, 1) is RoundState.FINALIZED:
            embedded.settle(world.task_id, 1)

    def nodes_submit(at: str) -> None:
        if at == "opened":
            opened = embedded.ledger.task(world.task_id).rounds_opened
            _nodes_train_from_the_start(world, history, nodes, opened)
        if at == "finalized":
            embedded.settle(world.task_id, embedded.ledger.task(world.task_id).rounds_opened)

    again = world.runner(checkpoint=nodes_submit, on_wait=window_passes)
    outcomes = again.run(poll_seconds=0.01)

    assert again.recovered == 0  # no refused opening ridden out: it waited
    assert heard and "challenge" in heard[0]
    assert [o.round for o in outcomes] == [2]
    assert embedded.ledger.is_complete(world.task_id)


def test_run_rides_out_a_reorganisation_that_removes_its_proposal_before_it_is_signed(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """Found by `loraledger chaos` on anvil: blocks replaced right after the proposal took it
    away, the validators' signatures failed with LedgerUnknownProposal and `aggregator run`
    exited. It now reads the chain again, proposes again and the round is finalized once."""
    world = make_world(embedded, tmp_path, nodes=2, max_rounds=1)
    nodes = embedded.nodes[:2]
    history = History(embedded.ledger)
    marks: dict[str, object] = {}

    def reorganise_the_proposal_away(at: str) -> None:
        if at == "opened":
            _nodes_train_from_the_start(world, history, nodes, 1)
        if at == "journaled" and "before" not in marks:
            marks["before"] = embedded.snapshot()
        if at == "proposed" and "reorganised" not in marks:
            marks["reorganised"] = True
            embedded.revert(marks["before"])  # the proposal is gone
        if at == "finalized":
            embedded.settle(world.task_id, 1)

    runner = world.runner(checkpoint=reorganise_the_proposal_away)
    outcomes = runner.run(poll_seconds=0.01)

    assert marks.get("reorganised") and runner.recovered >= 1
    assert [o.round for o in outcomes] == [1]
    assert [f.round for f in history.finalized(world.task_id)] == [1]


def test_run_goes_on_when_a_reorganisation_removes_a_finalization_in_its_challenge_window(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """Found by `loraledger chaos` on anvil: the finalization was reorganised away while the
    run waited for the challenge window; the run ended (exit 0) with the task incomplete. It
    now finalizes the round again and completes the task."""
    world = make_world(embedded, tmp_path, nodes=2, max_rounds=1)
    nodes = embedded.nodes[:2]
    history = History(embedded.ledger)
    marks: dict[str, object] = {}

    def nodes_submit(at: str) -> None:
        if at == "opened":
            _nodes_train_from_the_start(world, history, nodes, 1)
        if at == "journaled" and "before" not in marks:
            marks["before"] = embedded.snapshot()

    def challenge_window(text: str) -> None:  # the run waits for it to pass
        if embedded.ledger.round_state(world.task_id, 1) is not RoundState.FINALIZED:
            return
        if "reorganised" not in marks:
            marks["reorganised"] = True
            embedded.revert(marks["before"])  # the proposal and finalization are gone
        else:
            embedded.settle(world.task_id, 1)

    runner = world.runner(checkpoint=nodes_submit, on_wait=challenge_window)
    runner.run(poll_seconds=0.01)

    assert marks.get("reorganised")
    assert embedded.ledger.is_complete(world.task_id)
    assert [f.round for f in history.finalized(world.task_id)] == [1]


def test_run_rides_out_a_finalization_reorganised_away_between_its_state_and_its_event(
    embedded: LedgerEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the long `make chaos` run on anvil: the round read as finalized, then blocks
    were replaced before its RoundFinalized event was read, and `aggregator run` exited with
    "round 4 of task 1 is finalized but its event was not found". That is the chain moving
    under the run: it reads the chain again and finalizes the round (once)."""
    world = make_world(embedded, tmp_path, nodes=2, max_rounds=1)
    nodes = embedded.nodes[:2]
    history = History(embedded.ledger)
    marks: dict[str, object] = {}

    def nodes_submit(at: str) -> None:
        if at == "opened":
            _nodes_train_from_the_start(world, history, nodes, 1)
        if at == "journaled" and "before" not in marks:
            marks["before"] = embedded.snapshot()
        if at == "finalized":
            embedded.settle(world.task_id, 1)

    runner = world.runner(checkpoint=nodes_submit)
    read = runner.session.history.finalization

    def finalization_read_after_a_reorganisation(task_id: int, round_: int) -> object:
        if "reorganised" not in marks:
            marks["reorganised"] = True
            embedded.revert(marks["before"])  # the proposal and its finalization are gone
        return read(task_id, round_)

    monkeypatch.setattr(
        runner.session.history, "finalization", finalization_read_after_a_reorganisation
    )
    outcomes = runner.run(poll_seconds=0.01)

    assert marks.get("reorganised") and runner.recovered >= 1
    assert [o.round for o in outcomes] == [1]
    assert embedded.ledger.is_complete(world.task_id)
    assert [f.round for f in history.finalized(world.task_id)] == [1]


def test_run_rides_out_a_reorganisation_that_removes_the_opening_it_just_made(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """The round the run opened is gone before it is finalized (blocks replaced): "has not
    been opened" is the chain moving under the run, not a reason to exit; it opens it again."""
    world = make_world(embedded, tmp_path, nodes=2, max_rounds=1)
    nodes = embedded.nodes[:2]
    history = History(embedded.ledger)
    marks: dict[str, object] = {"before": embedded.snapshot()}

    def reorganise_the_opening_away(at: str) -> None:
        if at == "opened" and "reorganised" not in marks:
            marks["reorganised"] = True
            embedded.revert(marks["before"])  # round 1 was never opened
            return
        if at == "opened":
            _nodes_train_from_the_start(world, history, nodes, 1)
        if at == "finalized":
            embedded.settle(world.task_id, 1)

    runner = world.runner(checkpoint=reorganise_the_opening_away)
    deadline = time.monotonic() + 120  # without the fix it waited for the round forever
    outcomes = runner.run(poll_seconds=0.01, should_stop=lambda: time.monotonic() > deadline)

    assert marks.get("reorganised") and runner.recovered >= 1
    assert [o.round for o in outcomes] == [1]
    assert [f.round for f in history.finalized(world.task_id)] == [1]
    with pytest.raises(RoundNotOpened, match="round 2 of task 1 has not been opened"):
        runner.finalize(2)  # asked by hand, it is the user's error
