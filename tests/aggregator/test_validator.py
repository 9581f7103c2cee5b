"""The validator quorum, attacked: a lying validator, a lying aggregator, a dropped validator, a
garbled sheet and a colluding quorum. Who gets paid, whose bond goes, and what the audit says."""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch

from aggregator.audit import Auditor, reward_challenges
from aggregator.inputs import load_sheets
from aggregator.round import RoundOutcome, RoundRunner, RoundSettings
from aggregator.validator import Validator
from aggregator.verify import Evaluator
from chain.events import History
from chain.round_state import RoundState
from demo.attacks import LyingAggregator, LyingValidator
from loraledger.report import ScoreSheet
from loraledger.update import PeftSpec
from tests.aggregator.round_builders import RoundWorld, make_world
from tests.support.chain import LedgerEnv

NODES = 4


def distance_loss(target: dict[str, torch.Tensor]) -> Evaluator:
    """A synthetic held-out objective: mean squared distance of the adapter to ``target``."""

    def evaluate(tensors: Mapping[str, torch.Tensor], spec: PeftSpec) -> float:
        return float(
            sum(((tensors[k].double() - target[k].double()) ** 2).mean() for k in target)
            / len(target)
        )

    return evaluate


def targets(world: RoundWorld, count: int = 3) -> list[dict[str, torch.Tensor]]:
    """Each validator's private data: the same good direction, seen with its own noise."""
    base = {k: v + 0.3 for k, v in world.start.items()}
    out = []
    for i in range(count):
        g = torch.Generator().manual_seed(1000 + i)
        out.append({k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in base.items()})
    return out


def validators(
    world: RoundWorld, *, liars: tuple[int, ...] = (), count: int = 3, crony: str = ""
) -> list[Validator]:
    """The task's first ``count`` validators in process, those in ``liars`` lying."""
    honest = world.validators(RoundSettings(), count=count)
    out: list[Validator] = []
    for i, (v, target) in enumerate(zip(honest, targets(world, count), strict=True)):
        cls = LyingValidator if i in liars else Validator
        made = cls(v.session, world.task_id, distance_loss(target), v.settings, propose_after=0.0)
        if isinstance(made, LyingValidator):
            made.crony = crony
        out.append(made)
    return out


def submit_towards_good(world: RoundWorld, round_: int) -> None:
    """Every node steps halfway (and a little more each) towards the good direction."""
    good = targets(world, 1)[0]
    for i, node in enumerate(world.env.nodes[:NODES]):
        tensors = {k: v + (0.5 + 0.1 * i) * (good[k] - v) for k, v in world.start.items()}
        world.submit(round_, node, tensors, examples=10 + i)


def play_round(world: RoundWorld, runner: RoundRunner) -> RoundOutcome:
    """Every node steps halfway towards the good direction from the start adapter."""
    round_ = runner.open()
    good = targets(world, 1)[0]
    for i, node in enumerate(world.env.nodes[:NODES]):
        g = torch.Generator().manual_seed(100 * round_ + i)
        tensors = {
            k: v + (0.5 + 0.1 * i) * (good[k] - v) + 0.01 * torch.randn(v.shape, generator=g)
            for k, v in world.start.items()
        }
        world.submit(round_, node, tensors, examples=10 + i)
    return runner.finalize(round_, poll_seconds=0.01)


def score_of(sheet: ScoreSheet | None, node: str) -> float:
    entry = sheet.entry(node) if sheet is not None else None
    assert entry is not None and entry.score is not None
    return entry.score


def audit(world: RoundWorld) -> dict[str, str]:
    checks = Auditor(world.env.ledger, History(world.env.ledger), world.store).verify(world.task_id)
    return {f"{c.round}:{c.name}": c.detail for c in checks if not c.ok}


def test_rewards_follow_the_median_of_the_validators_scores_on_their_own_data(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=NODES)
    runner = world.runner(RoundSettings(), validators=validators(world))
    outcome = play_round(world, runner)

    report, ledger = outcome.report, embedded.ledger
    assert report.params["reward_rule"] == "contribution" and report.params["consensus"]
    sheets = [
        p.sheet
        for p in load_sheets(
            History(ledger), world.store, world.task_id, 1, ledger.validators(world.task_id)
        )
    ]
    assert len(sheets) == 3 and all(s is not None for s in sheets)
    for s in report.submissions:
        own = [score_of(sheet, s.node) for sheet in sheets]
        assert s.verdict == "accepted"
        assert s.score == statistics.median(own)
    info = ledger.round(world.task_id, 1)
    assert info.signers.bit_count() >= 2 and outcome.finalization.scores_bitmap == 0b111
    assert [v.validator for v in report.validators] == list(ledger.validators(world.task_id))
    assert sum(v.reward for v in report.validators) > 0
    assert audit(world) == {}


def test_a_lying_validator_moves_no_verdict_and_earns_less_than_the_honest_ones(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=NODES)
    crony = embedded.nodes[NODES - 1].address
    team = validators(world, liars=(2,), crony=crony)
    outcome = play_round(world, world.runner(RoundSettings(), validators=team))

    report = outcome.report
    sheets = [
        p.sheet
        for p in load_sheets(
            History(embedded.ledger),
            world.store,
            world.task_id,
            1,
            embedded.ledger.validators(world.task_id),
        )
    ]
    honest_sheets = [s for s in sheets[:2] if s is not None]
    for s in report.submissions:
        honest_scores = [score_of(sheet, s.node) for sheet in honest_sheets]
        # the median of three with one liar lies between the two honest scores
        assert s.score is not None and min(honest_scores) <= s.score <= max(honest_scores)
        assert s.verdict == "accepted"  # the liar scored every honest node 0: no rejection
    agreement = {v.validator: v for v in report.validators}
    liar, *honest = (team[2].address, team[0].address, team[1].address)
    assert all(agreement[liar].agreement < agreement[h].agreement for h in honest)
    assert all(agreement[liar].reward < agreement[h].reward for h in honest)
    assert audit(world) == {}


def test_a_lying_aggregator_and_a_lying_validator_move_no_token_and_lose_their_bonds(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    # the aggregator lies in the task's last round, when its bond has no round left to lose
    world = make_world(embedded, tmp_path, nodes=NODES, max_rounds=1)
    team = validators(world, liars=(2,), crony=embedded.nodes[0].address)
    liar_runner = LyingAggregator(
        world.session(),
        world.task_id,
        RoundSettings(),
        validators=team,
        sheet_timeout=0.0,
        quorum_timeout=30.0,
    )
    outcome = play_round(world, liar_runner)

    ledger, history = embedded.ledger, History(embedded.ledger)
    record = history.finalization(world.task_id, 1)
    assert record is not None
    # the aggregator's lie was proposed, signed only by the lying validator, and lost
    (lie, *_) = [
        p for p in history.proposals(world.task_id, 1) if p.proposer == embedded.aggregator.address
    ]
    assert lie.result_hash != record.result_hash and liar_runner.lies
    assert record.proposer in {v.address for v in team[:2]}
    # the finalized table pays only nodes that revealed an update and validators whose sheets
    # were used: the aggregator gets nothing
    revealed = {e.node for e in history.reveals(world.task_id, 1)}
    paid = {line.node for line in outcome.report.rewards.lines}
    assert embedded.aggregator.address not in paid
    assert paid <= revealed | set(ledger.validators(world.task_id))
    assert reward_challenges(ledger, history, world.store, world.task_id, 1) == []
    # the honest result is what the honest validators derive: every honest node is paid
    assert {n.address for n in embedded.nodes[:NODES]} <= paid
    # the lie cost the aggregator its bond, and the lying validator its own (it signed both)
    assert ledger.bond_of(world.task_id, embedded.aggregator.address).slashed
    assert ledger.bond_of(world.task_id, team[2].address).slashed
    assert not ledger.bond_of(world.task_id, team[0].address).slashed
    assert not ledger.bond_of(world.task_id, team[1].address).slashed
    slashed = {s.account for s in history.bond_slashes(world.task_id)}
    assert slashed == {embedded.aggregator.address, team[2].address}
    assert audit(world) == {}


def test_a_dropped_validator_does_not_stop_rounds(embedded: LedgerEnv, tmp_path: Path) -> None:
    world = make_world(embedded, tmp_path, nodes=NODES, max_rounds=2)
    runner = world.runner(RoundSettings(), validators=validators(world, count=2))
    first = play_round(world, runner)
    world.settle(runner, 1)
    assert len(first.report.validators) == 2
    assert embedded.ledger.round(world.task_id, 1).signers.bit_count() == 2
    assert embedded.ledger.round_state(world.task_id, 1) is RoundState.SETTLED
    assert runner.open() == 2  # the next round goes on without it
    assert audit(world) == {}


def test_a_garbled_sheet_counts_as_empty_and_earns_its_validator_nothing(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=NODES)
    team = validators(world, count=2)
    runner = world.runner(RoundSettings(), validators=team)
    round_ = runner.open()
    good = targets(world, 1)[0]
    for i, node in enumerate(embedded.nodes[:NODES]):
        tensors = {k: v + 0.5 * (good[k] - v) for k, v in world.start.items()}
        tensors = {k: t + 0.01 * (i + 1) for k, t in tensors.items()}
        world.submit(round_, node, tensors, examples=10)
    # the third validator posts bytes that are no sheet (its digest matches them)
    garbage = b'{"not": "a sheet"}'
    cid = world.store.put_bytes(garbage)
    embedded.ledger.post_scores(
        world.task_id, round_, hashlib.sha256(garbage).digest(), cid, embedded.validators[2]
    )
    outcome = runner.finalize(round_, poll_seconds=0.01)

    lines = {v.validator: v for v in outcome.report.validators}
    third = embedded.validators[2].address
    assert lines[third].agreement == 0.0 and lines[third].reward == 0
    assert all(s.verdict == "accepted" for s in outcome.report.submissions)
    assert audit(world) == {}


def test_a_colluding_quorum_paying_a_non_submitter_is_caught_challenged_and_voided(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    world = make_world(embedded, tmp_path, nodes=NODES, max_rounds=1)
    team = validators(world, liars=(0, 1), count=2, crony=embedded.nodes[0].address)
    liar_runner = LyingAggregator(
        world.session(), world.task_id, RoundSettings(), validators=team, sheet_timeout=0.0
    )
    play_round(world, liar_runner)
    ledger, history = embedded.ledger, History(embedded.ledger)
    assert ledger.round_state(world.task_id, 1) is RoundState.FINALIZED
    reserved = ledger.task(world.task_id).reserved
    record = history.finalization(world.task_id, 1)
    assert record is not None

    # the audit names the lie: the table does not follow the rule
    failed = audit(world)
    assert "1:rewards" in failed and embedded.aggregator.address in failed["1:rewards"]

    # anyone can challenge within the window: the contract checks the leaf and the reveals
    (challenge,) = reward_challenges(ledger, history, world.store, world.task_id, 1)
    assert challenge.account == embedded.aggregator.address
    challenge.send(ledger, embedded.nodes[0])
    info = ledger.round(world.task_id, 1)
    assert ledger.round_state(world.task_id, 1) is RoundState.CLOSED and info.epoch == 1
    assert ledger.task(world.task_id).reserved == reserved - record.reward_total
    for account in (embedded.aggregator.address, *(v.address for v in team)):
        assert ledger.bond_of(world.task_id, account).slashed
    # nothing stays stuck: after the grace period anyone abandons the round and stakes unlock
    task = ledger.task(world.task_id)
    embedded.advance_to(max(info.reveal_deadline, info.voided_at) + task.grace_period)
    ledger.abandon_round(world.task_id, 1, embedded.nodes[1])
    node = embedded.nodes[2]
    stake = ledger.member(world.task_id, node.address).stake
    before = embedded.token.balance_of(node.address)
    ledger.leave(world.task_id, node)
    ledger.withdraw_stake(world.task_id, node)
    assert embedded.token.balance_of(node.address) - before == stake


def test_a_sheet_the_ipfs_node_cannot_serve_now_is_waited_for_not_counted_empty(
    embedded: LedgerEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sheet whose content is gone counts as an empty sheet; one the aggregator's own IPFS
    node cannot serve because it does not answer is not (`loraledger chaos` found rounds paid
    by the examples rule instead of the contribution rule that way): StorageUnavailable."""
    from ipfs.errors import ContentNotFound, StorageUnavailable

    world = make_world(embedded, tmp_path, nodes=NODES)
    play_round(world, world.runner(RoundSettings(), validators=validators(world)))
    ledger = embedded.ledger

    def load() -> list[object]:
        return [
            p.sheet
            for p in load_sheets(
                History(ledger), world.store, world.task_id, 1, ledger.validators(world.task_id)
            )
        ]

    assert all(sheet is not None for sheet in load())

    def fails(error: Exception) -> None:
        def get_bytes(cid: str, **kwargs: object) -> bytes:
            raise error

        monkeypatch.setattr(world.store, "get_bytes", get_bytes)

    fails(ContentNotFound("no content under that CID"))
    assert load() == [None, None, None]
    fails(StorageUnavailable("IPFS node at http://127.0.0.1:5001 failed: ConnectError"))
    with pytest.raises(StorageUnavailable):
        load()


def test_a_sheet_reorganised_away_while_waiting_for_confirmations_is_posted_again(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """Found by `loraledger chaos` on anvil: the in-process validators' sheets were posted,
    then a reorganisation took them away while the aggregator waited for confirmations, and
    the round was proposed and paid without any sheet (by examples instead of scores). The
    sheets are now posted again and the round is paid by the validators' scores."""
    world = make_world(embedded, tmp_path, nodes=NODES)
    runner = world.runner(RoundSettings(), validators=validators(world))
    round_ = runner.open()
    submit_towards_good(world, round_)
    before_sheets = embedded.snapshot()
    marks: list[str] = []

    def reorganise_then_mine(text: str) -> None:
        if not marks and embedded.ledger.round(world.task_id, round_).scores_bitmap:
            marks.append("reorganised")
            embedded.revert(before_sheets)  # the sheets are gone
        embedded.chain.advance_time(1)  # the chain goes on

    runner.on_wait = reorganise_then_mine
    embedded.chain.confirmations = 2
    try:
        outcome = runner.finalize(round_, poll_seconds=0.01)
    finally:
        embedded.chain.confirmations = 0
    assert marks == ["reorganised"]
    assert outcome.report.params["reward_rule"] == "contribution"
    assert outcome.finalization.scores_bitmap == 0b111


def test_a_validator_run_with_confirmations_scores_only_inputs_deep_enough(
    embedded: LedgerEnv, tmp_path: Path
) -> None:
    """`validator run --confirmations N`: a sheet made on reveals a reorganisation could still
    take away is not posted; once the round's newest input has N blocks on top, it is."""
    world = make_world(embedded, tmp_path, nodes=NODES)
    runner = world.runner(RoundSettings(), validators=[])
    standalone = validators(world, count=1)[0]
    round_ = runner.open()
    for node in embedded.nodes[:NODES]:
        world.submit(round_, node, world.honest(seed=7), examples=10)
    assert embedded.ledger.round_state(world.task_id, round_) is RoundState.CLOSED
    embedded.chain.confirmations = 2
    try:
        assert standalone.step(round_) is RoundState.CLOSED
        assert embedded.ledger.round(world.task_id, round_).scores_bitmap == 0  # 0 deep
        embedded.chain.advance_time(1)
        standalone.step(round_)
        assert embedded.ledger.round(world.task_id, round_).scores_bitmap == 0  # 1 deep
        embedded.chain.advance_time(1)
        standalone.step(round_)
        assert embedded.ledger.round(world.task_id, round_).scores_bitmap == 0b1  # 2 deep
    finally:
        embedded.chain.confirmations = 0


def test_a_sheet_reorganised_away_just_before_the_result_is_computed_is_posted_again(
    embedded: LedgerEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the long `make chaos` run on anvil (0 confirmations): the in-process
    validator's sheet was reorganised away after the last check and before the computation
    read the sheets; the round was proposed without it and paid by examples, unlike the
    uninterrupted run. The check now comes after the computation."""
    world = make_world(embedded, tmp_path, nodes=NODES)
    runner = world.runner(RoundSettings(), validators=validators(world))
    round_ = runner.open()
    submit_towards_good(world, round_)
    before_sheets = embedded.snapshot()
    compute = runner._compute
    marks: list[str] = []

    def compute_after_a_reorganisation(number: int, reveals: int) -> object:
        if not marks and embedded.ledger.round(world.task_id, number).scores_bitmap:
            marks.append("reorganised")
            embedded.revert(before_sheets)  # the sheets are gone
        return compute(number, reveals)

    monkeypatch.setattr(runner, "_compute", compute_after_a_reorganisation)
    outcome = runner.finalize(round_, poll_seconds=0.01)
    assert marks == ["reorganised"]
    assert outcome.report.params["reward_rule"] == "contribution"
    assert outcome.finalization.scores_bitmap == 0b111
