"""LoRALedger, one group of tests per external function, on the embedded chain and on Ganache.

Every revert asserts its exact custom error and arguments; every event its arguments.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from chain import errors
from chain.bindings import ClaimRequest, Finalization, Submission, base_model_hash, commitment_hash
from chain.merkle import RewardEntry, RewardTree
from chain.round_state import RoundState
from tests.support.chain import BASE_MODEL, TOKEN, LedgerEnv, digest_of, reverts

ZERO = b"\x00" * 32
UNOPENED, OPEN, REVEALING, CLOSED, FINALIZED = RoundState


def _open(env: LedgerEnv, task_id: int) -> int:
    round_, _ = env.ledger.open_next_round(task_id, env.aggregator)
    return round_


def _unexpected(
    task_id: int, round_: int, current: RoundState, *expected: RoundState
) -> dict[str, object]:
    """The arguments of LedgerUnexpectedRoundState, by their Solidity names."""
    return {
        "taskId": task_id,
        "round": round_,
        "current": current,
        "expectedStates": RoundState.to_bitmap(expected),
    }


# ---------------------------------------------------------------- createTask


def test_createTask_stores_the_task_and_emits_every_parameter(env: LedgerEnv) -> None:
    params = env.task_params(
        reward_per_round=7 * TOKEN,
        min_stake=3 * TOKEN,
        submission_window=90,
        reveal_window=45,
        max_examples=5000,
        max_rounds=5,
    )
    task_id, receipt = env.ledger.create_task(params, env.sponsor)
    (event,) = env.events(receipt, "TaskCreated")
    assert event == {
        "taskId": task_id,
        "sponsor": env.sponsor.address,
        "token": env.token.address,
        "baseModelHash": base_model_hash(BASE_MODEL),
        "initialGlobalCid": "bafy-initial-global",
        "initialGlobalDigest": digest_of("global-0"),
        "rewardPerRound": 7 * TOKEN,
        "minStake": 3 * TOKEN,
        "submissionWindow": 90,
        "revealWindow": 45,
        "maxExamples": 5000,
        "maxRounds": 5,
    }
    task = env.ledger.task(task_id)
    assert (
        task.sponsor,
        task.global_digest,
        task.max_rounds,
        task.funded,
        task.reveal_window,
        task.max_examples,
    ) == (env.sponsor.address, digest_of("global-0"), 5, 0, 45, 5000)
    assert env.ledger.task_count() == task_id


def test_createTask_reverts_when_token_is_not_a_contract(env: LedgerEnv) -> None:
    with reverts(errors.LedgerInvalidToken, token=env.nodes[0].address):
        env.ledger.create_task(env.task_params(token=env.nodes[0].address), env.sponsor)


def test_createTask_reverts_when_windows_cap_or_rounds_are_zero(env: LedgerEnv) -> None:
    with reverts(errors.LedgerInvalidWindow, submissionWindow=0):
        env.ledger.create_task(env.task_params(submission_window=0), env.sponsor)
    with reverts(errors.LedgerInvalidRevealWindow, revealWindow=0):
        env.ledger.create_task(env.task_params(reveal_window=0), env.sponsor)
    with reverts(errors.LedgerInvalidMaxExamples, maxExamples=0):
        env.ledger.create_task(env.task_params(max_examples=0), env.sponsor)
    with reverts(errors.LedgerInvalidMaxRounds, maxRounds=0):
        env.ledger.create_task(env.task_params(max_rounds=0), env.sponsor)


def test_createTask_reverts_when_initial_adapter_is_missing(env: LedgerEnv) -> None:
    with reverts(errors.LedgerEmptyCid):
        env.ledger.create_task(env.task_params(initial_global_cid=""), env.sponsor)
    with reverts(errors.LedgerZeroDigest):
        env.ledger.create_task(env.task_params(initial_global_digest=ZERO), env.sponsor)


# ---------------------------------------------------------------- fundTask


def test_fundTask_moves_tokens_into_the_pool_and_emits(env: LedgerEnv) -> None:
    task_id = env.create_task(fund=0)
    before = env.token.balance_of(env.sponsor.address)
    env.token.approve(env.ledger.address, 250 * TOKEN, env.sponsor)
    receipt = env.ledger.fund_task(task_id, 250 * TOKEN, env.sponsor)
    assert env.events(receipt, "TaskFunded") == [
        {
            "taskId": task_id,
            "funder": env.sponsor.address,
            "amount": 250 * TOKEN,
            "funded": 250 * TOKEN,
        }
    ]
    assert env.token.balance_of(env.sponsor.address) == before - 250 * TOKEN
    assert env.token.balance_of(env.ledger.address) == 250 * TOKEN
    assert env.ledger.task(task_id).funded == 250 * TOKEN


def test_fundTask_reverts_for_unknown_task_zero_amount_and_missing_allowance(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task(fund=0)
    with reverts(errors.LedgerUnknownTask, taskId=99):
        env.ledger.fund_task(99, 1, env.sponsor)
    with reverts(errors.LedgerZeroAmount):
        env.ledger.fund_task(task_id, 0, env.sponsor)
    with reverts(
        errors.ERC20InsufficientAllowance, spender=env.ledger.address, allowance=0, needed=5
    ):
        env.ledger.fund_task(task_id, 5, env.nodes[0])


def test_fundTask_reverts_when_task_is_complete(env: LedgerEnv) -> None:
    task_id = env.create_task(max_rounds=1)
    round_ = _open(env, task_id)
    env.finalize(task_id, round_, {})
    with reverts(errors.LedgerTaskComplete, taskId=task_id, maxRounds=1):
        env.ledger.fund_task(task_id, TOKEN, env.sponsor)


# ---------------------------------------------------------------- join / leave


def test_join_takes_the_stake_and_emits(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    before = env.token.balance_of(node.address)
    env.token.approve(env.ledger.address, 10 * TOKEN, node)
    receipt = env.ledger.join(task_id, node)
    assert env.events(receipt, "NodeJoined") == [
        {"taskId": task_id, "node": node.address, "stake": 10 * TOKEN}
    ]
    assert env.token.balance_of(node.address) == before - 10 * TOKEN
    member = env.ledger.member(task_id, node.address)
    assert (member.joined, member.stake) == (True, 10 * TOKEN)
    assert env.ledger.task(task_id).active_nodes == 1


def test_join_reverts_when_already_joined_or_task_unknown(env: LedgerEnv) -> None:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0])
    with reverts(errors.LedgerAlreadyJoined, taskId=task_id, node=env.nodes[0].address):
        env.ledger.join(task_id, env.nodes[0])
    with reverts(errors.LedgerUnknownTask, taskId=0):
        env.ledger.join(0, env.nodes[0])


def test_leave_returns_the_stake_and_emits(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    before = env.token.balance_of(node.address)
    receipt = env.ledger.leave(task_id, node)
    assert env.events(receipt, "NodeLeft") == [
        {"taskId": task_id, "node": node.address, "stakeReturned": 10 * TOKEN}
    ]
    assert env.token.balance_of(node.address) == before + 10 * TOKEN
    assert env.ledger.task(task_id).active_nodes == 0


def test_leave_reverts_when_not_joined(env: LedgerEnv) -> None:
    task_id = env.create_task()
    with reverts(errors.LedgerNotJoined, taskId=task_id, node=env.nodes[0].address):
        env.ledger.leave(task_id, env.nodes[0])


def test_leave_reverts_while_committed_to_the_pending_round_then_works_after_finalize(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, node)
    with reverts(errors.LedgerLeaveDuringRound, taskId=task_id, round=round_, node=node.address):
        env.ledger.leave(task_id, node)  # committed, not revealed (REVEALING)
    env.reveal(task_id, round_, node)
    with reverts(errors.LedgerLeaveDuringRound, taskId=task_id, round=round_, node=node.address):
        env.ledger.leave(task_id, node)  # revealed, awaiting finalization (CLOSED)
    env.finalize(task_id, round_, {node.address: 50 * TOKEN})
    env.ledger.leave(task_id, node)
    assert not env.ledger.member(task_id, node.address).joined


def test_leave_of_the_last_uncommitted_node_ends_the_commit_phase(env: LedgerEnv) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    env.ledger.leave(task_id, b)  # never committed: free to go
    assert env.ledger.round(task_id, round_).all_committed
    assert env.ledger.round_state(task_id, round_) is REVEALING


# ---------------------------------------------------------------- openRound


def test_openRound_starts_from_the_current_global_adapter_and_emits(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=120)
    round_, receipt = env.ledger.open_next_round(task_id, env.aggregator)
    block_time = env.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert env.events(receipt, "RoundOpened") == [
        {
            "taskId": task_id,
            "round": 1,
            "startDigest": digest_of("global-0"),
            "deadline": block_time + 120,
            "revealDeadline": block_time + 120 + 600,
        }
    ]
    r = env.ledger.round(task_id, round_)
    assert (r.start_digest, r.deadline, r.reveal_deadline, r.finalized) == (
        digest_of("global-0"),
        block_time + 120,
        block_time + 720,
        False,
    )
    assert env.ledger.open_round(task_id) == 1


def test_openRound_reverts_for_callers_without_the_aggregator_role(env: LedgerEnv) -> None:
    task_id = env.create_task()
    with reverts(
        errors.AccessControlUnauthorizedAccount,
        account=env.nodes[0].address,
        neededRole=env.ledger.AGGREGATOR_ROLE,
    ):
        env.ledger.open_next_round(task_id, env.nodes[0])


def test_openRound_reverts_when_the_last_round_is_not_finalized(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=60)
    env.join(task_id, env.nodes[0])
    _open(env, task_id)
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, 1, OPEN, FINALIZED)):
        _open(env, task_id)
    env.submit(task_id, 1, env.nodes[0])
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, 1, REVEALING, FINALIZED)
    ):
        _open(env, task_id)
    env.reveal(task_id, 1, env.nodes[0])
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, 1, CLOSED, FINALIZED)):
        _open(env, task_id)


def test_openRound_reverts_when_the_pool_cannot_pay_a_round(env: LedgerEnv) -> None:
    task_id = env.create_task(fund=60 * TOKEN)
    with reverts(
        errors.LedgerInsufficientPool, taskId=task_id, available=60 * TOKEN, required=100 * TOKEN
    ):
        _open(env, task_id)


def test_openRound_reverts_after_the_last_round(env: LedgerEnv) -> None:
    task_id = env.create_task(max_rounds=1)
    env.finalize(task_id, _open(env, task_id), {})
    with reverts(errors.LedgerTaskComplete, taskId=task_id, maxRounds=1):
        _open(env, task_id)


# ---------------------------------------------------------------- commitUpdate


def test_commitUpdate_stores_the_commitment_and_publishes_nothing_else(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node, env.nodes[1])
    round_ = _open(env, task_id)
    salt = digest_of("salt")
    commitment = commitment_hash(task_id, round_, node.address, digest_of("u1"), 42, salt)
    receipt = env.ledger.commit_update(task_id, round_, commitment, node)
    block_time = env.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert env.events(receipt, "UpdateCommitted") == [
        {"taskId": task_id, "round": round_, "node": node.address, "commitment": commitment}
    ]
    assert env.events(receipt, "UpdateRevealed") == []
    assert env.ledger.submission(task_id, round_, node.address) == Submission(
        commitment, ZERO, 0, block_time, 0
    )
    r = env.ledger.round(task_id, round_)
    assert (r.commits, r.reveals, r.all_committed) == (1, 0, False)
    assert env.ledger.round_state(task_id, round_) is OPEN


def test_commitmentOf_equals_the_offline_commitment_hash(env: LedgerEnv) -> None:
    node = env.nodes[3].address
    for task_id, round_, examples in ((1, 1, 1), (7, 2**32 - 1, 2**64 - 1)):
        digest, salt = digest_of(f"d{task_id}"), digest_of(f"s{round_}")
        assert env.ledger.commitment_of(
            task_id, round_, node, digest, examples, salt
        ) == commitment_hash(task_id, round_, node, digest, examples, salt)


def test_commitUpdate_reverts_for_a_node_that_did_not_join(env: LedgerEnv) -> None:
    task_id = env.create_task()
    round_ = _open(env, task_id)
    with reverts(errors.LedgerNotJoined, taskId=task_id, node=env.nodes[0].address):
        env.submit(task_id, round_, env.nodes[0])


def test_commitUpdate_reverts_when_the_round_is_not_opened(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, 1, UNOPENED, OPEN)):
        env.submit(task_id, 1, node)
    round_ = _open(env, task_id)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_ + 1, UNOPENED, OPEN)
    ):
        env.submit(task_id, round_ + 1, node)
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, 0, UNOPENED, OPEN)):
        env.submit(task_id, 0, node)


def test_commitUpdate_reverts_after_the_window(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=60)
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    deadline = env.ledger.round(task_id, round_).deadline
    env.chain.advance_time(120)
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, CLOSED, OPEN)):
        env.submit(task_id, round_, node)
    assert env.chain.timestamp() > deadline
    assert env.ledger.round(task_id, round_).commits == 0


def test_commitUpdate_reverts_while_revealing_and_when_finalized(env: LedgerEnv) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    env.end_commit_phase(task_id, round_)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, REVEALING, OPEN)
    ):
        env.submit(task_id, round_, b)
    env.finalize(task_id, round_, {a.address: TOKEN})
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, FINALIZED, OPEN)
    ):
        env.submit(task_id, round_, b)


def test_commitUpdate_reverts_on_a_second_commitment_in_the_round(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node, env.nodes[1])
    round_ = _open(env, task_id)
    env.submit(task_id, round_, node, "first")
    with reverts(errors.LedgerAlreadyCommitted, taskId=task_id, round=round_, node=node.address):
        env.submit(task_id, round_, node, "second")


def test_commitUpdate_reverts_on_a_zero_commitment(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    with reverts(errors.LedgerZeroCommitment):
        env.ledger.commit_update(task_id, round_, ZERO, node)


def test_commitUpdate_reverts_when_the_stake_was_slashed_below_minimum(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, node)
    env.finalize(task_id, round_, {node.address: TOKEN})
    env.ledger.slash(task_id, round_, node.address, 4 * TOKEN, 3, "bafy-evidence", env.aggregator)
    round2 = _open(env, task_id)
    with reverts(
        errors.LedgerStakeTooLow,
        taskId=task_id,
        node=node.address,
        stake=6 * TOKEN,
        minStake=10 * TOKEN,
    ):
        env.submit(task_id, round2, node)


def test_commitUpdate_the_last_commitment_ends_the_commit_phase_for_good(env: LedgerEnv) -> None:
    """Every joined node committed: a node joining afterwards does not reopen the commit phase
    (it would otherwise commit after seeing the others' reveals)."""
    task_id = env.create_task()
    a, b, late = env.nodes[0], env.nodes[1], env.nodes[2]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    env.submit(task_id, round_, b)
    assert env.ledger.round(task_id, round_).all_committed
    assert env.chain.timestamp() <= env.ledger.round(task_id, round_).deadline
    assert env.ledger.round_state(task_id, round_) is REVEALING
    env.join(task_id, late)
    assert env.ledger.round_state(task_id, round_) is REVEALING
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, REVEALING, OPEN)
    ):
        env.submit(task_id, round_, late)


# ---------------------------------------------------------------- revealUpdate


def test_revealUpdate_records_the_digest_and_emits_the_cid(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    c = env.commit(task_id, round_, node, "u1", examples=42)
    assert env.ledger.round_state(task_id, round_) is REVEALING  # every joined node committed
    receipt = env.reveal(task_id, round_, node)
    block_time = env.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert env.events(receipt, "UpdateRevealed") == [
        {
            "taskId": task_id,
            "round": round_,
            "node": node.address,
            "cid": c.cid,
            "digest": c.digest,
            "numExamples": 42,
        }
    ]
    submission = env.ledger.submission(task_id, round_, node.address)
    assert (submission.digest, submission.num_examples, submission.revealed_at) == (
        c.digest,
        42,
        block_time,
    )
    assert submission.exists and submission.committed
    r = env.ledger.round(task_id, round_)
    assert (r.commits, r.reveals, r.submissions) == (1, 1, 1)
    assert env.ledger.round_state(task_id, round_) is CLOSED  # every commitment revealed


def test_revealUpdate_reverts_during_the_commit_phase_and_after_the_reveal_window(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task(submission_window=60, reveal_window=30)
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, OPEN, REVEALING)
    ):
        env.reveal(task_id, round_, a)
    env.chain.advance_time(61 + 31)
    assert env.chain.timestamp() > env.ledger.round(task_id, round_).reveal_deadline
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, CLOSED, REVEALING)
    ):
        env.reveal(task_id, round_, a)


def test_revealUpdate_reverts_for_a_node_that_did_not_commit_or_already_revealed(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    c = env.commit(task_id, round_, a)
    env.commit(task_id, round_, b)
    with reverts(
        errors.LedgerNotCommitted, taskId=task_id, round=round_, node=env.nodes[2].address
    ):
        env.ledger.reveal_update(task_id, round_, c.cid, c.digest, c.examples, c.salt, env.nodes[2])
    env.reveal(task_id, round_, a)
    with reverts(errors.LedgerAlreadyRevealed, taskId=task_id, round=round_, node=a.address):
        env.ledger.reveal_update(task_id, round_, c.cid, c.digest, c.examples, c.salt, a)


def test_revealUpdate_reverts_when_any_revealed_value_differs_from_the_commitment(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    c = env.commit(task_id, round_, node, examples=10)
    committed = commitment_hash(task_id, round_, node.address, c.digest, 10, c.salt)
    lies = [
        {"digest": digest_of("other")},
        {"examples": 11},
        {"salt": digest_of("guessed salt")},
    ]
    for lie in lies:
        values = {"digest": c.digest, "examples": 10, "salt": c.salt} | lie
        revealed = commitment_hash(
            task_id, round_, node.address, values["digest"], values["examples"], values["salt"]
        )
        with reverts(
            errors.LedgerCommitmentMismatch,
            taskId=task_id,
            round=round_,
            node=node.address,
            committed=committed,
            revealed=revealed,
        ):
            env.reveal(task_id, round_, node, **lie)


def test_revealUpdate_a_copier_cannot_reveal_someone_elses_update(env: LedgerEnv) -> None:
    """Front-running: the copier committed blind, then sees the honest reveal; replaying the
    honest digest, count and even salt fails (the commitment binds the node), and a commitment
    it never reveals is not counted: only the honest node can be paid."""
    task_id = env.create_task()
    honest, copier = env.nodes[0], env.nodes[1]
    env.join(task_id, honest, copier)
    round_ = _open(env, task_id)
    h = env.commit(task_id, round_, honest, "honest work", examples=50)
    env.commit(task_id, round_, copier, "placeholder", examples=50)
    env.reveal(task_id, round_, honest)  # now the CID and digest are public
    copied = commitment_hash(task_id, round_, copier.address, h.digest, 50, h.salt)
    with reverts(
        errors.LedgerCommitmentMismatch,
        taskId=task_id,
        round=round_,
        node=copier.address,
        committed=env.ledger.submission(task_id, round_, copier.address).commitment,
        revealed=copied,
    ):
        env.ledger.reveal_update(task_id, round_, h.cid, h.digest, 50, h.salt, copier)
    env.pending.clear()  # the copier never reveals its own commitment
    env.chain.advance_time(1300)
    assert env.ledger.round_state(task_id, round_) is CLOSED
    r = env.ledger.round(task_id, round_)
    assert (r.commits, r.reveals) == (2, 1)
    with reverts(
        errors.LedgerCountMismatch, taskId=task_id, round=round_, accepted=2, rejected=0, reveals=1
    ):
        env.finalize(task_id, round_, {honest.address: TOKEN, copier.address: TOKEN})
    tree = env.finalize(task_id, round_, {honest.address: 100 * TOKEN})
    assert tree is not None
    assert not env.ledger.submission(task_id, round_, copier.address).exists


def test_revealUpdate_reverts_on_a_replayed_digest_from_another_node_or_round(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    digest = env.submit(task_id, round_, a, "same-bytes")
    env.submit(task_id, round_, b, "same-bytes")
    env.reveal(task_id, round_, a)
    with reverts(errors.LedgerDigestReused, taskId=task_id, digest=digest):
        env.reveal(task_id, round_, b)
    env.pending.clear()
    env.chain.advance_time(1300)
    env.finalize(task_id, round_, {a.address: TOKEN})
    round2 = _open(env, task_id)
    env.submit(task_id, round2, a, "same-bytes")
    env.submit(task_id, round2, b, "other-bytes")
    with reverts(errors.LedgerDigestReused, taskId=task_id, digest=digest):
        env.reveal(task_id, round2, a)


def test_revealUpdate_reverts_on_empty_cid_zero_digest_or_zero_examples(env: LedgerEnv) -> None:
    node = env.nodes[0]
    salt = digest_of("salt")

    def committed_round(digest: bytes, examples: int) -> tuple[int, int]:
        """A fresh task whose round the node committed to exactly these values."""
        task_id = env.create_task()
        env.join(task_id, node)
        round_ = _open(env, task_id)
        commitment = commitment_hash(task_id, round_, node.address, digest, examples, salt)
        env.ledger.commit_update(task_id, round_, commitment, node)
        return task_id, round_

    task_id, round_ = committed_round(digest_of("x"), 1)
    with reverts(errors.LedgerEmptyCid):
        env.ledger.reveal_update(task_id, round_, "", digest_of("x"), 1, salt, node)
    task_id, round_ = committed_round(ZERO, 1)
    with reverts(errors.LedgerZeroDigest):
        env.ledger.reveal_update(task_id, round_, "bafy", ZERO, 1, salt, node)
    task_id, round_ = committed_round(digest_of("x"), 0)
    with reverts(errors.LedgerZeroExamples, taskId=task_id, round=round_, node=node.address):
        env.ledger.reveal_update(task_id, round_, "bafy", digest_of("x"), 0, salt, node)


def test_revealUpdate_reverts_when_examples_exceed_the_task_cap(env: LedgerEnv) -> None:
    """A node cannot claim 2^63 examples to take all of the FedAvg weight and the reward."""
    task_id = env.create_task(max_examples=500)
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    env.commit(task_id, round_, node, examples=2**63)
    with reverts(
        errors.LedgerExamplesAboveCap,
        taskId=task_id,
        round=round_,
        node=node.address,
        numExamples=2**63,
        maxExamples=500,
    ):
        env.reveal(task_id, round_, node)
    assert env.ledger.round(task_id, round_).reveals == 0


def test_revealUpdate_accepts_exactly_the_cap(env: LedgerEnv) -> None:
    task_id = env.create_task(max_examples=500)
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    env.commit(task_id, round_, node, examples=500)
    env.reveal(task_id, round_, node)
    assert env.ledger.submission(task_id, round_, node.address).num_examples == 500


# ---------------------------------------------------------------- finalizeRound


def test_finalizeRound_records_the_result_and_emits_every_field(env: LedgerEnv) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    env.submit(task_id, round_, b)
    env.reveal_all(task_id, round_)
    tree = RewardTree(task_id, round_, [RewardEntry(a.address, 60 * TOKEN)])
    result = Finalization("bafy-g1", digest_of("g1"), "bafy-r1", 1, 1, tree.root, 60 * TOKEN)
    receipt = env.ledger.finalize_round(task_id, round_, result, env.aggregator)
    assert env.events(receipt, "RoundFinalized") == [
        {
            "taskId": task_id,
            "round": round_,
            "globalCid": "bafy-g1",
            "globalDigest": digest_of("g1"),
            "reportCid": "bafy-r1",
            "accepted": 1,
            "rejected": 1,
            "rewardRoot": tree.root,
            "rewardTotal": 60 * TOKEN,
        }
    ]
    r = env.ledger.round(task_id, round_)
    assert (r.finalized, r.result_digest, r.reward_root, r.accepted, r.rejected) == (
        True,
        digest_of("g1"),
        tree.root,
        1,
        1,
    )
    task = env.ledger.task(task_id)
    assert (task.global_digest, task.reserved) == (digest_of("g1"), 60 * TOKEN)
    assert env.ledger.round(task_id, round_ + 0).start_digest == digest_of("global-0")
    assert env.ledger.open_round(task_id) == 0


def test_finalizeRound_reverts_until_every_commitment_is_revealed_or_the_reveal_window_ends(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, OPEN, CLOSED)):
        env.finalize(task_id, round_, {a.address: TOKEN}, reveal=False)
    env.submit(task_id, round_, b)
    env.reveal(task_id, round_, a)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, REVEALING, CLOSED)
    ):
        env.finalize(task_id, round_, {a.address: TOKEN}, reveal=False)
    env.reveal(task_id, round_, b)
    env.finalize(task_id, round_, {a.address: TOKEN, b.address: TOKEN})
    assert env.ledger.round(task_id, round_).finalized


def test_finalizeRound_after_the_window_pays_only_those_who_submitted(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=30)
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    env.chain.advance_time(60)
    env.reveal(task_id, round_, a)
    assert env.ledger.round_state(task_id, round_) is CLOSED
    with reverts(
        errors.LedgerCountMismatch,
        taskId=task_id,
        round=round_,
        accepted=2,
        rejected=0,
        reveals=1,
    ):
        env.finalize(task_id, round_, {a.address: TOKEN, b.address: TOKEN})
    env.finalize(task_id, round_, {a.address: TOKEN})
    assert env.ledger.round(task_id, round_).accepted == 1


def test_finalizeRound_reverts_the_second_time(env: LedgerEnv) -> None:
    task_id = env.create_task()
    round_ = _open(env, task_id)
    env.finalize(task_id, round_, {})
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, FINALIZED, CLOSED)
    ):
        env.finalize(task_id, round_, {})


def test_finalizeRound_reverts_for_callers_without_the_aggregator_role(env: LedgerEnv) -> None:
    task_id = env.create_task()
    round_ = _open(env, task_id)
    result = Finalization("bafy", digest_of("g"), "bafy-r", 0, 0, ZERO, 0)
    with reverts(
        errors.AccessControlUnauthorizedAccount,
        account=env.sponsor.address,
        neededRole=env.ledger.AGGREGATOR_ROLE,
    ):
        env.ledger.finalize_round(task_id, round_, result, env.sponsor)


def test_finalizeRound_reverts_for_a_round_never_opened(env: LedgerEnv) -> None:
    task_id = env.create_task()
    result = Finalization("bafy", digest_of("g"), "bafy-r", 0, 0, ZERO, 0)
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, 1, UNOPENED, CLOSED)):
        env.ledger.finalize_round(task_id, 1, result, env.aggregator)
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, 0, UNOPENED, CLOSED)):
        env.ledger.finalize_round(task_id, 0, result, env.aggregator)


def test_finalizeRound_reverts_when_rewards_exceed_the_round_cap(env: LedgerEnv) -> None:
    task_id = env.create_task()
    round_ = _open(env, task_id)
    env.end_commit_phase(task_id, round_)
    result = Finalization("bafy", digest_of("g"), "bafy-r", 0, 0, ZERO, 101 * TOKEN)
    with reverts(
        errors.LedgerRewardAboveRoundCap,
        taskId=task_id,
        round=round_,
        rewardTotal=101 * TOKEN,
        rewardPerRound=100 * TOKEN,
    ):
        env.ledger.finalize_round(task_id, round_, result, env.aggregator)


def test_finalizeRound_reverts_on_missing_cids_or_digest(env: LedgerEnv) -> None:
    task_id = env.create_task()
    round_ = _open(env, task_id)
    env.end_commit_phase(task_id, round_)
    with reverts(errors.LedgerEmptyCid):
        env.ledger.finalize_round(
            task_id, round_, Finalization("", digest_of("g"), "r", 0, 0, ZERO, 0), env.aggregator
        )
    with reverts(errors.LedgerEmptyCid):
        env.ledger.finalize_round(
            task_id, round_, Finalization("g", digest_of("g"), "", 0, 0, ZERO, 0), env.aggregator
        )
    with reverts(errors.LedgerZeroDigest):
        env.ledger.finalize_round(
            task_id, round_, Finalization("g", ZERO, "r", 0, 0, ZERO, 0), env.aggregator
        )


# ---------------------------------------------------------------- roundState


def test_roundState_is_unopened_for_round_zero_and_rounds_not_opened_yet(env: LedgerEnv) -> None:
    task_id = env.create_task()
    assert [env.ledger.round_state(task_id, r) for r in (0, 1, 2)] == [UNOPENED] * 3
    _open(env, task_id)
    assert [env.ledger.round_state(task_id, r) for r in (0, 2)] == [UNOPENED] * 2


def test_roundState_goes_open_revealing_closed_finalized_when_every_node_commits_and_reveals(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    assert env.ledger.round_state(task_id, round_) is OPEN
    env.submit(task_id, round_, a)
    assert env.ledger.round_state(task_id, round_) is OPEN
    env.submit(task_id, round_, b)
    assert env.ledger.round_state(task_id, round_) is REVEALING  # nobody is left to commit
    env.reveal(task_id, round_, a)
    assert env.ledger.round_state(task_id, round_) is REVEALING
    env.reveal(task_id, round_, b)
    assert env.ledger.round_state(task_id, round_) is CLOSED  # nothing is left to reveal
    assert env.chain.timestamp() <= env.ledger.round(task_id, round_).deadline
    env.finalize(task_id, round_, {a.address: TOKEN, b.address: TOKEN})
    assert env.ledger.round_state(task_id, round_) is FINALIZED
    assert env.ledger.round_state(task_id, _open(env, task_id)) is OPEN


def test_roundState_closes_when_the_window_passes_with_nothing_committed(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=60)
    env.join(task_id, env.nodes[0])
    round_ = _open(env, task_id)
    assert env.ledger.round_state(task_id, round_) is OPEN
    env.chain.advance_time(120)
    assert env.ledger.round_state(task_id, round_) is CLOSED  # nothing to reveal: no Revealing
    env.finalize(task_id, round_, {})
    assert env.ledger.round_state(task_id, round_) is FINALIZED


def test_roundState_closes_when_the_reveal_window_passes_with_commitments_unrevealed(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task(submission_window=60, reveal_window=60)
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    env.chain.advance_time(61)
    assert env.ledger.round_state(task_id, round_) is REVEALING
    env.chain.advance_time(60)
    assert env.ledger.round_state(task_id, round_) is CLOSED
    env.pending.clear()
    env.finalize(task_id, round_, {})  # the unrevealed commitment counts for nothing
    assert env.ledger.round(task_id, round_).reveals == 0


def test_roundState_of_a_round_nobody_joined_stays_open_for_a_late_joiner(env: LedgerEnv) -> None:
    task_id = env.create_task()
    round_ = _open(env, task_id)
    assert env.ledger.round_state(task_id, round_) is OPEN  # nobody committed: the window decides
    env.join(task_id, env.nodes[0])
    env.submit(task_id, round_, env.nodes[0])
    assert env.ledger.round_state(task_id, round_) is REVEALING


def test_roundState_reverts_for_an_unknown_task(env: LedgerEnv) -> None:
    with reverts(errors.LedgerUnknownTask, taskId=7):
        env.ledger.round_state(7, 1)


# ---------------------------------------------------------------- claim / claimBatch


def _round_with_rewards(env: LedgerEnv, amounts: list[int]) -> tuple[int, int, RewardTree]:
    task_id = env.create_task()
    nodes = env.nodes[: len(amounts)]
    env.join(task_id, *nodes)
    round_ = _open(env, task_id)
    for node in nodes:
        env.submit(task_id, round_, node)
    tree = env.finalize(
        task_id, round_, {n.address: a for n, a in zip(nodes, amounts, strict=True)}
    )
    assert tree is not None
    return task_id, round_, tree


def test_claim_pays_the_proven_amount_and_emits(env: LedgerEnv) -> None:
    task_id, round_, tree = _round_with_rewards(env, [30 * TOKEN, 50 * TOKEN, 20 * TOKEN])
    node = env.nodes[1]
    before = env.token.balance_of(node.address)
    receipt = env.ledger.claim(
        ClaimRequest(task_id, round_, 50 * TOKEN, tuple(tree.proof(node.address))), node
    )
    assert env.events(receipt, "RewardClaimed") == [
        {"taskId": task_id, "round": round_, "node": node.address, "amount": 50 * TOKEN}
    ]
    assert env.token.balance_of(node.address) == before + 50 * TOKEN
    assert env.ledger.has_claimed(task_id, round_, node.address)
    assert env.ledger.task(task_id).paid == 50 * TOKEN


def test_claim_reverts_the_second_time(env: LedgerEnv) -> None:
    task_id, round_, tree = _round_with_rewards(env, [30 * TOKEN, 50 * TOKEN])
    node = env.nodes[0]
    request = ClaimRequest(task_id, round_, 30 * TOKEN, tuple(tree.proof(node.address)))
    env.ledger.claim(request, node)
    with reverts(errors.LedgerAlreadyClaimed, taskId=task_id, round=round_, node=node.address):
        env.ledger.claim(request, node)


def test_claim_reverts_on_a_forged_amount_or_another_nodes_proof(env: LedgerEnv) -> None:
    task_id, round_, tree = _round_with_rewards(env, [30 * TOKEN, 50 * TOKEN])
    a, b = env.nodes[0], env.nodes[1]
    with reverts(
        errors.LedgerInvalidProof, taskId=task_id, round=round_, node=a.address, amount=50 * TOKEN
    ):
        env.ledger.claim(ClaimRequest(task_id, round_, 50 * TOKEN, tuple(tree.proof(a.address))), a)
    with reverts(
        errors.LedgerInvalidProof,
        taskId=task_id,
        round=round_,
        node=env.nodes[5].address,
        amount=50 * TOKEN,
    ):
        env.ledger.claim(
            ClaimRequest(task_id, round_, 50 * TOKEN, tuple(tree.proof(b.address))), env.nodes[5]
        )


def test_claim_reverts_when_a_proof_is_reused_for_another_round(env: LedgerEnv) -> None:
    task_id, _first, tree = _round_with_rewards(env, [30 * TOKEN, 50 * TOKEN])
    a = env.nodes[0]
    round2 = _open(env, task_id)
    env.submit(task_id, round2, a)
    env.finalize(task_id, round2, {a.address: 30 * TOKEN})
    # the same (node, amount) in round 1's tree does not prove round 2's leaf
    with reverts(
        errors.LedgerInvalidProof, taskId=task_id, round=round2, node=a.address, amount=30 * TOKEN
    ):
        env.ledger.claim(ClaimRequest(task_id, round2, 30 * TOKEN, (tree.root,)), a)


def test_claim_reverts_before_finalization_and_for_zero(env: LedgerEnv) -> None:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0])
    round_ = _open(env, task_id)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, OPEN, FINALIZED)
    ):
        env.ledger.claim(ClaimRequest(task_id, round_, TOKEN, ()), env.nodes[0])
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_ + 1, UNOPENED, FINALIZED)
    ):
        env.ledger.claim(ClaimRequest(task_id, round_ + 1, TOKEN, ()), env.nodes[0])
    env.chain.advance_time(700)
    env.finalize(task_id, round_, {})
    with reverts(errors.LedgerZeroAmount):
        env.ledger.claim(ClaimRequest(task_id, round_, 0, ()), env.nodes[0])


def test_claim_never_pays_more_than_the_round_total(env: LedgerEnv) -> None:
    """A reward table whose entries sum above the posted total cannot drain the pool."""
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    env.submit(task_id, round_, b)
    tree = env.finalize(
        task_id, round_, {a.address: 60 * TOKEN, b.address: 60 * TOKEN}, total=100 * TOKEN
    )
    assert tree is not None
    env.ledger.claim(ClaimRequest(task_id, round_, 60 * TOKEN, tuple(tree.proof(a.address))), a)
    with reverts(
        errors.LedgerClaimAboveRoundTotal,
        taskId=task_id,
        round=round_,
        claimed=120 * TOKEN,
        rewardTotal=100 * TOKEN,
    ):
        env.ledger.claim(ClaimRequest(task_id, round_, 60 * TOKEN, tuple(tree.proof(b.address))), b)
    task = env.ledger.task(task_id)
    assert task.paid <= task.reserved <= task.funded


def test_claimBatch_claims_several_rounds_in_one_transaction(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    requests = []
    for amount in (10 * TOKEN, 20 * TOKEN, 30 * TOKEN):
        round_ = _open(env, task_id)
        env.submit(task_id, round_, node)
        tree = env.finalize(task_id, round_, {node.address: amount})
        assert tree is not None
        requests.append(ClaimRequest(task_id, round_, amount, tuple(tree.proof(node.address))))
    before = env.token.balance_of(node.address)
    receipt = env.ledger.claim_batch(requests, node)
    assert [e["round"] for e in env.events(receipt, "RewardClaimed")] == [1, 2, 3]
    assert env.token.balance_of(node.address) == before + 60 * TOKEN


def test_claimBatch_reverts_whole_when_one_entry_is_invalid(env: LedgerEnv) -> None:
    task_id, round_, tree = _round_with_rewards(env, [30 * TOKEN])
    node = env.nodes[0]
    good = ClaimRequest(task_id, round_, 30 * TOKEN, tuple(tree.proof(node.address)))
    with reverts(errors.LedgerAlreadyClaimed, taskId=task_id, round=round_, node=node.address):
        env.ledger.claim_batch([good, good], node)
    assert not env.ledger.has_claimed(task_id, round_, node.address)
    with reverts(errors.LedgerEmptyBatch):
        env.ledger.claim_batch([], node)


# ---------------------------------------------------------------- slash


def _finalized_round_of(env: LedgerEnv, node: LocalAccount) -> tuple[int, int]:
    task_id = env.create_task()
    env.join(task_id, node)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, node)
    env.finalize(task_id, round_, {}, rejected=1)
    return task_id, round_


def test_slash_moves_stake_into_the_pool_and_emits_round_reason_and_evidence(
    env: LedgerEnv,
) -> None:
    node = env.nodes[0]
    task_id, round_ = _finalized_round_of(env, node)
    receipt = env.ledger.slash(
        task_id, round_, node.address, 4 * TOKEN, 7, "bafy-ev", env.aggregator
    )
    assert env.events(receipt, "NodeSlashed") == [
        {
            "taskId": task_id,
            "round": round_,
            "node": node.address,
            "amount": 4 * TOKEN,
            "reason": 7,
            "evidenceCid": "bafy-ev",
        }
    ]
    assert env.ledger.member(task_id, node.address).stake == 6 * TOKEN
    assert env.ledger.task(task_id).funded == 1004 * TOKEN
    before = env.token.balance_of(node.address)
    env.ledger.leave(task_id, node)
    assert env.token.balance_of(node.address) == before + 6 * TOKEN


def test_slash_reverts_for_unauthorized_callers_and_bad_amounts(env: LedgerEnv) -> None:
    node = env.nodes[0]
    task_id, round_ = _finalized_round_of(env, node)
    with reverts(
        errors.AccessControlUnauthorizedAccount,
        account=node.address,
        neededRole=env.ledger.AGGREGATOR_ROLE,
    ):
        env.ledger.slash(task_id, round_, node.address, TOKEN, 1, "bafy-ev", node)
    with reverts(
        errors.LedgerSlashAboveStake,
        taskId=task_id,
        node=node.address,
        amount=11 * TOKEN,
        stake=10 * TOKEN,
    ):
        env.ledger.slash(task_id, round_, node.address, 11 * TOKEN, 1, "bafy-ev", env.aggregator)
    with reverts(errors.LedgerZeroAmount):
        env.ledger.slash(task_id, round_, node.address, 0, 1, "bafy-ev", env.aggregator)
    with reverts(errors.LedgerEmptyCid):
        env.ledger.slash(task_id, round_, node.address, TOKEN, 1, "", env.aggregator)


def test_slash_reverts_for_a_node_that_did_not_commit_in_the_round(env: LedgerEnv) -> None:
    node, bystander = env.nodes[0], env.nodes[1]
    task_id, round_ = _finalized_round_of(env, node)
    env.join(task_id, bystander)
    with reverts(errors.LedgerNotCommitted, taskId=task_id, round=round_, node=bystander.address):
        env.ledger.slash(task_id, round_, bystander.address, TOKEN, 1, "bafy-ev", env.aggregator)


def test_slash_reverts_until_the_round_is_finalized(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, node)

    def slash() -> None:
        env.ledger.slash(task_id, round_, node.address, TOKEN, 1, "bafy-ev", env.aggregator)

    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, REVEALING, FINALIZED)
    ):
        slash()
    env.reveal(task_id, round_, node)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, CLOSED, FINALIZED)
    ):
        slash()
    with reverts(
        errors.LedgerUnexpectedRoundState,
        **_unexpected(task_id, round_ + 1, UNOPENED, FINALIZED),
    ):
        env.ledger.slash(task_id, round_ + 1, node.address, TOKEN, 1, "bafy-ev", env.aggregator)
    env.finalize(task_id, round_, {}, rejected=1)
    slash()
    assert env.ledger.member(task_id, node.address).stake == 9 * TOKEN


# ---------------------------------------------------------------- withdrawRemainder


def test_withdrawRemainder_returns_the_unreserved_pool_after_the_last_round(env: LedgerEnv) -> None:
    task_id, round_, tree = _round_with_rewards(env, [40 * TOKEN])
    for _ in range(2):
        round_n = _open(env, task_id)
        env.finalize(task_id, round_n, {})  # the joined node sits these rounds out
    before = env.token.balance_of(env.sponsor.address)
    receipt = env.ledger.withdraw_remainder(task_id, env.sponsor)
    assert env.events(receipt, "RemainderWithdrawn") == [
        {"taskId": task_id, "sponsor": env.sponsor.address, "amount": 960 * TOKEN}
    ]
    assert env.token.balance_of(env.sponsor.address) == before + 960 * TOKEN
    # the reserved reward is still claimable after the withdrawal
    env.ledger.claim(
        ClaimRequest(task_id, round_, 40 * TOKEN, tuple(tree.proof(env.nodes[0].address))),
        env.nodes[0],
    )
    with reverts(errors.LedgerZeroAmount):
        env.ledger.withdraw_remainder(task_id, env.sponsor)


def test_withdrawRemainder_reverts_for_others_and_before_completion(env: LedgerEnv) -> None:
    task_id = env.create_task()
    with reverts(errors.LedgerNotSponsor, taskId=task_id, caller=env.nodes[0].address):
        env.ledger.withdraw_remainder(task_id, env.nodes[0])
    with reverts(errors.LedgerTaskNotComplete, taskId=task_id, roundsFinalized=0, maxRounds=3):
        env.ledger.withdraw_remainder(task_id, env.sponsor)
