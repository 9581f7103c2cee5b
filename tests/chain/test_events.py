"""History rebuilds every event the ledger emits from its logs, in chain order, as typed
records: what the parties and an audit read back."""

from __future__ import annotations

from chain.attest import recover_signer
from chain.bindings import commitment_hash
from chain.events import BondSlashReason, History
from chain.merkle import SlashEntry, SlashTree
from tests.support.chain import (
    AGGREGATOR_BOND,
    TOKEN,
    VALIDATOR_BOND,
    LedgerEnv,
    digest_of,
)


def _history(env: LedgerEnv) -> History:
    return History(env.ledger, env.deployment.block)


def test_task_created_carries_every_parameter(env: LedgerEnv) -> None:
    task_id = env.create_task(max_rounds=2, quorum=3, challenge_window=77)
    created = _history(env).task_created(task_id)
    assert created.params == env.task_params(max_rounds=2, quorum=3, challenge_window=77)
    assert (created.sponsor, created.aggregator, created.quorum) == (
        env.sponsor.address,
        env.aggregator.address,
        3,
    )
    assert created.validators == tuple(v.address for v in env.validators)
    assert created.initial_global_cid == "bafy-initial-global"


def test_commits_come_in_chain_order_and_reveals_carry_the_cid_digest_and_examples(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    a, b, c = env.nodes[:3]
    env.join(task_id, a, b, c)
    round_ = env.open(task_id)
    committed = [
        env.commit(task_id, round_, node, f"u-{i}", examples=10 + i)
        for i, node in enumerate((b, c, a))
    ]
    env.reveal(task_id, round_, a)  # reveals in another order than the commitments
    env.reveal(task_id, round_, b)
    history = _history(env)

    commits = history.commits(task_id, round_)
    assert [e.node for e in commits] == [b.address, c.address, a.address]
    assert [e.commitment for e in commits] == [
        commitment_hash(task_id, round_, x.node.address, x.digest, x.examples, x.salt)
        for x in committed
    ]
    positions = [(e.block, e.tx_index, e.log_index) for e in commits]
    assert positions == sorted(positions) and len(set(positions)) == 3
    receipt = env.chain.w3.eth.get_transaction_receipt(
        env.chain.w3.eth.get_block(commits[0].block)["transactions"][commits[0].tx_index]
    )
    assert receipt["transactionIndex"] == commits[0].tx_index

    reveals = history.reveals(task_id, round_)
    assert [(e.node, e.cid, e.digest, e.num_examples) for e in reveals] == [
        (a.address, committed[2].cid, committed[2].digest, 12),
        (b.address, committed[0].cid, committed[0].digest, 10),
    ]
    assert history.submissions(task_id, round_) == reveals  # c committed and never revealed
    assert history.commits(task_id, round_ + 1) == [] == history.reveals(task_id, round_ + 1)


def test_scores_proposals_attestations_and_the_finalization_are_read_back(
    env: LedgerEnv,
) -> None:
    """An audit re-checks every signature from the logs alone."""
    node = env.nodes[0]
    task_id = env.create_task()
    env.join(task_id, node)
    round_ = env.open(task_id)
    env.commit(task_id, round_, node)
    env.reveal_all(task_id, round_)
    v0, v1, _ = env.validators
    env.ledger.post_scores(task_id, round_, digest_of("sheet"), "bafy-sheet", v1)
    result, _ = env.result(task_id, round_, {node.address: 30 * TOKEN})
    result_hash = env.ledger.propose_result(task_id, round_, result, env.aggregator)
    for attestation in env.sign(task_id, round_, result, v1, v0):
        env.ledger.attest(task_id, round_, result_hash, attestation, env.nodes[5])
    history = _history(env)

    (sheet,) = history.scores(task_id, round_)
    assert (sheet.validator, sheet.digest, sheet.cid) == (
        v1.address,
        digest_of("sheet"),
        "bafy-sheet",
    )
    (proposal,) = history.proposals(task_id, round_)
    assert (proposal.result_hash, proposal.proposer, proposal.epoch, proposal.result) == (
        result_hash,
        env.aggregator.address,
        0,
        result,
    )
    attestations = history.attestations(task_id, round_)
    assert [(a.validator, a.attestations) for a in attestations] == [
        (v1.address, 1),
        (v0.address, 2),
    ]
    for a in attestations:
        assert a.result_hash == result_hash
        assert a.validator == recover_signer(
            a.signature,
            chain_id=env.chain.chain_id,
            verifying_contract=env.ledger.address,
            task_id=task_id,
            round_=round_,
            epoch=0,
            result=proposal.result,
            scores_digest=env.ledger.scores_of(task_id, round_, a.validator),
        )
    (record,) = history.finalized(task_id)
    assert history.finalization(task_id, round_) == record
    assert (record.result_hash, record.proposer, record.signers, record.epoch) == (
        result_hash,
        env.aggregator.address,
        0b011,
        0,
    )
    assert (record.global_cid, record.reward_total, record.scores_bitmap, record.slash_root) == (
        result.global_cid,
        30 * TOKEN,
        0b010,
        result.slash_root,
    )
    assert history.global_adapter_at(task_id, result.global_digest) == result.global_cid


def test_a_voided_finalization_is_no_longer_the_rounds_and_its_bonds_slashes_are_read(
    env: LedgerEnv,
) -> None:
    node = env.nodes[0]
    task_id = env.create_task()
    env.join(task_id, node)
    round_ = env.open(task_id)
    env.commit(task_id, round_, node)
    env.reveal_all(task_id, round_)
    rewards = {node.address: 10 * TOKEN, env.aggregator.address: 50 * TOKEN}
    result, tree = env.result(task_id, round_, rewards, accepted=1)
    assert tree is not None
    env.ledger.finalize_round(
        task_id, round_, result, env.sign(task_id, round_, result), env.aggregator
    )
    env.ledger.challenge_reward(
        task_id,
        round_,
        env.aggregator.address,
        50 * TOKEN,
        tree.proof(env.aggregator.address),
        env.nodes[4],
    )
    history = _history(env)
    (voided,) = history.voided(task_id)
    assert (voided.round, voided.challenger, voided.account, voided.amount, voided.epoch) == (
        round_,
        env.nodes[4].address,
        env.aggregator.address,
        50 * TOKEN,
        1,
    )
    assert history.finalized(task_id) == [] and history.finalization(task_id, round_) is None
    (standing,) = history.finalized(task_id, include_voided=True)
    assert standing.result_hash == voided.result_hash
    assert [(s.account, s.amount, s.reason) for s in history.bond_slashes(task_id)] == [
        (env.aggregator.address, AGGREGATOR_BOND, BondSlashReason.REWARD_CHALLENGED),
        (env.validators[0].address, VALIDATOR_BOND, BondSlashReason.REWARD_CHALLENGED),
        (env.validators[1].address, VALIDATOR_BOND, BondSlashReason.REWARD_CHALLENGED),
    ]


def test_slashes_carry_the_round_reason_and_evidence_cid(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = env.open(task_id)
    env.submit(task_id, round_, node)
    entry = SlashEntry(node.address, 2 * TOKEN, 5, "bafy-evidence")
    env.finalize(task_id, round_, {}, rejected=1, slashes=[entry], settle=True)
    proof = SlashTree(task_id, round_, [entry]).proof(entry)
    env.ledger.execute_slash(task_id, round_, entry, proof, env.nodes[6])

    (slash,) = _history(env).slashes(task_id)
    assert (slash.round, slash.node, slash.amount, slash.reason, slash.evidence_cid) == (
        round_,
        node.address,
        2 * TOKEN,
        5,
        "bafy-evidence",
    )


def test_bonds_departures_abandonment_and_cancellation_are_read_back(env: LedgerEnv) -> None:
    node = env.nodes[0]
    task_id = env.create_task()
    env.join(task_id, node)
    round_ = env.open(task_id)
    env.commit(task_id, round_, node)
    env.ledger.leave(task_id, node)
    env.abandonable(task_id, round_)
    env.ledger.abandon_round(task_id, round_, env.nodes[3])
    env.ledger.withdraw_stake(task_id, node)
    env.ledger.cancel_task(task_id, env.sponsor)
    env.ledger.withdraw_bond(task_id, env.validators[2])
    history = _history(env)

    assert [(b.account, b.amount) for b in history.bonds(task_id)] == [
        (env.aggregator.address, AGGREGATOR_BOND),
        *((v.address, VALIDATOR_BOND) for v in env.validators),
    ]
    assert [(b.account, b.amount) for b in history.bond_withdrawals(task_id)] == [
        (env.validators[2].address, VALIDATOR_BOND)
    ]
    (leaving,) = history.leaving(task_id)
    assert (leaving.node, leaving.stake, leaving.last_commit_round) == (
        node.address,
        10 * TOKEN,
        round_,
    )
    (left,) = history.left(task_id)
    assert (left.node, left.stake_returned) == (node.address, 10 * TOKEN)
    (abandoned,) = history.abandoned(task_id)
    assert (abandoned.round, abandoned.epoch, abandoned.caller) == (
        round_,
        0,
        env.nodes[3].address,
    )
    cancelled = history.cancelled(task_id)
    assert cancelled is not None and history.task_cancelled(task_id) == cancelled
    assert (cancelled.sponsor, cancelled.rounds_opened, cancelled.available) == (
        env.sponsor.address,
        1,
        1000 * TOKEN,
    )
    assert history.cancelled(task_id + 1) is None


def test_conflicting_proposals_slashed_are_read_back(env: LedgerEnv) -> None:
    node = env.nodes[0]
    task_id = env.create_task()
    env.join(task_id, node)
    round_ = env.open(task_id)
    env.commit(task_id, round_, node)
    env.reveal_all(task_id, round_)
    lie, _ = env.result(task_id, round_, {}, rejected=1, label="-lie")
    lie_hash = env.ledger.propose_result(task_id, round_, lie, env.validators[2])
    env.finalize(task_id, round_, {node.address: TOKEN})
    env.ledger.slash_conflicting(task_id, round_, lie_hash, env.nodes[4])
    (slashed,) = _history(env).proposal_slashes(task_id)
    assert (slashed.round, slashed.result_hash, slashed.slasher) == (
        round_,
        lie_hash,
        env.nodes[4].address,
    )
    assert slashed.finalized_hash == env.ledger.round(task_id, round_).result_hash


def test_logs_are_read_incrementally_and_again_after_a_reverted_snapshot(env: LedgerEnv) -> None:
    """The chain remembers what each query read (by the last block's hash): new events show
    up, and events of blocks that a snapshot revert (or a reorganisation) took away vanish."""
    history = _history(env)
    first = env.create_task(max_rounds=2, bonds=False)
    assert history.bonds(first) == []
    env.ledger.post_bond(first, env.aggregator)
    assert [b.account for b in history.bonds(first)] == [env.aggregator.address]  # new blocks
    snapshot = env.snapshot()
    second = env.create_task(max_rounds=3)
    assert history.task_created(second).params.max_rounds == 3
    assert len(history.bonds(second)) == 1 + len(env.validators)
    env.revert(snapshot)
    snapshot = env.snapshot()  # a JSON-RPC chain's snapshot is used up by its revert
    # the same task id again, in other blocks at the same heights as the reverted ones
    assert env.create_task(max_rounds=4) == second
    assert history.task_created(second).params.max_rounds == 4
    assert [b.account for b in history.bonds(first)] == [env.aggregator.address]
    env.revert(snapshot)
    assert history.bonds(second) == []  # the head went back
