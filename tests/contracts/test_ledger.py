"""LoRALedger, one group of tests per external function, on the embedded chain and on Ganache.

Every revert asserts its exact custom error and arguments; every event its arguments.
"""

from __future__ import annotations

from chain import errors
from chain.bindings import ClaimRequest, Finalization, base_model_hash
from chain.merkle import RewardEntry, RewardTree
from chain.round_state import RoundState
from tests.support.chain import BASE_MODEL, TOKEN, LedgerEnv, digest_of, reverts

ZERO = b"\x00" * 32
UNOPENED, OPEN, CLOSED, FINALIZED = RoundState


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
        reward_per_round=7 * TOKEN, min_stake=3 * TOKEN, submission_window=90, max_rounds=5
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
        "maxRounds": 5,
    }
    task = env.ledger.task(task_id)
    assert (task.sponsor, task.global_digest, task.max_rounds, task.funded) == (
        env.sponsor.address,
        digest_of("global-0"),
        5,
        0,
    )
    assert env.ledger.task_count() == task_id


def test_createTask_reverts_when_token_is_not_a_contract(env: LedgerEnv) -> None:
    with reverts(errors.LedgerInvalidToken, token=env.nodes[0].address):
        env.ledger.create_task(env.task_params(token=env.nodes[0].address), env.sponsor)


def test_createTask_reverts_when_window_or_rounds_are_zero(env: LedgerEnv) -> None:
    with reverts(errors.LedgerInvalidWindow, submissionWindow=0):
        env.ledger.create_task(env.task_params(submission_window=0), env.sponsor)
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


def test_leave_reverts_while_own_update_is_under_review_then_works_after_finalize(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, node)
    with reverts(errors.LedgerLeaveDuringRound, taskId=task_id, round=round_, node=node.address):
        env.ledger.leave(task_id, node)
    env.finalize(task_id, round_, {node.address: 50 * TOKEN})
    env.ledger.leave(task_id, node)
    assert not env.ledger.member(task_id, node.address).joined


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
        }
    ]
    r = env.ledger.round(task_id, round_)
    assert (r.start_digest, r.deadline, r.finalized) == (
        digest_of("global-0"),
        block_time + 120,
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
    env.chain.advance_time(120)
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


# ---------------------------------------------------------------- submitUpdate


def test_submitUpdate_stores_the_digest_and_emits_the_cid(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    digest = digest_of("u1")
    receipt = env.ledger.submit_update(task_id, round_, "bafy-u1", digest, 42, node)
    assert env.events(receipt, "UpdateSubmitted") == [
        {
            "taskId": task_id,
            "round": round_,
            "node": node.address,
            "cid": "bafy-u1",
            "digest": digest,
            "numExamples": 42,
        }
    ]
    submission = env.ledger.submission(task_id, round_, node.address)
    assert (submission.digest, submission.num_examples, submission.exists) == (digest, 42, True)
    assert env.ledger.round(task_id, round_).submissions == 1


def test_submitUpdate_reverts_for_a_node_that_did_not_join(env: LedgerEnv) -> None:
    task_id = env.create_task()
    round_ = _open(env, task_id)
    with reverts(errors.LedgerNotJoined, taskId=task_id, node=env.nodes[0].address):
        env.submit(task_id, round_, env.nodes[0])


def test_submitUpdate_reverts_when_the_round_is_not_opened(env: LedgerEnv) -> None:
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


def test_submitUpdate_reverts_after_the_window(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=60)
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    deadline = env.ledger.round(task_id, round_).deadline
    env.chain.advance_time(120)
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, CLOSED, OPEN)):
        env.submit(task_id, round_, node)
    assert env.chain.timestamp() > deadline
    assert env.ledger.round(task_id, round_).submissions == 0


def test_submitUpdate_reverts_when_the_round_is_finalized(env: LedgerEnv) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    env.chain.advance_time(700)
    env.finalize(task_id, round_, {a.address: TOKEN})
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, FINALIZED, OPEN)
    ):
        env.submit(task_id, round_, b)


def test_submitUpdate_reverts_on_a_second_submission_in_the_round(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node, env.nodes[1])
    round_ = _open(env, task_id)
    env.submit(task_id, round_, node, "first")
    with reverts(errors.LedgerAlreadySubmitted, taskId=task_id, round=round_, node=node.address):
        env.submit(task_id, round_, node, "second")


def test_submitUpdate_reverts_on_a_replayed_digest_from_another_node_or_round(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    digest = env.submit(task_id, round_, a, "same-bytes")
    with reverts(errors.LedgerDigestReused, taskId=task_id, digest=digest):
        env.submit(task_id, round_, b, "same-bytes")
    env.chain.advance_time(700)
    env.finalize(task_id, round_, {a.address: TOKEN})
    round2 = _open(env, task_id)
    with reverts(errors.LedgerDigestReused, taskId=task_id, digest=digest):
        env.submit(task_id, round2, a, "same-bytes")


def test_submitUpdate_reverts_on_empty_cid_zero_digest_or_zero_examples(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = _open(env, task_id)
    with reverts(errors.LedgerEmptyCid):
        env.ledger.submit_update(task_id, round_, "", digest_of("x"), 1, node)
    with reverts(errors.LedgerZeroDigest):
        env.ledger.submit_update(task_id, round_, "bafy", ZERO, 1, node)
    with reverts(errors.LedgerZeroExamples, taskId=task_id, round=round_, node=node.address):
        env.ledger.submit_update(task_id, round_, "bafy", digest_of("x"), 0, node)


def test_submitUpdate_reverts_when_the_stake_was_slashed_below_minimum(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    env.ledger.slash(task_id, node.address, 4 * TOKEN, 3, env.aggregator)
    round_ = _open(env, task_id)
    with reverts(
        errors.LedgerStakeTooLow,
        taskId=task_id,
        node=node.address,
        stake=6 * TOKEN,
        minStake=10 * TOKEN,
    ):
        env.submit(task_id, round_, node)


# ---------------------------------------------------------------- finalizeRound


def test_finalizeRound_records_the_result_and_emits_every_field(env: LedgerEnv) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    env.submit(task_id, round_, b)
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


def test_finalizeRound_reverts_before_the_window_closes_unless_every_node_submitted(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, OPEN, CLOSED)):
        env.finalize(task_id, round_, {a.address: TOKEN})
    env.submit(task_id, round_, b)
    env.finalize(task_id, round_, {a.address: TOKEN, b.address: TOKEN})
    assert env.ledger.round(task_id, round_).finalized


def test_finalizeRound_after_the_window_pays_only_those_who_submitted(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=30)
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = _open(env, task_id)
    env.submit(task_id, round_, a)
    env.chain.advance_time(60)
    with reverts(
        errors.LedgerCountMismatch,
        taskId=task_id,
        round=round_,
        accepted=2,
        rejected=0,
        submissions=1,
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


def test_roundState_goes_open_closed_finalized_when_every_joined_node_submits(
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
    assert (
        env.ledger.round_state(task_id, round_) is CLOSED
    )  # before the deadline: nobody is left to submit
    assert env.chain.timestamp() <= env.ledger.round(task_id, round_).deadline
    env.finalize(task_id, round_, {a.address: TOKEN, b.address: TOKEN})
    assert env.ledger.round_state(task_id, round_) is FINALIZED
    assert env.ledger.round_state(task_id, _open(env, task_id)) is OPEN


def test_roundState_closes_when_the_window_passes(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=60)
    env.join(task_id, env.nodes[0])
    round_ = _open(env, task_id)
    assert env.ledger.round_state(task_id, round_) is OPEN
    env.chain.advance_time(120)
    assert env.ledger.round_state(task_id, round_) is CLOSED  # nobody submitted: the window decides
    env.finalize(task_id, round_, {})
    assert env.ledger.round_state(task_id, round_) is FINALIZED


def test_roundState_of_a_round_nobody_joined_is_closed_until_a_node_joins(env: LedgerEnv) -> None:
    task_id = env.create_task()
    round_ = _open(env, task_id)
    assert env.ledger.round_state(task_id, round_) is CLOSED  # every joined node (none) submitted
    env.join(task_id, env.nodes[0])
    assert env.ledger.round_state(task_id, round_) is OPEN
    env.submit(task_id, round_, env.nodes[0])
    assert env.ledger.round_state(task_id, round_) is CLOSED


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
    env.chain.advance_time(700)
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


def test_slash_moves_stake_into_the_pool_and_emits_the_reason(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    receipt = env.ledger.slash(task_id, node.address, 4 * TOKEN, 7, env.aggregator)
    assert env.events(receipt, "NodeSlashed") == [
        {"taskId": task_id, "node": node.address, "amount": 4 * TOKEN, "reason": 7}
    ]
    assert env.ledger.member(task_id, node.address).stake == 6 * TOKEN
    assert env.ledger.task(task_id).funded == 1004 * TOKEN
    before = env.token.balance_of(node.address)
    env.ledger.leave(task_id, node)
    assert env.token.balance_of(node.address) == before + 6 * TOKEN


def test_slash_reverts_for_unauthorized_callers_and_bad_amounts(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    with reverts(
        errors.AccessControlUnauthorizedAccount,
        account=node.address,
        neededRole=env.ledger.AGGREGATOR_ROLE,
    ):
        env.ledger.slash(task_id, node.address, TOKEN, 1, node)
    with reverts(
        errors.LedgerSlashAboveStake,
        taskId=task_id,
        node=node.address,
        amount=11 * TOKEN,
        stake=10 * TOKEN,
    ):
        env.ledger.slash(task_id, node.address, 11 * TOKEN, 1, env.aggregator)
    with reverts(errors.LedgerZeroAmount):
        env.ledger.slash(task_id, node.address, 0, 1, env.aggregator)
    with reverts(errors.LedgerNotJoined, taskId=task_id, node=env.nodes[1].address):
        env.ledger.slash(task_id, env.nodes[1].address, TOKEN, 1, env.aggregator)


# ---------------------------------------------------------------- withdrawRemainder


def test_withdrawRemainder_returns_the_unreserved_pool_after_the_last_round(env: LedgerEnv) -> None:
    task_id, round_, tree = _round_with_rewards(env, [40 * TOKEN])
    for _ in range(2):
        round_n = _open(env, task_id)
        env.chain.advance_time(700)  # the joined node sits these rounds out
        env.finalize(task_id, round_n, {})
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
