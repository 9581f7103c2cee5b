"""The audit on the embedded chain and store: honest rounds (run by RoundRunner with the
task's validators) pass every check; results a colluding quorum of validators signed over a
tampered report, replaced or missing updates, wrong reward tables or validator pay, scores that
are not the sheets' medians, a global adapter that does not reproduce, unproven slashes, claims
outside the table and signatures that do not hold each fail, naming the round and what
differs."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from aggregator.audit import AuditCheck, Auditor, RoundNotAuditable
from aggregator.audit.checks import CHECKS, RoundFacts, check_signatures
from aggregator.combine import StrategyConfig
from aggregator.errors import SLASH_CODES
from aggregator.rewards import Share, reward_table, slash_root
from aggregator.round import RoundRunner, RoundSettings
from aggregator.verify import Evaluator
from chain.bindings import ClaimRequest, Finalization
from chain.events import Attested, History
from chain.merkle import RewardEntry, RewardTree, SlashEntry, SlashTree
from chain.session import Session
from fl_node.node import claim
from loraledger.display import tokens
from loraledger.report import RewardLine, RewardTable, RoundReport
from loraledger.update import (
    Expected,
    LocalMetrics,
    PrivacyRecord,
    build_global_adapter,
    parse_global_adapter,
)
from tests.aggregator.round_builders import RoundWorld, make_world, raw_update, update_metadata
from tests.support.chain import TOKEN, LedgerEnv


def auditor(world: RoundWorld) -> Auditor:
    return Auditor(world.env.ledger, History(world.env.ledger), world.store)


def failures(checks: list[AuditCheck]) -> dict[tuple[int | None, str], str]:
    return {(c.round, c.name): c.detail for c in checks if not c.ok}


def honest_round(
    world: RoundWorld, runner: RoundRunner, *, nodes: int = 3, bad: bool = False
) -> int:
    """Open a round, let ``nodes`` nodes submit honest updates (plus rejected ones when ``bad``)."""
    env = world.env
    round_ = runner.open()
    for i, node in enumerate(env.nodes[:nodes]):
        world.submit(round_, node, world.honest(10 * round_ + i), examples=10 + 5 * i)
    if bad:
        tid = world.task_id
        world.submit(round_, env.nodes[nodes], {k: v * 100 for k, v in world.honest(99).items()})
        nan = world.honest(98)
        next(iter(nan.values()))[0, 0] = float("nan")
        broken = env.nodes[nodes + 1]
        # a malformed file is proven cheating: slashed once round 1 settles, the node cannot
        # commit again
        if env.ledger.member(tid, broken.address).stake >= env.ledger.task(tid).min_stake:
            world.submit(
                round_,
                broken,
                data=raw_update(nan, update_metadata(tid, round_, broken.address, 10)),
            )
        else:
            world.reveal_all(round_)  # the window closes without its commitment
    return round_


def forge(
    world: RoundWorld,
    round_: int,
    change: Callable[[RoundReport], Finalization],
    *,
    evaluator: Evaluator | None = None,
) -> Finalization:
    """Finalize ``round_`` with the result ``change`` derives from the honest report, signed by
    a quorum of the task's validators: a colluding majority, whose lie the contract cannot see
    and the audit must.

    The validators post their score sheets (scoring with ``evaluator``) first; the honest round
    is then computed on a chain snapshot that is reverted (the store keeps its content), so the
    forged result, over the sheets really posted, is the only one the chain ever sees.
    """
    env = world.env
    validators = world.validators(evaluator=evaluator)
    for validator in validators:
        validator.post_sheet(round_)
    snapshot = env.snapshot()
    honest = world.runner(validators=validators).finalize(round_)
    env.revert(snapshot)
    result = change(honest.report)
    attestations = env.sign(world.task_id, round_, result)
    env.ledger.finalize_round(world.task_id, round_, result, attestations, env.aggregator)
    return result


def counts(report: RoundReport) -> tuple[int, int]:
    """(accepted, rejected) as ``report`` says."""
    accepted = sum(1 for s in report.submissions if s.verdict == "accepted")
    return accepted, len(report.submissions) - accepted


def finalization(world: RoundWorld, report: RoundReport, **override: Any) -> Finalization:
    """The result of ``report`` (pinned here) over the round's posted score sheets, its slashes
    with the report as evidence; ``override`` replaces fields (a result that says other than its
    report)."""
    cid = world.store.put_bytes(report.to_bytes())
    accepted, rejected = counts(report)
    values: dict[str, Any] = dict(
        global_cid=report.global_cid,
        global_digest=bytes.fromhex(report.global_digest),
        report_cid=cid,
        accepted=accepted,
        rejected=rejected,
        reward_root=bytes.fromhex(report.rewards.root),
        reward_total=report.rewards.total,
        slash_root=slash_root(world.task_id, report.round, report, cid),
        scores_bitmap=world.env.ledger.round(world.task_id, report.round).scores_bitmap,
    )
    values.update(override)
    return Finalization(**values)


def table(
    world: RoundWorld, round_: int, rewards: RewardTable, amounts: dict[str, int]
) -> RewardTable:
    """``rewards`` (its rule and pool) paying ``amounts`` instead, with a consistent root."""
    tree = RewardTree(world.task_id, round_, [RewardEntry(n, a) for n, a in amounts.items()])
    lines = tuple(
        RewardLine(node=e.node, amount=e.amount, proof=tuple(p.hex() for p in tree.proof(e.node)))
        for e in tree.entries
    )
    return rewards.model_copy(update={"total": tree.total, "root": tree.root.hex(), "lines": lines})


def test_honest_rounds_with_rejections_claims_and_a_server_optimizer_pass_every_check(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=5, max_rounds=2)
    settings = RoundSettings(strategy=StrategyConfig(name="fedadam", server_lr=0.05))
    runner = world.runner(settings)
    for _ in range(2):
        round_ = honest_round(world, runner, bad=True)
        runner.finalize(round_)
        world.settle(runner, round_)  # its slashes are made; claims and the next round open
    for account in (embedded.nodes[1], embedded.validators[0]):  # a node and a validator claim
        claim(
            Session(embedded.ledger, History(embedded.ledger), world.store, account), world.task_id
        )

    checks = auditor(world).verify(world.task_id)

    assert failures(checks) == {}
    assert [(c.round, c.name) for c in checks] == [
        (r, name) for r in (1, 2) for name in CHECKS[:-1]
    ] + [(None, "ledger")]
    assert all(c.status == "pass" for c in checks)
    # each round pays its 3 accepted nodes and the 3 validators whose sheets it used
    claimed = {c.round: c.detail for c in checks if c.name == "claims"}
    assert all(claimed[r].startswith("2 of 6 rewards claimed") for r in (1, 2))
    signed = {c.round: c.detail for c in checks if c.name == "signatures"}
    assert all("quorum 2 of 3" in signed[r] for r in (1, 2))
    # the NaN update is slashed at round 1's settling, so its node cannot commit in round 2
    assert [(e.round, e.node) for e in History(embedded.ledger).slashes(world.task_id)] == [
        (1, embedded.nodes[4].address)
    ]
    # the read side: rounds with reason counts, submissions with verdicts, rewards and claims
    history = auditor(world).history_of(world.task_id)
    assert (
        history.task.rounds_finalized == 2
        and history.task.nodes_joined == 5
        and history.task.complete
    )
    first = history.rounds[0]
    assert (first.round.accepted, first.round.rejected) == (3, 2)
    assert first.round.reasons == {"non_finite": 1, "norm_outlier": 1}
    rows = {s.node: s for s in first.submissions}
    assert rows[embedded.nodes[1].address].claimed and rows[embedded.nodes[1].address].reward > 0
    assert (
        rows[embedded.nodes[3].address].verdict == "rejected"
        and rows[embedded.nodes[3].address].reward == 0
    )


def test_verifying_one_round_and_unknown_or_open_rounds(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=2)
    runner = world.runner()
    runner.finalize(honest_round(world, runner, nodes=2))
    world.settle(runner, 1)
    round_two = runner.open()
    checks = auditor(world).verify(world.task_id, 1)
    assert {c.round for c in checks} == {1} and all(c.ok for c in checks)
    with pytest.raises(
        RoundNotAuditable, match=f"round {round_two} of task {world.task_id} is not finalized"
    ):
        auditor(world).verify(world.task_id, round_two)
    with pytest.raises(RoundNotAuditable, match="has no round 7"):
        auditor(world).verify(world.task_id, 7)


def test_a_report_whose_stored_bytes_were_tampered_fails_the_report_check(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=2)
    runner = world.runner()
    outcome = runner.finalize(honest_round(world, runner, nodes=2))
    blob = world.store.root / "objects" / outcome.report_cid[-3:-1] / outcome.report_cid
    blob.write_bytes(blob.read_bytes().replace(b'"accepted"', b'"rejected"', 1))

    failed = failures(auditor(world).verify(world.task_id))

    assert list(failed) == [(1, "report")]
    assert (
        outcome.report_cid in failed[(1, "report")] and "cannot be fetched" in failed[(1, "report")]
    )
    skipped = [c for c in auditor(world).verify(world.task_id) if c.status == "skip"]
    assert {c.name for c in skipped} == set(CHECKS[1:-1])


def test_a_forged_report_that_drops_a_submission_fails_the_submissions_check(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=5)
    runner = world.runner()
    round_ = honest_round(world, runner, bad=True)
    dropped = embedded.nodes[4].address

    def drop(report: RoundReport) -> Finalization:
        kept = tuple(s for s in report.submissions if s.node != dropped)
        forged = report.model_copy(update={"submissions": kept})
        accepted, rejected = counts(report)  # the honest counts: the contract insists they add up
        return finalization(world, forged, accepted=accepted, rejected=rejected)

    forge(world, round_, drop)
    failed = failures(auditor(world).verify(world.task_id))

    # the slash the report still names has no verdict left to stand on either
    assert list(failed) == [(round_, "submissions"), (round_, "slashes")]
    assert f"dropped: {dropped}" in failed[(round_, "submissions")]
    assert (
        "the report has 3 accepted / 1 rejected, the chain 3 / 2" in failed[(round_, "submissions")]
    )


def test_a_replaced_or_missing_update_fails_the_updates_check(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=3)
    runner = world.runner()
    outcome = runner.finalize(honest_round(world, runner))
    replaced, missing = outcome.report.submissions[0], outcome.report.submissions[2]
    blob = world.store.root / "objects" / replaced.cid[-3:-1] / replaced.cid
    blob.write_bytes(b"other bytes" + blob.read_bytes()[11:])
    (world.store.root / "objects" / missing.cid[-3:-1] / missing.cid).unlink()

    checks = auditor(world).verify(world.task_id)

    failed = failures(checks)
    assert list(failed) == [(1, "updates")]
    for gone in (replaced, missing):  # the store refuses bytes that do not hash to the CID
        assert (
            f"{gone.node}: re-derived unavailable (cannot fetch {gone.cid}"
            in failed[(1, "updates")]
        )
    assert next(c for c in checks if c.name == "aggregate").status == "skip"


def test_a_rejected_update_reported_as_accepted_fails_its_digest(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=3)
    runner = world.runner()
    round_ = runner.open()
    for i, node in enumerate(embedded.nodes[:2]):
        world.submit(round_, node, world.honest(i))
    cheat = embedded.nodes[2]
    world.submit(
        round_, cheat, world.honest(2), commit_digest=hashlib.sha256(b"something else").digest()
    )

    def accept_all(report: RoundReport) -> Finalization:
        subs = tuple(
            s.model_copy(
                update={"verdict": "accepted", "reason": None, "detail": None, "quality": 1.0}
            )
            for s in report.submissions
        )
        forged = report.model_copy(update={"submissions": subs})
        return finalization(world, forged)

    forge(world, round_, accept_all)
    failed = failures(auditor(world).verify(world.task_id))

    assert f"{cheat.address}: re-derived digest_mismatch" in failed[(round_, "updates")]
    assert "digest_mismatch" in failed[(round_, "updates")]
    assert "the rule gives" in failed[(round_, "rewards")]  # the cheat has no line though accepted


def test_a_reward_table_that_breaks_the_rule_fails_even_with_a_consistent_root(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=3)
    runner = world.runner()
    round_ = honest_round(world, runner)
    nodes = [n.address for n in embedded.nodes[:3]]
    task = embedded.ledger.task(world.task_id)
    # the nodes' part of the pool; the validators' lines stay as the rule gives them
    to_nodes = task.reward_per_round - task.reward_per_round * task.validator_share_bps // 10_000

    def skew(report: RoundReport) -> Finalization:
        amounts = {line.node: line.amount for line in report.rewards.lines}
        amounts |= {nodes[0]: to_nodes // 2, nodes[1]: to_nodes // 4, nodes[2]: to_nodes // 4}
        forged = report.model_copy(
            update={"rewards": table(world, round_, report.rewards, amounts)}
        )
        return finalization(world, forged)

    forge(world, round_, skew)
    failed = failures(auditor(world).verify(world.task_id))

    assert list(failed) == [(round_, "rewards")]
    assert (
        f"{nodes[0]}: the rule gives {tokens(to_nodes * 10 // 40, exact=True)}, "
        f"the table {tokens(to_nodes // 2, exact=True)}"  # capped
        in failed[(round_, "rewards")]  # at the median claim, 15
    )
    assert all(v.address not in failed[(round_, "rewards")] for v in embedded.validators)
    assert "Merkle roots disagree" not in failed[(round_, "rewards")]


def test_an_on_chain_root_other_than_the_tables_fails_and_outside_claims_are_named(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=2)
    runner = world.runner()
    round_ = honest_round(world, runner, nodes=2)
    outsider = embedded.nodes[5]
    secret: dict[str, RewardTree] = {}

    def other_root(report: RoundReport) -> Finalization:
        amounts = {line.node: line.amount for line in report.rewards.lines}
        amounts[outsider.address] = 1
        amounts[report.rewards.lines[0].node] -= 1
        tree = RewardTree(world.task_id, round_, [RewardEntry(n, a) for n, a in amounts.items()])
        secret["tree"] = tree
        return finalization(world, report, reward_root=tree.root, reward_total=tree.total)

    forge(world, round_, other_root)
    embedded.settle(world.task_id, round_)  # nobody challenged it in its window
    tree = secret["tree"]
    embedded.ledger.claim(
        ClaimRequest(world.task_id, round_, 1, tuple(tree.proof(outsider.address))), outsider
    )
    failed = failures(auditor(world).verify(world.task_id))

    assert set(failed) == {(round_, "rewards"), (round_, "claims")}
    assert "Merkle roots disagree" in failed[(round_, "rewards")]
    assert "does not verify against the on-chain root" in failed[(round_, "rewards")]
    assert (
        f"{outsider.address} claimed {tokens(1, exact=True)} (block" in failed[(round_, "claims")]
        and "no line in the table" in failed[(round_, "claims")]
    )


def test_a_global_adapter_that_does_not_reproduce_fails_the_aggregate_check(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=3)
    runner = world.runner()
    round_ = honest_round(world, runner)

    def nudge(report: RoundReport) -> Finalization:
        honest = parse_global_adapter(
            world.store.get_bytes(report.global_cid), Expected(task_id=world.task_id)
        )
        tensors = dict(honest.tensors)
        name = min(tensors)
        tensors[name] = tensors[name] * 1.01
        data = build_global_adapter(tensors, honest.metadata)
        cid = world.store.put_bytes(data)
        forged = report.model_copy(
            update={"global_cid": cid, "global_digest": hashlib.sha256(data).hexdigest()}
        )
        return finalization(world, forged)

    forge(world, round_, nudge)
    failed = failures(auditor(world).verify(world.task_id))

    assert list(failed) == [(round_, "aggregate")]
    detail = failed[(round_, "aggregate")]
    assert (
        "differs from re-aggregation by up to" in detail
        and "tolerance atol 1e-05 + rtol 0.0001" in detail
    )


def test_a_report_paying_a_validator_more_than_the_rule_fails_the_validators_and_rewards_checks(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """Validators are paid by their agreement with the sheets' consensus: a quorum that signs a
    bonus for one of them, taken from a node and written into both the validators' lines and
    the reward table (a consistent root), is caught by both checks."""
    world = make_world(embedded, tmp_path, nodes=3)
    round_ = honest_round(world, world.runner())
    greedy, robbed = embedded.validators[0].address, embedded.nodes[0].address
    honest_pay: dict[str, int] = {}

    def overpay(report: RoundReport) -> Finalization:
        amounts = {line.node: line.amount for line in report.rewards.lines}
        honest_pay.update(amounts)
        amounts[greedy] += TOKEN
        amounts[robbed] -= TOKEN
        lines = tuple(
            v.model_copy(update={"reward": amounts[greedy]}) if v.validator == greedy else v
            for v in report.validators
        )
        forged = report.model_copy(
            update={"validators": lines, "rewards": table(world, round_, report.rewards, amounts)}
        )
        return finalization(world, forged)

    forge(world, round_, overpay)
    failed = failures(auditor(world).verify(world.task_id))

    assert set(failed) == {(round_, "validators"), (round_, "rewards")}
    fair = honest_pay[greedy]
    paid, fair_pay = tokens(fair + TOKEN, exact=True), tokens(fair, exact=True)
    assert f"{greedy}: paid {paid}, the rule gives {fair_pay}" in failed[(round_, "validators")]
    rewards = failed[(round_, "rewards")]
    assert f"{greedy}: the rule gives {fair_pay}, the table {paid}" in rewards
    assert f"{robbed}: the rule gives {tokens(honest_pay[robbed], exact=True)}" in rewards


def test_signatures_that_do_not_recover_or_fall_short_of_the_quorum_fail_the_signatures_check(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """The contract counts only valid signatures of the task's validators; the audit re-checks
    every one from the ``Attested`` events, so events that showed a forged signature, one
    counted twice or fewer than the quorum (a lying RPC node, another contract) fail."""
    world = make_world(embedded, tmp_path, nodes=2)
    runner = world.runner()
    round_ = honest_round(world, runner, nodes=2)
    runner.finalize(round_)
    ledger, history, tid = embedded.ledger, History(embedded.ledger), world.task_id
    record = history.finalization(tid, round_)
    assert record is not None
    signed = [a for a in history.attestations(tid, round_) if a.result_hash == record.result_hash]
    assert len(signed) == embedded.quorum == record.signers.bit_count()

    def check(attestations: Sequence[Attested]) -> str:
        facts = RoundFacts(
            ledger.task(tid),
            ledger.round(tid, round_),
            record,
            history.submissions(tid, round_),
            [],
            validators=ledger.validators(tid),
            attestations=list(attestations),
        )
        return "; ".join(check_signatures(facts, ledger))

    assert check(signed) == ""
    first, second = signed
    assert "1 valid signatures, the task's quorum is 2" in check([first])
    assert f"{first.validator} is counted twice" in check([first, first])
    # a node's key signing in a validator's name, and a validator's signature of another result
    (by_node,) = embedded.sign(tid, round_, record, embedded.nodes[0])
    other = replace(record, reward_total=record.reward_total - 1)
    (of_other,) = embedded.sign(tid, round_, other, embedded.account(second.validator))
    for forged in (by_node, of_other):
        problems = check([first, replace(second, signature=forged.signature)])
        assert f"the signature relayed for {second.validator} recovers to 0x" in problems
        assert "1 valid signatures, the task's quorum is 2" in problems
        assert f"the contract recorded {record.signers:#x}" in problems


# ----------------------------------------------------------------------------- fair rewards


def rescaled(tensors: dict[str, torch.Tensor], factor: float) -> dict[str, torch.Tensor]:
    """The same weight change with other bytes: A * c, B / c."""
    return {k: v * factor if "lora_A" in k else v / factor for k, v in tensors.items()}


def copy_round(world: RoundWorld, runner: RoundRunner) -> tuple[int, str, str]:
    """Two honest nodes, then a third that commits a rescaled copy of the first's update."""
    env = world.env
    round_ = runner.open()
    original = world.honest(10 * round_)
    world.submit(round_, env.nodes[0], original, examples=10)
    world.submit(round_, env.nodes[1], world.honest(10 * round_ + 1), examples=10)
    world.submit(round_, env.nodes[2], rescaled(original, 3.0), examples=10)
    return round_, env.nodes[0].address, env.nodes[2].address


def test_a_rescaled_copy_is_rejected_slashed_and_the_audit_agrees(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=3)
    runner = world.runner()
    round_, author, copier = copy_round(world, runner)

    outcome = runner.finalize(round_)

    verdicts = {s.node: s for s in outcome.report.submissions}
    assert verdicts[copier].reason == "copied_update" and author in verdicts[copier].detail
    assert verdicts[author].verdict == "accepted"
    assert outcome.report.reward_for(copier) is None
    (slash,) = outcome.report.slashes
    assert (slash.node, slash.reason) == (copier, "copied_update")
    assert History(embedded.ledger).slashes(world.task_id) == []  # not before the round settles
    world.settle(runner, round_)
    (event,) = History(embedded.ledger).slashes(world.task_id)
    assert (event.node, event.round, event.evidence_cid) == (copier, round_, outcome.report_cid)
    assert event.amount == slash.amount
    assert failures(auditor(world).verify(world.task_id)) == {}


def test_a_copy_reported_as_accepted_fails_the_updates_check(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=3)
    round_, _, copier = copy_round(world, world.runner())

    def accept_the_copy(report: RoundReport) -> Finalization:
        subs = tuple(
            s.model_copy(update={"verdict": "accepted", "reason": None, "detail": None})
            if s.node == copier
            else s
            for s in report.submissions
        )
        forged = report.model_copy(update={"submissions": subs, "slashes": ()})
        return finalization(world, forged)

    forge(world, round_, accept_the_copy)
    failed = failures(auditor(world).verify(world.task_id))

    assert f"{copier}: re-derived copied_update" in failed[(round_, "updates")]


def test_an_honest_update_reported_as_a_copy_fails_the_updates_check(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=3)
    round_ = honest_round(world, world.runner())
    victim = embedded.nodes[1].address

    def call_it_a_copy(report: RoundReport) -> Finalization:
        subs = tuple(
            s.model_copy(update={"verdict": "rejected", "reason": "copied_update", "weight": 0.0})
            if s.node == victim
            else s
            for s in report.submissions
        )
        forged = report.model_copy(update={"submissions": subs})
        return finalization(world, forged)

    forge(world, round_, call_it_a_copy)
    failed = failures(auditor(world).verify(world.task_id))

    assert (
        f"{victim}: re-derived accepted, the report says copied_update"
        in failed[(round_, "updates")]
    )


def test_a_slash_the_report_does_not_prove_fails_the_slashes_check(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """The contract executes any slash of the signed result's slash root: a colluding quorum
    that slips in a slash of an honest node, which the report does not name, is caught."""
    world = make_world(embedded, tmp_path, nodes=3)
    round_ = honest_round(world, world.runner())
    honest = embedded.nodes[0].address
    slashes: list[SlashEntry] = []

    def slash_an_honest_node(report: RoundReport) -> Finalization:
        cid = world.store.put_bytes(report.to_bytes())
        slashes.append(SlashEntry(honest, TOKEN, SLASH_CODES["copied_update"], cid))
        return finalization(
            world, report, slash_root=SlashTree(world.task_id, round_, slashes).root
        )

    forge(world, round_, slash_an_honest_node)
    embedded.settle(world.task_id, round_)
    tree = SlashTree(world.task_id, round_, slashes)
    (entry,) = slashes
    embedded.ledger.execute_slash(
        world.task_id, round_, entry, tree.proof(entry), embedded.validators[0]
    )

    failed = failures(auditor(world).verify(world.task_id))

    assert list(failed) == [(round_, "slashes")]
    assert (
        f"{honest} was slashed {tokens(TOKEN, exact=True)} but the report names no slash"
        in failed[(round_, "slashes")]
    )
    assert "the slash root rebuilt from the report is" in failed[(round_, "slashes")]


def quadratic_loss(target: dict[str, torch.Tensor]) -> Callable[..., float]:
    """A validation loss that is a real function of the adapter: the squared distance of its
    weight change from ``target``'s (what honest training moves towards)."""
    from aggregator.screening import Change, change_distance

    def evaluate(tensors: Any, spec: Any) -> float:
        return (
            1.0
            + change_distance(
                Change(tensors, spec.delta_scaling), Change(target, spec.delta_scaling)
            )
            ** 2
        )

    return evaluate


def test_contribution_rewards_pass_the_audit_and_a_forged_score_fails_it(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=4)
    target = world.honest(1000, noise=0.2)
    evaluator = quadratic_loss(target)
    runner = world.runner(evaluator=evaluator)
    round_ = runner.open()
    nodes = embedded.nodes
    for i in range(3):  # part of the way towards the target, each with its own noise
        step = {
            k: world.start[k] + 0.5 * (target[k] - world.start[k]) + 0.01 * v
            for k, v in world.honest(i, noise=1.0).items()
        }
        world.submit(round_, nodes[i], step, examples=100)
    world.submit(
        round_, nodes[3], world.honest(7, noise=1e-4), examples=1000
    )  # near-zero, max claim

    snapshot = embedded.snapshot()
    outcome = runner.finalize(round_)
    report = outcome.report
    verdicts = {s.node: s for s in report.submissions}
    assert report.params["reward_rule"] == "contribution"
    assert verdicts[nodes[3].address].reason == "no_contribution"
    assert all(verdicts[nodes[i].address].score > 0 for i in range(3))
    validators = {v.address for v in embedded.validators}
    assert {line.node for line in report.rewards.lines} == {
        nodes[i].address for i in range(3)
    } | validators
    assert failures(auditor(world).verify(world.task_id)) == {}
    embedded.revert(snapshot)

    favourite = nodes[0].address
    task = embedded.ledger.task(world.task_id)

    def inflate_a_score(honest: RoundReport) -> Finalization:
        """The favourite's score x10 and a reward table that follows the forged scores, so
        only the validators' sheets can tell."""
        subs = tuple(
            s.model_copy(update={"score": (s.score or 0.0) * 10}) if s.node == favourite else s
            for s in honest.submissions
        )
        rewards = reward_table(
            world.task_id,
            round_,
            task.reward_per_round,
            [
                Share(s.node, s.num_examples, s.quality, s.score)
                for s in subs
                if s.verdict == "accepted"
            ],
            "contribution",
            share_bps=task.validator_share_bps,
            agreement={v.validator: v.agreement for v in honest.validators},
        )
        forged = honest.model_copy(update={"submissions": subs, "rewards": rewards})
        reports.extend((honest, forged))
        return finalization(world, forged)

    reports: list[RoundReport] = []
    forge(world, round_, inflate_a_score, evaluator=evaluator)
    failed = failures(auditor(world).verify(world.task_id))

    paid = [r.reward_for(favourite) for r in reports]
    assert paid[0] is not None and paid[1] is not None and paid[1].amount > paid[0].amount
    assert list(failed) == [(round_, "updates")]
    assert f"{favourite}: score " in failed[(round_, "updates")]
    assert "the sheets' median is" in failed[(round_, "updates")]


PRIVATE = PrivacyRecord(
    noise_multiplier=1.1, clip_norm=1.0, sample_rate=0.05, steps=20, delta=1e-5, epsilon=2.5
)


def test_the_report_carries_each_updates_stated_epsilon_and_the_audit_holds_it_to_them(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=3, max_rounds=2)
    runner = world.runner()
    nodes = embedded.nodes[:3]

    def submit(round_: int) -> None:  # two nodes trained with DP-SGD, the third without
        for i, node in enumerate(nodes):
            private = {"metrics": LocalMetrics(privacy=PRIVATE)} if i < 2 else {}
            world.submit(round_, node, world.honest(10 * round_ + i), **private)

    round_ = runner.open()
    submit(round_)
    report = runner.finalize(round_).report
    assert [s.epsilon for s in report.submissions] == [2.5, 2.5, None]
    assert failures(auditor(world).verify(world.task_id)) == {}
    rows = {s.node: s for s in auditor(world).round_detail(world.task_id, round_).submissions}
    assert [rows[n.address].epsilon for n in nodes] == [2.5, 2.5, None]
    world.settle(runner, round_)

    # a colluding majority publishes a report that calls the third node private (or lowers
    # what the others spent): whoever reads it would trust a privacy nobody provided
    round_ = runner.open()
    submit(round_)

    def misstate(honest: RoundReport) -> Finalization:
        said = {nodes[0].address: 0.5, nodes[2].address: 1.0}
        subs = tuple(
            s.model_copy(update={"epsilon": said.get(s.node, s.epsilon)})
            for s in honest.submissions
        )
        return finalization(world, honest.model_copy(update={"submissions": subs}))

    forge(world, round_, misstate)
    failed = failures(auditor(world).verify(world.task_id))
    assert set(failed) == {(round_, "updates")}
    detail = failed[(round_, "updates")]
    assert f"{nodes[0].address}: its update states epsilon 2.5, the report says 0.5" in detail
    assert f"{nodes[2].address}: its update states epsilon None, the report says 1.0" in detail
