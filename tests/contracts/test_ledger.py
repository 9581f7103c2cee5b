"""LoRALedger v3, one group of tests per external function, on the embedded chain and on Ganache.

Every revert asserts its exact custom error and arguments; every event its arguments. The
attacks the accountable protocol must stop are in ``test_ledger_attacks.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from chain import errors
from chain.bindings import (
    ZERO_DIGEST,
    ClaimRequest,
    Finalization,
    Submission,
    base_model_hash,
    commitment_hash,
    pack_privacy,
)
from chain.events import BondSlashReason, History
from chain.merkle import RewardEntry, RewardTree, SlashEntry, SlashTree
from chain.round_state import RoundState
from loraledger.privacy import TaskPrivacy
from tests.support.chain import (
    AGGREGATOR_BOND,
    BASE_MODEL,
    TOKEN,
    VALIDATOR_BOND,
    LedgerEnv,
    digest_of,
    reverts,
)

ZERO = ZERO_DIGEST
ZERO_ADDRESS = "0x" + "00" * 20
UNOPENED, OPEN, REVEALING, CLOSED, FINALIZED, SETTLED, ABANDONED = RoundState

POLICY = TaskPrivacy("node", 1.1, 0.5, 8.0, 1e-5, "prv", 4)


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


def _result_args(result: Finalization) -> dict[str, Any]:
    """A Finalization as the ABI names its fields in events."""
    return {
        "globalCid": result.global_cid,
        "globalDigest": result.global_digest,
        "reportCid": result.report_cid,
        "accepted": result.accepted,
        "rejected": result.rejected,
        "rewardRoot": result.reward_root,
        "rewardTotal": result.reward_total,
        "slashRoot": result.slash_root,
        "scoresBitmap": result.scores_bitmap,
    }


def _block_time(env: LedgerEnv, receipt: Any) -> int:
    return int(env.chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def _closed_round(env: LedgerEnv, *nodes: LocalAccount, **params: Any) -> tuple[int, int]:
    """A task whose first round is ``CLOSED`` with one revealed update per node."""
    task_id = env.create_task(**params)
    env.join(task_id, *nodes)
    round_ = env.open(task_id)
    for node in nodes:
        env.commit(task_id, round_, node)
    env.reveal_all(task_id, round_)
    assert env.ledger.round_state(task_id, round_) is CLOSED
    return task_id, round_


# ---------------------------------------------------------------- createTask


def test_createTask_stores_the_task_and_emits_every_parameter(env: LedgerEnv) -> None:
    params = env.task_params(
        reward_per_round=7 * TOKEN,
        min_stake=3 * TOKEN,
        submission_window=90,
        reveal_window=45,
        max_examples=5000,
        max_rounds=5,
        quorum=3,
        aggregator_bond=11,
        validator_bond=12,
        validator_share_bps=2500,
        challenge_window=13,
        slash_window=14,
        grace_period=15,
        privacy=POLICY,
    )
    task_id, receipt = env.ledger.create_task(params, env.sponsor)
    validators = [v.address for v in env.validators]
    (event,) = env.events(receipt, "TaskCreated")
    assert event == {
        "taskId": task_id,
        "sponsor": env.sponsor.address,
        "token": env.token.address,
        "params": {
            "baseModelHash": base_model_hash(BASE_MODEL),
            "initialGlobalCid": "bafy-initial-global",
            "initialGlobalDigest": digest_of("global-0"),
            "token": env.token.address,
            "rewardPerRound": 7 * TOKEN,
            "minStake": 3 * TOKEN,
            "submissionWindow": 90,
            "revealWindow": 45,
            "maxExamples": 5000,
            "maxRounds": 5,
            "aggregator": env.aggregator.address,
            "validators": validators,
            "quorum": 3,
            "aggregatorBond": 11,
            "validatorBond": 12,
            "validatorShareBps": 2500,
            "challengeWindow": 13,
            "slashWindow": 14,
            "gracePeriod": 15,
            "privacy": pack_privacy(POLICY),
        },
    }
    assert History(env.ledger).task_created(task_id).params.privacy == POLICY
    task = env.ledger.task(task_id)
    assert (
        task.sponsor,
        task.aggregator,
        task.global_digest,
        task.max_rounds,
        task.funded,
        task.reveal_window,
        task.max_examples,
        task.quorum,
        task.aggregator_bond,
        task.validator_bond,
        task.validator_share_bps,
        task.challenge_window,
        task.slash_window,
        task.grace_period,
        task.created_at,
        task.cancelled,
    ) == (
        env.sponsor.address,
        env.aggregator.address,
        digest_of("global-0"),
        5,
        0,
        45,
        5000,
        3,
        11,
        12,
        2500,
        13,
        14,
        15,
        _block_time(env, receipt),
        False,
    )
    assert env.ledger.validators(task_id) == tuple(validators)
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


def test_createTask_reverts_when_a_challenge_slash_or_grace_duration_is_zero(
    env: LedgerEnv,
) -> None:
    for zero in ("challenge_window", "slash_window", "grace_period"):
        durations = {"challenge_window": 600, "slash_window": 700, "grace_period": 800}
        durations[zero] = 0
        with reverts(
            errors.LedgerInvalidDuration,
            challengeWindow=durations["challenge_window"],
            slashWindow=durations["slash_window"],
            gracePeriod=durations["grace_period"],
        ):
            env.ledger.create_task(env.task_params(**durations), env.sponsor)


def test_createTask_reverts_when_initial_adapter_is_missing(env: LedgerEnv) -> None:
    with reverts(errors.LedgerEmptyCid):
        env.ledger.create_task(env.task_params(initial_global_cid=""), env.sponsor)
    with reverts(errors.LedgerZeroDigest):
        env.ledger.create_task(env.task_params(initial_global_digest=ZERO), env.sponsor)


def test_createTask_reverts_when_a_role_is_zero_or_repeated(env: LedgerEnv) -> None:
    v1, v2, _ = (v.address for v in env.validators)
    cases = [
        ({"aggregator": ZERO_ADDRESS}, ZERO_ADDRESS),
        ({"validators": (v1, ZERO_ADDRESS, v2)}, ZERO_ADDRESS),
        ({"validators": (v1, v2, v1)}, v1),
    ]
    for overrides, account in cases:
        with reverts(errors.LedgerInvalidRole, account=account):
            env.ledger.create_task(env.task_params(**overrides), env.sponsor)


def test_postBond_of_an_aggregator_that_also_validates_is_both_bonds(env: LedgerEnv) -> None:
    task_id = env.create_task(bonds=False, validators=(env.aggregator.address,), quorum=1)
    before = env.token.balance_of(env.aggregator.address)
    env.ledger.post_bond(task_id, env.aggregator)
    task = env.ledger.task(task_id)
    paid = before - env.token.balance_of(env.aggregator.address)
    assert paid == task.aggregator_bond + task.validator_bond
    assert env.ledger.bond_of(task_id, env.aggregator.address).amount == paid


def test_createTask_reverts_without_validators_or_with_more_than_32(env: LedgerEnv) -> None:
    with reverts(errors.LedgerInvalidValidatorCount, count=0):
        env.ledger.create_task(env.task_params(validators=(), quorum=1), env.sponsor)
    many = tuple(f"0x{i + 1:040x}" for i in range(33))
    with reverts(errors.LedgerInvalidValidatorCount, count=33):
        env.ledger.create_task(env.task_params(validators=many, quorum=17), env.sponsor)


def test_createTask_reverts_when_the_quorum_is_no_majority(env: LedgerEnv) -> None:
    for quorum in (0, 1, 4):
        with reverts(errors.LedgerInvalidQuorum, quorum=quorum, validators=3):
            env.ledger.create_task(env.task_params(quorum=quorum), env.sponsor)
    four = (*(v.address for v in env.validators), env.nodes[7].address)
    with reverts(errors.LedgerInvalidQuorum, quorum=2, validators=4):
        env.ledger.create_task(env.task_params(validators=four, quorum=2), env.sponsor)
    task_id, _ = env.ledger.create_task(env.task_params(validators=four, quorum=3), env.sponsor)
    assert env.ledger.task(task_id).quorum == 3


def test_createTask_reverts_when_the_validator_share_is_above_half(env: LedgerEnv) -> None:
    with reverts(errors.LedgerInvalidShare, validatorShareBps=5001):
        env.ledger.create_task(env.task_params(validator_share_bps=5001), env.sponsor)
    task_id, _ = env.ledger.create_task(env.task_params(validator_share_bps=5000), env.sponsor)
    assert env.ledger.task(task_id).validator_share_bps == 5000


_MODE_NONE = 0
_WORD = 1 << 16 | 1 << 48 | 1 << 100 | 1 << 152 | 1 << 204  # node-level fields all 1 (smallest)


@pytest.mark.parametrize(
    ("word", "mode", "accountant"),
    [
        (3, 3, 0),  # no such mode
        (1 | 2 << 8 | 1 << 48 | 1 << 100 | 1 << 152 | 1 << 204, 1, 2),  # no such accountant
        (1 << 48, _MODE_NONE, 0),  # no mode, but a clipping bound
        (2 << 8, _MODE_NONE, 2),  # no mode, an unknown accountant
        (2 | _WORD & ~(1 << 16), 2, 0),  # node-level without a minimum of nodes
        (1 | _WORD, 1, 0),  # example-level with a minimum of nodes
        (2 | _WORD & ~(1 << 48), 2, 0),  # no clipping bound
        (2 | _WORD & ~(1 << 100), 2, 0),  # no noise
        (2 | _WORD & ~(1 << 152), 2, 0),  # no target epsilon
        (2 | _WORD & ~(1 << 204), 2, 0),  # delta 0
        (2 | (_WORD & ~(1 << 204)) | 10**15 << 204, 2, 0),  # delta 1
    ],
)
def test_createTask_reverts_when_the_privacy_policy_is_malformed(
    env: LedgerEnv, word: int, mode: int, accountant: int
) -> None:
    fields = list(env.task_params().as_tuple())
    fields[-1] = word
    call = env.ledger.contract.functions.createTask(tuple(fields))
    with reverts(errors.LedgerInvalidPrivacy, mode=mode, accountant=accountant):
        env.ledger.chain.send(call, env.sponsor)
    fields[-1] = 2 | _WORD  # the smallest well-formed node-level policy is taken as it is
    receipt = env.ledger.chain.send(
        env.ledger.contract.functions.createTask(tuple(fields)), env.sponsor
    )
    (event,) = env.events(receipt, "TaskCreated")
    assert event["params"]["privacy"] == 2 | _WORD


# ---------------------------------------------------------------- fundTask


def test_fundTask_moves_tokens_into_the_pool_and_emits(env: LedgerEnv) -> None:
    task_id = env.create_task(fund=0, bonds=False)
    before = env.token.balance_of(env.sponsor.address)
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
    env.token.approve(env.ledger.address, 4, env.nodes[0])
    with reverts(
        errors.ERC20InsufficientAllowance, spender=env.ledger.address, allowance=4, needed=5
    ):
        env.ledger.fund_task(task_id, 5, env.nodes[0])


def test_fundTask_reverts_when_the_task_is_complete_or_cancelled(env: LedgerEnv) -> None:
    task_id = env.create_task(max_rounds=1)
    env.finalize(task_id, env.open(task_id), {}, settle=True)
    with reverts(errors.LedgerTaskComplete, taskId=task_id, maxRounds=1):
        env.ledger.fund_task(task_id, TOKEN, env.sponsor)
    cancelled = env.create_task(bonds=False)
    env.ledger.cancel_task(cancelled, env.sponsor)
    with reverts(errors.LedgerTaskCancelled, taskId=cancelled):
        env.ledger.fund_task(cancelled, TOKEN, env.sponsor)


# ---------------------------------------------------------------- cancelTask


def test_cancelTask_stops_a_task_whose_aggregator_never_bonded_and_emits(env: LedgerEnv) -> None:
    task_id = env.create_task(bonds=False)
    receipt = env.ledger.cancel_task(task_id, env.sponsor)
    assert env.events(receipt, "TaskCancelled") == [
        {
            "taskId": task_id,
            "sponsor": env.sponsor.address,
            "roundsOpened": 0,
            "available": 1000 * TOKEN,
        }
    ]
    assert env.ledger.task(task_id).cancelled
    with reverts(errors.LedgerTaskCancelled, taskId=task_id):
        env.ledger.open_next_round(task_id, env.aggregator)
    with reverts(errors.LedgerTaskCancelled, taskId=task_id):
        env.ledger.join(task_id, env.nodes[0])
    with reverts(errors.LedgerTaskCancelled, taskId=task_id):
        env.ledger.cancel_task(task_id, env.sponsor)


def test_cancelTask_works_when_the_pool_or_the_nodes_cannot_carry_a_round(
    env: LedgerEnv,
) -> None:
    short = env.create_task(fund=60 * TOKEN)
    env.join(short, env.nodes[0])
    env.ledger.cancel_task(short, env.sponsor)  # 60 left, a round pays 100
    idle = env.create_task()
    env.ledger.cancel_task(idle, env.sponsor)  # no active node
    assert env.ledger.task(short).cancelled and env.ledger.task(idle).cancelled


def test_cancelTask_works_after_an_abandoned_round_or_a_slashed_aggregator(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0])
    round_ = env.open(task_id)
    env.abandonable(task_id, round_)
    env.ledger.abandon_round(task_id, round_, env.nodes[0])
    env.ledger.cancel_task(task_id, env.sponsor)
    assert env.ledger.task(task_id).cancelled


def test_cancelTask_works_once_the_task_sat_idle_for_its_grace_period(env: LedgerEnv) -> None:
    task_id = env.create_task(grace_period=1000)
    env.join(task_id, env.nodes[0])
    created = env.ledger.task(task_id).created_at
    with reverts(errors.LedgerTaskActive, taskId=task_id, cancellableAt=created + 1001):
        env.ledger.cancel_task(task_id, env.sponsor)
    round_ = env.open(task_id)
    env.commit(task_id, round_, env.nodes[0])
    env.finalize(task_id, round_, {env.nodes[0].address: TOKEN}, settle=True)
    r = env.ledger.round(task_id, round_)
    settled_at = r.finalized_at + 600
    with reverts(errors.LedgerTaskActive, taskId=task_id, cancellableAt=settled_at + 1001):
        env.ledger.cancel_task(task_id, env.sponsor)
    env.advance_to(settled_at + 1000)
    env.ledger.cancel_task(task_id, env.sponsor)
    assert env.ledger.task(task_id).cancelled


def test_cancelTask_reverts_for_others_and_while_a_round_is_in_flight(env: LedgerEnv) -> None:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0])
    with reverts(errors.LedgerNotSponsor, taskId=task_id, caller=env.aggregator.address):
        env.ledger.cancel_task(task_id, env.aggregator)
    round_ = env.open(task_id)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, OPEN, SETTLED, ABANDONED)
    ):
        env.ledger.cancel_task(task_id, env.sponsor)
    env.finalize(task_id, round_, {})
    with reverts(
        errors.LedgerUnexpectedRoundState,
        **_unexpected(task_id, round_, FINALIZED, SETTLED, ABANDONED),
    ):
        env.ledger.cancel_task(task_id, env.sponsor)


def test_cancelTask_reverts_for_a_complete_task(env: LedgerEnv) -> None:
    task_id = env.create_task(max_rounds=1)
    env.finalize(task_id, env.open(task_id), {}, settle=True)
    with reverts(errors.LedgerTaskComplete, taskId=task_id, maxRounds=1):
        env.ledger.cancel_task(task_id, env.sponsor)


# ---------------------------------------------------------------- withdrawRemainder


def test_withdrawRemainder_returns_the_unreserved_pool_after_the_last_round(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_, tree = env.run_round(task_id, {node: 40 * TOKEN})
    assert tree is not None
    for _ in range(2):
        env.finalize(task_id, env.open(task_id), {}, settle=True)  # the node sits these out
    before = env.token.balance_of(env.sponsor.address)
    receipt = env.ledger.withdraw_remainder(task_id, env.sponsor)
    assert env.events(receipt, "RemainderWithdrawn") == [
        {"taskId": task_id, "sponsor": env.sponsor.address, "amount": 960 * TOKEN}
    ]
    assert env.token.balance_of(env.sponsor.address) == before + 960 * TOKEN
    # the reserved reward is still claimable after the withdrawal
    env.ledger.claim(
        ClaimRequest(task_id, round_, 40 * TOKEN, tuple(tree.proof(node.address))), node
    )
    with reverts(errors.LedgerZeroAmount):
        env.ledger.withdraw_remainder(task_id, env.sponsor)


def test_withdrawRemainder_returns_the_pool_of_a_cancelled_task(env: LedgerEnv) -> None:
    task_id = env.create_task(fund=60 * TOKEN, bonds=False)
    env.ledger.cancel_task(task_id, env.sponsor)
    before = env.token.balance_of(env.sponsor.address)
    env.ledger.withdraw_remainder(task_id, env.sponsor)
    assert env.token.balance_of(env.sponsor.address) == before + 60 * TOKEN


def test_withdrawRemainder_reverts_for_others_and_before_completion(env: LedgerEnv) -> None:
    task_id = env.create_task()
    with reverts(errors.LedgerNotSponsor, taskId=task_id, caller=env.nodes[0].address):
        env.ledger.withdraw_remainder(task_id, env.nodes[0])
    with reverts(errors.LedgerTaskNotComplete, taskId=task_id, roundsEnded=0, maxRounds=3):
        env.ledger.withdraw_remainder(task_id, env.sponsor)


def test_withdrawRemainder_waits_for_the_last_rounds_challenge_window(env: LedgerEnv) -> None:
    task_id = env.create_task(max_rounds=1)
    round_ = env.open(task_id)
    env.finalize(task_id, round_, {})
    with reverts(errors.LedgerTaskNotComplete, taskId=task_id, roundsEnded=0, maxRounds=1):
        env.ledger.withdraw_remainder(task_id, env.sponsor)
    env.settle(task_id, round_)
    env.ledger.withdraw_remainder(task_id, env.sponsor)


# ---------------------------------------------------------------- postBond / withdrawBond


def test_postBond_locks_the_bond_of_the_aggregator_and_of_a_validator_and_emits(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task(bonds=False)
    validator = env.validators[1]
    for account, amount in ((env.aggregator, AGGREGATOR_BOND), (validator, VALIDATOR_BOND)):
        before = env.token.balance_of(account.address)
        receipt = env.ledger.post_bond(task_id, account)
        assert env.events(receipt, "BondPosted") == [
            {"taskId": task_id, "account": account.address, "amount": amount}
        ]
        assert env.token.balance_of(account.address) == before - amount
        bond = env.ledger.bond_of(task_id, account.address)
        assert (bond.posted, bond.amount, bond.slashed, bond.active) == (True, amount, False, True)
    assert env.ledger.task(task_id).funded == 1000 * TOKEN  # bonds are held apart from the pool
    assert (
        env.token.balance_of(env.ledger.address) == 1000 * TOKEN + AGGREGATOR_BOND + VALIDATOR_BOND
    )


def test_postBond_reverts_for_others_twice_and_for_a_cancelled_task(env: LedgerEnv) -> None:
    task_id = env.create_task()
    with reverts(errors.LedgerNotBondholder, taskId=task_id, account=env.nodes[0].address):
        env.ledger.post_bond(task_id, env.nodes[0])
    with reverts(errors.LedgerBondAlreadyPosted, taskId=task_id, account=env.aggregator.address):
        env.ledger.post_bond(task_id, env.aggregator)
    cancelled = env.create_task(bonds=False)
    env.ledger.cancel_task(cancelled, env.sponsor)
    with reverts(errors.LedgerTaskCancelled, taskId=cancelled):
        env.ledger.post_bond(cancelled, env.aggregator)


def test_withdrawBond_returns_the_bond_once_the_last_slash_window_closed_and_emits(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task(max_rounds=1)
    round_ = env.open(task_id)
    env.finalize(task_id, round_, {}, settle=True)
    r = env.ledger.round(task_id, round_)
    slash_end = r.finalized_at + 600 + 600
    with reverts(
        errors.LedgerBondLocked,
        taskId=task_id,
        account=env.aggregator.address,
        unlocksAt=slash_end + 1,
    ):
        env.ledger.withdraw_bond(task_id, env.aggregator)
    env.end_slash_window(task_id, round_)
    before = env.token.balance_of(env.aggregator.address)
    receipt = env.ledger.withdraw_bond(task_id, env.aggregator)
    assert env.events(receipt, "BondWithdrawn") == [
        {"taskId": task_id, "account": env.aggregator.address, "amount": AGGREGATOR_BOND}
    ]
    assert env.token.balance_of(env.aggregator.address) == before + AGGREGATOR_BOND
    with reverts(errors.LedgerZeroAmount):
        env.ledger.withdraw_bond(task_id, env.aggregator)
    env.ledger.withdraw_bond(task_id, env.validators[2])  # a validator that never signed


def test_withdrawBond_reverts_before_the_task_is_over_and_for_others(env: LedgerEnv) -> None:
    task_id = env.create_task()
    with reverts(errors.LedgerTaskNotComplete, taskId=task_id, roundsEnded=0, maxRounds=3):
        env.ledger.withdraw_bond(task_id, env.validators[0])
    with reverts(errors.LedgerNotBondholder, taskId=task_id, account=env.nodes[0].address):
        env.ledger.withdraw_bond(task_id, env.nodes[0])
    unbonded = env.create_task(bonds=False)
    env.ledger.cancel_task(unbonded, env.sponsor)
    with reverts(errors.LedgerBondNotPosted, taskId=unbonded, account=env.validators[0].address):
        env.ledger.withdraw_bond(unbonded, env.validators[0])


def test_withdrawBond_waits_for_an_earlier_rounds_slash_window_after_an_abandoned_one(
    env: LedgerEnv,
) -> None:
    """Round 1 settles with a long slash window; round 2 is abandoned and the task cancelled
    long before that window closes: the bonds stay slashable for round 1 until it does."""
    task_id = env.create_task(
        submission_window=60, reveal_window=60, grace_period=100, slash_window=100_000
    )
    node = env.nodes[0]
    env.join(task_id, node)
    first = env.open(task_id)
    env.commit(task_id, first, node)
    env.finalize(task_id, first, {node.address: TOKEN}, settle=True)
    second = env.open(task_id)
    env.abandonable(task_id, second)
    env.ledger.abandon_round(task_id, second, env.nodes[1])
    env.ledger.cancel_task(task_id, env.sponsor)
    slash_end = env.ledger.round(task_id, first).finalized_at + 600 + 100_000
    with reverts(
        errors.LedgerBondLocked,
        taskId=task_id,
        account=env.validators[0].address,
        unlocksAt=slash_end + 1,
    ):
        env.ledger.withdraw_bond(task_id, env.validators[0])
    env.advance_to(slash_end)
    env.ledger.withdraw_bond(task_id, env.validators[0])


# ---------------------------------------------------------------- join / leave / withdrawStake


def test_join_takes_the_stake_and_emits(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    before = env.token.balance_of(node.address)
    receipt = env.ledger.join(task_id, node)
    assert env.events(receipt, "NodeJoined") == [
        {"taskId": task_id, "node": node.address, "stake": 10 * TOKEN, "joinedRound": 0}
    ]
    assert env.token.balance_of(node.address) == before - 10 * TOKEN
    member = env.ledger.member(task_id, node.address)
    assert (member.joined, member.leaving, member.stake, member.joined_round) == (
        True,
        False,
        10 * TOKEN,
        0,
    )
    assert env.ledger.task(task_id).active_nodes == 1


def test_join_records_the_rounds_opened(env: LedgerEnv) -> None:
    task_id = env.create_task()
    env.open(task_id)
    env.join(task_id, env.nodes[0])
    assert env.ledger.member(task_id, env.nodes[0].address).joined_round == 1


def test_join_reverts_when_already_joined_or_task_unknown(env: LedgerEnv) -> None:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0])
    with reverts(errors.LedgerAlreadyJoined, taskId=task_id, node=env.nodes[0].address):
        env.ledger.join(task_id, env.nodes[0])
    with reverts(errors.LedgerUnknownTask, taskId=0):
        env.ledger.join(0, env.nodes[0])


def test_join_reverts_once_every_round_was_opened(env: LedgerEnv) -> None:
    task_id = env.create_task(max_rounds=1)
    env.open(task_id)
    with reverts(errors.LedgerTaskComplete, taskId=task_id, maxRounds=1):
        env.ledger.join(task_id, env.nodes[0])


def test_leave_starts_unbonding_and_emits(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    before = env.token.balance_of(node.address)
    receipt = env.ledger.leave(task_id, node)
    assert env.events(receipt, "NodeLeaving") == [
        {"taskId": task_id, "node": node.address, "stake": 10 * TOKEN, "lastCommitRound": 0}
    ]
    assert env.token.balance_of(node.address) == before  # nothing paid yet
    member = env.ledger.member(task_id, node.address)
    assert (member.joined, member.leaving, member.stake) == (True, True, 10 * TOKEN)
    assert env.ledger.task(task_id).active_nodes == 0


def test_leave_reverts_when_not_joined_or_already_leaving(env: LedgerEnv) -> None:
    task_id = env.create_task()
    with reverts(errors.LedgerNotJoined, taskId=task_id, node=env.nodes[0].address):
        env.ledger.leave(task_id, env.nodes[0])
    env.join(task_id, env.nodes[0])
    env.ledger.leave(task_id, env.nodes[0])
    with reverts(errors.LedgerMemberLeaving, taskId=task_id, node=env.nodes[0].address):
        env.ledger.leave(task_id, env.nodes[0])


def test_leave_of_the_last_uncommitted_eligible_node_ends_the_commit_phase(env: LedgerEnv) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = env.open(task_id)
    env.submit(task_id, round_, a)
    assert env.ledger.round_state(task_id, round_) is OPEN
    env.ledger.leave(task_id, b)  # never committed: the round stops waiting for it
    r = env.ledger.round(task_id, round_)
    assert (r.eligible, r.commits, r.all_committed) == (1, 1, True)
    assert env.ledger.round_state(task_id, round_) is REVEALING


def test_leave_of_a_node_that_joined_during_the_round_changes_nothing_of_it(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    a, late = env.nodes[0], env.nodes[1]
    env.join(task_id, a)
    round_ = env.open(task_id)
    env.join(task_id, late)
    env.ledger.leave(task_id, late)
    assert env.ledger.round(task_id, round_).eligible == 1
    assert env.ledger.round_state(task_id, round_) is OPEN


def test_withdrawStake_pays_a_leaving_node_that_never_committed_and_emits(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    env.ledger.leave(task_id, node)
    before = env.token.balance_of(node.address)
    receipt = env.ledger.withdraw_stake(task_id, node)
    assert env.events(receipt, "NodeLeft") == [
        {"taskId": task_id, "node": node.address, "stakeReturned": 10 * TOKEN}
    ]
    assert env.token.balance_of(node.address) == before + 10 * TOKEN
    assert not env.ledger.member(task_id, node.address).joined
    env.join(task_id, node)  # and may join again
    assert env.ledger.member(task_id, node.address).stake == 10 * TOKEN


def test_withdrawStake_reverts_unless_leaving(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    with reverts(errors.LedgerNotJoined, taskId=task_id, node=node.address):
        env.ledger.withdraw_stake(task_id, node)
    env.join(task_id, node)
    with reverts(errors.LedgerNotLeaving, taskId=task_id, node=node.address):
        env.ledger.withdraw_stake(task_id, node)


def test_withdrawStake_waits_until_the_last_committed_round_can_no_longer_slash(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = env.open(task_id)
    env.submit(task_id, round_, node)
    env.ledger.leave(task_id, node)  # committed, not revealed (REVEALING)
    with reverts(errors.LedgerStakeLocked, taskId=task_id, node=node.address, unlocksAt=0):
        env.ledger.withdraw_stake(task_id, node)
    env.finalize(task_id, round_, {node.address: 50 * TOKEN})
    slash_end = env.ledger.round(task_id, round_).finalized_at + 600 + 600
    with reverts(
        errors.LedgerStakeLocked, taskId=task_id, node=node.address, unlocksAt=slash_end + 1
    ):
        env.ledger.withdraw_stake(task_id, node)  # FINALIZED
    env.settle(task_id, round_)
    with reverts(
        errors.LedgerStakeLocked, taskId=task_id, node=node.address, unlocksAt=slash_end + 1
    ):
        env.ledger.withdraw_stake(task_id, node)  # SETTLED, slash window open
    env.end_slash_window(task_id, round_)
    env.ledger.withdraw_stake(task_id, node)
    assert not env.ledger.member(task_id, node.address).joined


def test_withdrawStake_keeps_an_earlier_rounds_slash_window_after_an_abandoned_round(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task(
        submission_window=60, reveal_window=60, grace_period=100, slash_window=100_000
    )
    node = env.nodes[0]
    env.join(task_id, node)
    first = env.open(task_id)
    env.commit(task_id, first, node)
    env.finalize(task_id, first, {node.address: TOKEN}, settle=True)
    second = env.open(task_id)
    env.commit(task_id, second, node)
    env.ledger.leave(task_id, node)
    env.abandonable(task_id, second)
    env.ledger.abandon_round(task_id, second, env.nodes[1])
    slash_end = env.ledger.round(task_id, first).finalized_at + 600 + 100_000
    assert env.ledger.member(task_id, node.address).slashable_until == slash_end
    with reverts(
        errors.LedgerStakeLocked, taskId=task_id, node=node.address, unlocksAt=slash_end + 1
    ):
        env.ledger.withdraw_stake(task_id, node)
    env.advance_to(slash_end)
    env.ledger.withdraw_stake(task_id, node)


# ---------------------------------------------------------------- openRound


def test_openRound_starts_from_the_current_global_adapter_and_emits(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=120)
    env.join(task_id, env.nodes[0], env.nodes[1])
    round_, receipt = env.ledger.open_next_round(task_id, env.aggregator)
    block_time = _block_time(env, receipt)
    assert env.events(receipt, "RoundOpened") == [
        {
            "taskId": task_id,
            "round": 1,
            "startDigest": digest_of("global-0"),
            "deadline": block_time + 120,
            "revealDeadline": block_time + 120 + 600,
            "eligible": 2,
        }
    ]
    r = env.ledger.round(task_id, round_)
    assert (r.start_digest, r.deadline, r.reveal_deadline, r.eligible, r.finalized) == (
        digest_of("global-0"),
        block_time + 120,
        block_time + 720,
        2,
        False,
    )
    assert env.ledger.open_round(task_id) == 1


def test_openRound_reverts_for_anyone_but_the_tasks_aggregator(env: LedgerEnv) -> None:
    task_id = env.create_task()
    for caller in (env.nodes[0], env.sponsor, env.validators[0]):
        with reverts(errors.LedgerNotAggregator, taskId=task_id, caller=caller.address):
            env.ledger.open_next_round(task_id, caller)


def test_openRound_reverts_until_the_aggregator_bonded(env: LedgerEnv) -> None:
    task_id = env.create_task(bonds=False)
    with reverts(errors.LedgerBondNotPosted, taskId=task_id, account=env.aggregator.address):
        env.open(task_id)
    env.post_bonds(task_id, env.aggregator)
    assert env.open(task_id) == 1


def test_openRound_reverts_until_the_last_round_is_settled_or_abandoned(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=60)
    env.join(task_id, env.nodes[0])
    env.open(task_id)

    def expect(state: RoundState) -> None:
        with reverts(
            errors.LedgerUnexpectedRoundState, **_unexpected(task_id, 1, state, SETTLED, ABANDONED)
        ):
            env.open(task_id)

    expect(OPEN)
    env.submit(task_id, 1, env.nodes[0])
    expect(REVEALING)
    env.reveal(task_id, 1, env.nodes[0])
    expect(CLOSED)
    env.finalize(task_id, 1, {env.nodes[0].address: TOKEN})
    expect(FINALIZED)
    env.settle(task_id, 1)
    assert env.open(task_id) == 2
    env.abandonable(task_id, 2)
    env.ledger.abandon_round(task_id, 2, env.nodes[0])
    assert env.open(task_id) == 3


def test_openRound_reverts_when_the_pool_cannot_pay_a_round(env: LedgerEnv) -> None:
    task_id = env.create_task(fund=60 * TOKEN)
    with reverts(
        errors.LedgerInsufficientPool, taskId=task_id, available=60 * TOKEN, required=100 * TOKEN
    ):
        env.open(task_id)


def test_openRound_reverts_after_the_last_round(env: LedgerEnv) -> None:
    task_id = env.create_task(max_rounds=1)
    env.finalize(task_id, env.open(task_id), {}, settle=True)
    with reverts(errors.LedgerTaskComplete, taskId=task_id, maxRounds=1):
        env.open(task_id)


# ---------------------------------------------------------------- commitUpdate


def test_commitUpdate_stores_the_commitment_and_publishes_nothing_else(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node, env.nodes[1])
    round_ = env.open(task_id)
    salt = digest_of("salt")
    commitment = commitment_hash(task_id, round_, node.address, digest_of("u1"), 42, salt)
    receipt = env.ledger.commit_update(task_id, round_, commitment, node)
    assert env.events(receipt, "UpdateCommitted") == [
        {"taskId": task_id, "round": round_, "node": node.address, "commitment": commitment}
    ]
    assert env.events(receipt, "UpdateRevealed") == []
    assert env.ledger.submission(task_id, round_, node.address) == Submission(
        commitment, ZERO, 0, _block_time(env, receipt), 0
    )
    r = env.ledger.round(task_id, round_)
    assert (r.commits, r.reveals, r.all_committed) == (1, 0, False)
    assert env.ledger.member(task_id, node.address).last_commit_round == round_
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
    round_ = env.open(task_id)
    with reverts(errors.LedgerNotJoined, taskId=task_id, node=env.nodes[0].address):
        env.submit(task_id, round_, env.nodes[0])


def test_commitUpdate_reverts_for_a_leaving_node(env: LedgerEnv) -> None:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0], env.nodes[1])
    round_ = env.open(task_id)
    env.ledger.leave(task_id, env.nodes[0])
    with reverts(errors.LedgerMemberLeaving, taskId=task_id, node=env.nodes[0].address):
        env.submit(task_id, round_, env.nodes[0])


def test_commitUpdate_reverts_for_a_node_that_joined_while_the_round_was_open(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0])
    round_ = env.open(task_id)
    late = env.nodes[1]
    env.join(task_id, late)
    with reverts(
        errors.LedgerJoinedAfterOpen, taskId=task_id, round=round_, node=late.address, joinedRound=1
    ):
        env.submit(task_id, round_, late)


def test_commitUpdate_reverts_when_the_round_is_not_opened(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, 1, UNOPENED, OPEN)):
        env.submit(task_id, 1, node)
    round_ = env.open(task_id)
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
    round_ = env.open(task_id)
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
    round_ = env.open(task_id)
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
    round_ = env.open(task_id)
    env.submit(task_id, round_, node, "first")
    with reverts(errors.LedgerAlreadyCommitted, taskId=task_id, round=round_, node=node.address):
        env.submit(task_id, round_, node, "second")


def test_commitUpdate_reverts_on_a_zero_commitment(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = env.open(task_id)
    with reverts(errors.LedgerZeroCommitment):
        env.ledger.commit_update(task_id, round_, ZERO, node)


def test_commitUpdate_reverts_when_the_stake_was_slashed_below_minimum(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = env.open(task_id)
    env.submit(task_id, round_, node)
    slash = SlashEntry(node.address, 4 * TOKEN, 3, "bafy-evidence")
    env.finalize(task_id, round_, {}, rejected=1, slashes=[slash], settle=True)
    env.ledger.execute_slash(
        task_id, round_, slash, SlashTree(task_id, round_, [slash]).proof(slash), env.nodes[5]
    )
    round2 = env.open(task_id)
    with reverts(
        errors.LedgerStakeTooLow,
        taskId=task_id,
        node=node.address,
        stake=6 * TOKEN,
        minStake=10 * TOKEN,
    ):
        env.submit(task_id, round2, node)


def test_commitUpdate_the_last_eligible_commitment_ends_the_commit_phase(env: LedgerEnv) -> None:
    """Every eligible node committed: the commit phase ends before its deadline, and a node
    that joins afterwards is no eligible committer of the round."""
    task_id = env.create_task()
    a, b, late = env.nodes[0], env.nodes[1], env.nodes[2]
    env.join(task_id, a, b)
    round_ = env.open(task_id)
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
    round_ = env.open(task_id)
    c = env.commit(task_id, round_, node, "u1", examples=42)
    assert env.ledger.round_state(task_id, round_) is REVEALING  # every eligible node committed
    receipt = env.reveal(task_id, round_, node)
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
        _block_time(env, receipt),
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
    round_ = env.open(task_id)
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
    round_ = env.open(task_id)
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
    round_ = env.open(task_id)
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
    round_ = env.open(task_id)
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
    round_ = env.open(task_id)
    digest = env.submit(task_id, round_, a, "same-bytes")
    env.submit(task_id, round_, b, "same-bytes")
    env.reveal(task_id, round_, a)
    with reverts(errors.LedgerDigestReused, taskId=task_id, digest=digest):
        env.reveal(task_id, round_, b)
    env.pending.clear()
    env.chain.advance_time(1300)
    env.finalize(task_id, round_, {a.address: TOKEN}, settle=True)
    round2 = env.open(task_id)
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
        round_ = env.open(task_id)
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
    round_ = env.open(task_id)
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
    round_ = env.open(task_id)
    env.commit(task_id, round_, node, examples=500)
    env.reveal(task_id, round_, node)
    assert env.ledger.submission(task_id, round_, node.address).num_examples == 500


# ---------------------------------------------------------------- postScores


def test_postScores_records_the_sheet_sets_its_bit_and_emits(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    validator = env.validators[2]
    receipt = env.ledger.post_scores(task_id, round_, digest_of("sheet"), "bafy-sheet", validator)
    assert env.events(receipt, "ScoresPosted") == [
        {
            "taskId": task_id,
            "round": round_,
            "validator": validator.address,
            "scoresDigest": digest_of("sheet"),
            "scoresCid": "bafy-sheet",
        }
    ]
    assert env.ledger.scores_of(task_id, round_, validator.address) == digest_of("sheet")
    assert env.ledger.scores_of(task_id, round_, env.validators[0].address) == ZERO
    assert env.ledger.round(task_id, round_).scores_bitmap == 0b100


def test_postScores_reverts_for_non_validators_unbonded_ones_and_a_second_sheet(
    env: LedgerEnv,
) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    with reverts(errors.LedgerNotValidator, taskId=task_id, account=env.aggregator.address):
        env.ledger.post_scores(task_id, round_, digest_of("s"), "bafy-s", env.aggregator)
    env.ledger.post_scores(task_id, round_, digest_of("s"), "bafy-s", env.validators[0])
    with reverts(
        errors.LedgerScoresAlreadyPosted,
        taskId=task_id,
        round=round_,
        validator=env.validators[0].address,
    ):
        env.ledger.post_scores(task_id, round_, digest_of("t"), "bafy-t", env.validators[0])
    unbonded = env.create_task(bonds=False)
    with reverts(errors.LedgerBondNotPosted, taskId=unbonded, account=env.validators[0].address):
        env.ledger.post_scores(unbonded, 1, digest_of("s"), "bafy-s", env.validators[0])


def test_postScores_reverts_outside_closed_and_on_empty_values(env: LedgerEnv) -> None:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0])
    round_ = env.open(task_id)
    validator = env.validators[0]
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, OPEN, CLOSED)):
        env.ledger.post_scores(task_id, round_, digest_of("s"), "bafy-s", validator)
    env.end_commit_phase(task_id, round_)
    with reverts(errors.LedgerZeroDigest):
        env.ledger.post_scores(task_id, round_, ZERO, "bafy-s", validator)
    with reverts(errors.LedgerEmptyCid):
        env.ledger.post_scores(task_id, round_, digest_of("s"), "", validator)


# ---------------------------------------------------------------- proposeResult


def test_proposeResult_records_the_proposal_and_emits_the_whole_result(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    env.ledger.post_scores(task_id, round_, digest_of("s"), "bafy-s", env.validators[1])
    result, _ = env.result(task_id, round_, {env.nodes[0].address: 30 * TOKEN})
    assert result.scores_bitmap == 0b10
    fn = env.ledger.contract.functions.proposeResult(task_id, round_, result.as_tuple())
    receipt = env.chain.send(fn, env.aggregator)
    result_hash = env.ledger.result_hash(task_id, round_, result)
    (event,) = env.events(receipt, "ResultProposed")
    assert event == {
        "taskId": task_id,
        "round": round_,
        "resultHash": result_hash,
        "proposer": env.aggregator.address,
        "epoch": 0,
        "result": _result_args(result),
    }
    proposal = env.ledger.proposal(task_id, round_, result_hash)
    assert (
        proposal.proposer,
        proposal.epoch,
        proposal.scores_bitmap,
        proposal.attesters,
        proposal.attestations,
        proposal.slashed,
        proposal.exists,
    ) == (env.aggregator.address, 0, 0b10, 0, 0, False, True)
    assert env.ledger.round_state(task_id, round_) is CLOSED  # nothing finalized yet
    with reverts(
        errors.LedgerAlreadyProposed, taskId=task_id, round=round_, resultHash=result_hash
    ):
        env.ledger.propose_result(task_id, round_, result, env.validators[0])


def test_proposeResult_may_come_from_a_validator(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    result, _ = env.result(task_id, round_, {}, rejected=1)
    result_hash = env.ledger.propose_result(task_id, round_, result, env.validators[2])
    assert result_hash == env.ledger.result_hash(task_id, round_, result)
    assert env.ledger.proposal(task_id, round_, result_hash).proposer == env.validators[2].address


def test_proposeResult_reverts_for_nodes_sponsors_and_slashed_or_unbonded_proposers(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task(bonds=False)
    env.post_bonds(task_id, env.aggregator)  # the validators never bond
    env.join(task_id, env.nodes[0])
    round_ = env.open(task_id)
    env.commit(task_id, round_, env.nodes[0])
    env.reveal_all(task_id, round_)
    result, _ = env.result(task_id, round_, {}, rejected=1)
    for caller in (env.nodes[0], env.sponsor):
        with reverts(errors.LedgerNotProposer, taskId=task_id, caller=caller.address):
            env.ledger.propose_result(task_id, round_, result, caller)
    with reverts(errors.LedgerBondNotPosted, taskId=task_id, account=env.validators[0].address):
        env.ledger.propose_result(task_id, round_, result, env.validators[0])


def test_proposeResult_reverts_on_counts_cids_digest_caps_and_sheets(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0], env.nodes[1])
    a = env.nodes[0].address

    def propose(**fields: Any) -> None:
        base, _ = env.result(task_id, round_, {a: TOKEN}, rejected=1)
        values = {**base.__dict__, **fields}
        env.ledger.propose_result(task_id, round_, Finalization(**values), env.aggregator)

    with reverts(
        errors.LedgerCountMismatch, taskId=task_id, round=round_, accepted=1, rejected=0, reveals=2
    ):
        propose(rejected=0)
    with reverts(errors.LedgerEmptyCid):
        propose(global_cid="")
    with reverts(errors.LedgerEmptyCid):
        propose(report_cid="")
    with reverts(errors.LedgerZeroDigest):
        propose(global_digest=ZERO)
    with reverts(
        errors.LedgerRewardAboveRoundCap,
        taskId=task_id,
        round=round_,
        rewardTotal=101 * TOKEN,
        rewardPerRound=100 * TOKEN,
    ):
        propose(reward_total=101 * TOKEN)
    with reverts(errors.LedgerRewardWithoutAccepted, taskId=task_id, round=round_, rewardTotal=1):
        propose(accepted=0, rejected=2, reward_total=1)
    with reverts(
        errors.LedgerScoresMismatch,
        taskId=task_id,
        round=round_,
        scoresBitmap=1,
        roundScoresBitmap=0,
    ):
        propose(scores_bitmap=1)


def test_proposeResult_reverts_outside_closed(env: LedgerEnv) -> None:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0])
    round_ = env.open(task_id)
    result, _ = env.result(task_id, round_, {})
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, OPEN, CLOSED)):
        env.ledger.propose_result(task_id, round_, result, env.aggregator)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_ + 1, UNOPENED, CLOSED)
    ):
        env.ledger.propose_result(task_id, round_ + 1, result, env.aggregator)


# ---------------------------------------------------------------- attest


def test_attest_relayed_by_anyone_counts_the_signature_and_emits_it(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    result, _ = env.result(task_id, round_, {env.nodes[0].address: TOKEN})
    result_hash = env.ledger.propose_result(task_id, round_, result, env.aggregator)
    (attestation,) = env.sign(task_id, round_, result, env.validators[1])
    receipt = env.ledger.attest(task_id, round_, result_hash, attestation, env.nodes[6])
    assert env.events(receipt, "Attested") == [
        {
            "taskId": task_id,
            "round": round_,
            "resultHash": result_hash,
            "validator": env.validators[1].address,
            "signature": attestation.signature,
            "attestations": 1,
        }
    ]
    assert env.events(receipt, "RoundFinalized") == []
    proposal = env.ledger.proposal(task_id, round_, result_hash)
    assert (proposal.attesters, proposal.attestations) == (0b10, 1)
    assert proposal.attested_by(1) and not proposal.attested_by(0)
    assert env.ledger.round_state(task_id, round_) is CLOSED


def test_attest_reaching_the_quorum_finalizes_the_round_and_emits(env: LedgerEnv) -> None:
    node = env.nodes[0]
    task_id, round_ = _closed_round(env, node)
    result, _ = env.result(task_id, round_, {node.address: 30 * TOKEN})
    result_hash = env.ledger.propose_result(task_id, round_, result, env.aggregator)
    first, second = env.sign(task_id, round_, result, env.validators[2], env.validators[0])
    env.ledger.attest(task_id, round_, result_hash, first, env.nodes[6])
    receipt = env.ledger.attest(task_id, round_, result_hash, second, env.nodes[7])
    assert env.events(receipt, "RoundFinalized") == [
        {
            "taskId": task_id,
            "round": round_,
            "resultHash": result_hash,
            "proposer": env.aggregator.address,
            "result": _result_args(result),
            "signers": 0b101,
            "epoch": 0,
        }
    ]
    r = env.ledger.round(task_id, round_)
    assert (r.result_hash, r.signers, r.reward_total, r.finalized_at) == (
        result_hash,
        0b101,
        30 * TOKEN,
        _block_time(env, receipt),
    )
    assert env.ledger.round_state(task_id, round_) is FINALIZED
    assert env.ledger.task(task_id).reserved == 30 * TOKEN


def test_attest_reverts_for_unknown_proposals_non_validators_and_a_second_signature(
    env: LedgerEnv,
) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    result, _ = env.result(task_id, round_, {}, rejected=1)
    result_hash = env.ledger.result_hash(task_id, round_, result)
    (attestation,) = env.sign(task_id, round_, result, env.validators[0])
    with reverts(
        errors.LedgerUnknownProposal, taskId=task_id, round=round_, resultHash=result_hash
    ):
        env.ledger.attest(task_id, round_, result_hash, attestation, env.nodes[6])
    env.ledger.propose_result(task_id, round_, result, env.aggregator)
    (forged,) = env.sign(task_id, round_, result, env.nodes[3])
    with reverts(errors.LedgerNotValidator, taskId=task_id, account=env.nodes[3].address):
        env.ledger.attest(task_id, round_, result_hash, forged, env.nodes[6])
    env.ledger.attest(task_id, round_, result_hash, attestation, env.nodes[6])
    with reverts(
        errors.LedgerAlreadyAttested,
        taskId=task_id,
        round=round_,
        resultHash=result_hash,
        validator=env.validators[0].address,
    ):
        env.ledger.attest(task_id, round_, result_hash, attestation, env.nodes[6])


def test_attest_reverts_on_a_signature_by_another_key(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    result, _ = env.result(task_id, round_, {}, rejected=1)
    result_hash = env.ledger.propose_result(task_id, round_, result, env.aggregator)
    (by_node,) = env.sign(task_id, round_, result, env.nodes[3])
    claimed = type(by_node)(env.validators[0].address, by_node.signature)
    with reverts(
        errors.LedgerInvalidSignature,
        taskId=task_id,
        round=round_,
        validator=env.validators[0].address,
        recovered=env.nodes[3].address,
    ):
        env.ledger.attest(task_id, round_, result_hash, claimed, env.nodes[6])
    malformed = type(by_node)(env.validators[0].address, b"\x01" * 64)
    with reverts(
        errors.LedgerInvalidSignature,
        taskId=task_id,
        round=round_,
        validator=env.validators[0].address,
        recovered=ZERO_ADDRESS,
    ):
        env.ledger.attest(task_id, round_, result_hash, malformed, env.nodes[6])


def test_attest_reverts_once_a_new_sheet_makes_the_proposal_stale(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    result, _ = env.result(task_id, round_, {}, rejected=1)
    result_hash = env.ledger.propose_result(task_id, round_, result, env.aggregator)
    env.ledger.post_scores(task_id, round_, digest_of("late"), "bafy-late", env.validators[2])
    (attestation,) = env.sign(task_id, round_, result, env.validators[0])
    with reverts(
        errors.LedgerScoresMismatch,
        taskId=task_id,
        round=round_,
        scoresBitmap=0,
        roundScoresBitmap=0b100,
    ):
        env.ledger.attest(task_id, round_, result_hash, attestation, env.nodes[6])


# ---------------------------------------------------------------- finalizeRound


def test_finalizeRound_records_the_result_and_emits_every_field(env: LedgerEnv) -> None:
    a, b = env.nodes[0], env.nodes[1]
    task_id, round_ = _closed_round(env, a, b)
    env.ledger.post_scores(task_id, round_, digest_of("s0"), "bafy-s0", env.validators[0])
    env.ledger.post_scores(task_id, round_, digest_of("s1"), "bafy-s1", env.validators[1])
    tree = RewardTree(task_id, round_, [RewardEntry(a.address, 60 * TOKEN)])
    slash = SlashEntry(b.address, TOKEN, 4, "bafy-report")
    result = Finalization(
        "bafy-g1",
        digest_of("g1"),
        "bafy-r1",
        1,
        1,
        tree.root,
        60 * TOKEN,
        SlashTree(task_id, round_, [slash]).root,
        0b11,
    )
    attestations = env.sign(task_id, round_, result, env.validators[0], env.validators[1])
    receipt = env.ledger.finalize_round(task_id, round_, result, attestations, env.aggregator)
    result_hash = env.ledger.result_hash(task_id, round_, result)
    assert env.events(receipt, "ResultProposed") == [
        {
            "taskId": task_id,
            "round": round_,
            "resultHash": result_hash,
            "proposer": env.aggregator.address,
            "epoch": 0,
            "result": _result_args(result),
        }
    ]
    assert env.events(receipt, "Attested") == [
        {
            "taskId": task_id,
            "round": round_,
            "resultHash": result_hash,
            "validator": att.validator,
            "signature": att.signature,
            "attestations": i + 1,
        }
        for i, att in enumerate(attestations)
    ]
    assert env.events(receipt, "RoundFinalized") == [
        {
            "taskId": task_id,
            "round": round_,
            "resultHash": result_hash,
            "proposer": env.aggregator.address,
            "result": _result_args(result),
            "signers": 0b11,
            "epoch": 0,
        }
    ]
    r = env.ledger.round(task_id, round_)
    assert (
        r.finalized,
        r.result_digest,
        r.reward_root,
        r.accepted,
        r.rejected,
        r.slash_root,
        r.result_hash,
        r.signers,
    ) == (True, digest_of("g1"), tree.root, 1, 1, result.slash_root, result_hash, 0b11)
    task = env.ledger.task(task_id)
    assert (task.global_digest, task.reserved) == (digest_of("g1"), 60 * TOKEN)
    assert env.ledger.round(task_id, round_).start_digest == digest_of("global-0")
    assert env.ledger.open_round(task_id) == 0
    assert env.ledger.round_state(task_id, round_) is FINALIZED


def test_finalizeRound_completes_a_proposal_already_partly_attested(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    result, _ = env.result(task_id, round_, {}, rejected=1)
    result_hash = env.ledger.propose_result(task_id, round_, result, env.validators[1])
    first, second = env.sign(task_id, round_, result, env.validators[1], env.validators[2])
    env.ledger.attest(task_id, round_, result_hash, first, env.nodes[6])
    receipt = env.ledger.finalize_round(task_id, round_, result, [second], env.nodes[6])
    assert env.events(receipt, "ResultProposed") == []
    (event,) = env.events(receipt, "RoundFinalized")
    assert (event["proposer"], event["signers"]) == (env.validators[1].address, 0b110)


def test_finalizeRound_reverts_without_a_quorum_of_distinct_valid_signatures(
    env: LedgerEnv,
) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    result, _ = env.result(task_id, round_, {}, rejected=1)
    result_hash = env.ledger.result_hash(task_id, round_, result)
    v0, v1, _ = env.validators
    (one,) = env.sign(task_id, round_, result, v0)
    with reverts(
        errors.LedgerQuorumNotReached, taskId=task_id, round=round_, attestations=1, quorum=2
    ):
        env.ledger.finalize_round(task_id, round_, result, [one], env.aggregator)
    with reverts(
        errors.LedgerAlreadyAttested,
        taskId=task_id,
        round=round_,
        resultHash=result_hash,
        validator=v0.address,
    ):
        env.ledger.finalize_round(task_id, round_, result, [one, one], env.aggregator)
    (outsider,) = env.sign(task_id, round_, result, env.nodes[4])
    with reverts(errors.LedgerNotValidator, taskId=task_id, account=env.nodes[4].address):
        env.ledger.finalize_round(task_id, round_, result, [one, outsider], env.aggregator)
    (by_v0_for_v1,) = env.sign(task_id, round_, result, v0)
    lying = type(one)(v1.address, by_v0_for_v1.signature)
    with reverts(
        errors.LedgerInvalidSignature,
        taskId=task_id,
        round=round_,
        validator=v1.address,
        recovered=v0.address,
    ):
        env.ledger.finalize_round(task_id, round_, result, [one, lying], env.aggregator)
    assert not env.ledger.proposal(task_id, round_, result_hash).exists


def test_finalizeRound_reverts_the_second_time_and_before_closed(env: LedgerEnv) -> None:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0], env.nodes[1])
    round_ = env.open(task_id)
    env.submit(task_id, round_, env.nodes[0])
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, OPEN, CLOSED)):
        env.finalize(task_id, round_, {env.nodes[0].address: TOKEN}, reveal=False)
    env.submit(task_id, round_, env.nodes[1])
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, REVEALING, CLOSED)
    ):
        env.finalize(task_id, round_, {env.nodes[0].address: TOKEN}, reveal=False)
    env.finalize(task_id, round_, {env.nodes[0].address: TOKEN}, rejected=1)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, FINALIZED, CLOSED)
    ):
        env.finalize(task_id, round_, {})
    env.settle(task_id, round_)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, SETTLED, CLOSED)
    ):
        env.finalize(task_id, round_, {})


def test_finalizeRound_reverts_for_a_round_never_opened(env: LedgerEnv) -> None:
    task_id = env.create_task()
    result = Finalization("bafy", digest_of("g"), "bafy-r", 0, 0, ZERO, 0)
    for round_ in (0, 1):
        with reverts(
            errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, UNOPENED, CLOSED)
        ):
            env.ledger.finalize_round(task_id, round_, result, [], env.aggregator)


def test_finalizeRound_after_the_window_pays_only_those_who_submitted(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=30)
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = env.open(task_id)
    env.submit(task_id, round_, a)
    env.chain.advance_time(60)
    env.reveal(task_id, round_, a)
    assert env.ledger.round_state(task_id, round_) is CLOSED
    with reverts(
        errors.LedgerCountMismatch, taskId=task_id, round=round_, accepted=2, rejected=0, reveals=1
    ):
        env.finalize(task_id, round_, {a.address: TOKEN, b.address: TOKEN})
    env.finalize(task_id, round_, {a.address: TOKEN})
    assert env.ledger.round(task_id, round_).accepted == 1


# ---------------------------------------------------------------- challengeReward


def _paying_an_outsider(env: LedgerEnv) -> tuple[int, int, RewardTree, bytes]:
    """A finalized round whose table pays the aggregator, who submitted nothing; the
    aggregator proposed it and validators 0 and 1 signed it."""
    node = env.nodes[0]
    task_id, round_ = _closed_round(env, node)
    rewards = {node.address: 10 * TOKEN, env.aggregator.address: 80 * TOKEN}
    result, tree = env.result(task_id, round_, rewards, accepted=1)
    assert tree is not None
    env.ledger.finalize_round(
        task_id, round_, result, env.sign(task_id, round_, result), env.aggregator
    )
    return task_id, round_, tree, env.ledger.result_hash(task_id, round_, result)


def test_challengeReward_voids_the_round_and_slashes_the_proposer_and_signers(
    env: LedgerEnv,
) -> None:
    task_id, round_, tree, result_hash = _paying_an_outsider(env)
    challenger = env.nodes[5]
    before = env.ledger.task(task_id)
    receipt = env.ledger.challenge_reward(
        task_id,
        round_,
        env.aggregator.address,
        80 * TOKEN,
        tree.proof(env.aggregator.address),
        challenger,
    )
    assert env.events(receipt, "RoundVoided") == [
        {
            "taskId": task_id,
            "round": round_,
            "resultHash": result_hash,
            "challenger": challenger.address,
            "account": env.aggregator.address,
            "amount": 80 * TOKEN,
            "epoch": 1,
        }
    ]
    assert env.events(receipt, "BondSlashed") == [
        {
            "taskId": task_id,
            "round": round_,
            "account": account,
            "amount": amount,
            "reason": BondSlashReason.REWARD_CHALLENGED,
        }
        for account, amount in (
            (env.aggregator.address, AGGREGATOR_BOND),
            (env.validators[0].address, VALIDATOR_BOND),
            (env.validators[1].address, VALIDATOR_BOND),
        )
    ]
    after = env.ledger.task(task_id)
    assert after.reserved == before.reserved - 90 * TOKEN
    assert after.funded == before.funded + AGGREGATOR_BOND + 2 * VALIDATOR_BOND
    assert after.global_digest == digest_of("global-0")
    r = env.ledger.round(task_id, round_)
    assert (r.epoch, r.finalized_at, r.result_hash, r.reward_total, r.signers) == (
        1,
        0,
        ZERO,
        0,
        0,
    )
    assert r.voided_at == _block_time(env, receipt)
    assert env.ledger.round_state(task_id, round_) is CLOSED
    assert env.ledger.bond_of(task_id, env.aggregator.address).slashed
    assert env.ledger.proposal(task_id, round_, result_hash).slashed
    assert not env.ledger.bond_of(task_id, env.validators[2].address).slashed


def test_challengeReward_reverts_for_a_justified_reward_a_bad_proof_or_a_settled_round(
    env: LedgerEnv,
) -> None:
    task_id, round_, tree, _ = _paying_an_outsider(env)
    node = env.nodes[0]
    with reverts(errors.LedgerRewardJustified, taskId=task_id, round=round_, account=node.address):
        env.ledger.challenge_reward(
            task_id, round_, node.address, 10 * TOKEN, tree.proof(node.address), env.nodes[5]
        )
    with reverts(
        errors.LedgerInvalidProof,
        taskId=task_id,
        round=round_,
        node=env.aggregator.address,
        amount=81 * TOKEN,
    ):
        env.ledger.challenge_reward(
            task_id,
            round_,
            env.aggregator.address,
            81 * TOKEN,
            tree.proof(env.aggregator.address),
            env.nodes[5],
        )
    env.settle(task_id, round_)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, SETTLED, FINALIZED)
    ):
        env.ledger.challenge_reward(
            task_id,
            round_,
            env.aggregator.address,
            80 * TOKEN,
            tree.proof(env.aggregator.address),
            env.nodes[5],
        )


def test_challengeReward_spares_the_pay_of_a_validator_whose_sheet_was_used(
    env: LedgerEnv,
) -> None:
    node, validator = env.nodes[0], env.validators[0]
    task_id, round_ = _closed_round(env, node)
    env.ledger.post_scores(task_id, round_, digest_of("sheet"), "bafy-sheet", validator)
    rewards = {node.address: 90 * TOKEN, validator.address: 10 * TOKEN}
    result, tree = env.result(task_id, round_, rewards, accepted=1)
    assert tree is not None and result.scores_bitmap == 0b1
    env.ledger.finalize_round(
        task_id, round_, result, env.sign(task_id, round_, result), env.aggregator
    )
    with reverts(
        errors.LedgerRewardJustified, taskId=task_id, round=round_, account=validator.address
    ):
        env.ledger.challenge_reward(
            task_id, round_, validator.address, 10 * TOKEN, tree.proof(validator.address), node
        )


def test_challengeReward_a_voided_round_is_finalized_again_in_its_new_epoch(
    env: LedgerEnv,
) -> None:
    task_id, round_, tree, old_hash = _paying_an_outsider(env)
    env.ledger.challenge_reward(
        task_id,
        round_,
        env.aggregator.address,
        80 * TOKEN,
        tree.proof(env.aggregator.address),
        env.nodes[5],
    )
    # the slashed aggregator may no longer propose; the one honest validator left cannot
    # reach the quorum alone, so the round can only be abandoned
    result, _ = env.result(task_id, round_, {env.nodes[0].address: 10 * TOKEN})
    with reverts(errors.LedgerBondSlashed, taskId=task_id, account=env.aggregator.address):
        env.ledger.propose_result(task_id, round_, result, env.aggregator)
    new_hash = env.ledger.propose_result(task_id, round_, result, env.validators[2])
    assert new_hash != old_hash and env.ledger.proposal(task_id, round_, new_hash).epoch == 1
    (honest,) = env.sign(task_id, round_, result, env.validators[2])
    env.ledger.attest(task_id, round_, new_hash, honest, env.nodes[6])
    (slashed,) = env.sign(task_id, round_, result, env.validators[0])
    with reverts(errors.LedgerBondSlashed, taskId=task_id, account=env.validators[0].address):
        env.ledger.attest(task_id, round_, new_hash, slashed, env.nodes[6])
    with reverts(
        errors.LedgerStaleProposal,
        taskId=task_id,
        round=round_,
        resultHash=old_hash,
        proposalEpoch=0,
        epoch=1,
    ):
        env.ledger.attest(task_id, round_, old_hash, honest, env.nodes[6])
    voided_at = env.ledger.round(task_id, round_).voided_at
    env.abandonable(task_id, round_)
    assert env.chain.timestamp() > voided_at + 3600
    env.ledger.abandon_round(task_id, round_, env.nodes[6])
    assert env.ledger.round_state(task_id, round_) is ABANDONED


# ---------------------------------------------------------------- slashConflicting


def _conflicting(env: LedgerEnv) -> tuple[int, int, Finalization, bytes]:
    """A round finalized by validators 0 and 1; validator 2 proposed and signed another result
    of the same epoch and sheets (a lie). Returns the lie and its hash."""
    task_id, round_ = _closed_round(env, env.nodes[0])
    lie, _ = env.result(task_id, round_, {}, rejected=1, label="-lie")
    lie_hash = env.ledger.propose_result(task_id, round_, lie, env.validators[2])
    (signed,) = env.sign(task_id, round_, lie, env.validators[2])
    env.ledger.attest(task_id, round_, lie_hash, signed, env.validators[2])
    env.finalize(task_id, round_, {env.nodes[0].address: TOKEN})
    return task_id, round_, lie, lie_hash


def test_slashConflicting_spares_an_honest_derivation_with_the_same_rewards_and_counts(
    env: LedgerEnv,
) -> None:
    """Two honest proposers derive the same rewards and counts from the same inputs, but their
    reports (timings) and global adapters (float rounding) may differ in bytes: the one that
    loses the race is no lie."""
    task_id, round_ = _closed_round(env, env.nodes[0])
    rewards = {env.nodes[0].address: TOKEN}
    twin, _ = env.result(task_id, round_, rewards, label="-other-bytes")
    twin_hash = env.ledger.propose_result(task_id, round_, twin, env.validators[2])
    (signed,) = env.sign(task_id, round_, twin, env.validators[2])
    env.ledger.attest(task_id, round_, twin_hash, signed, env.validators[2])
    env.finalize(task_id, round_, rewards)
    assert env.ledger.round(task_id, round_).result_hash != twin_hash
    with reverts(errors.LedgerNotConflicting, taskId=task_id, round=round_, resultHash=twin_hash):
        env.ledger.slash_conflicting(task_id, round_, twin_hash, env.nodes[5])
    assert not env.ledger.bond_of(task_id, env.validators[2].address).slashed


def test_slashConflicting_slashes_a_lying_proposer_and_its_signers_and_emits(
    env: LedgerEnv,
) -> None:
    task_id, round_, _, lie_hash = _conflicting(env)
    funded = env.ledger.task(task_id).funded
    receipt = env.ledger.slash_conflicting(task_id, round_, lie_hash, env.nodes[5])
    assert env.events(receipt, "ProposalSlashed") == [
        {
            "taskId": task_id,
            "round": round_,
            "resultHash": lie_hash,
            "finalizedHash": env.ledger.round(task_id, round_).result_hash,
            "slasher": env.nodes[5].address,
        }
    ]
    assert env.events(receipt, "BondSlashed") == [
        {
            "taskId": task_id,
            "round": round_,
            "account": env.validators[2].address,
            "amount": VALIDATOR_BOND,
            "reason": BondSlashReason.CONFLICTING_RESULT,
        }
    ]
    assert env.ledger.task(task_id).funded == funded + VALIDATOR_BOND
    assert env.ledger.bond_of(task_id, env.validators[2].address).slashed
    assert env.ledger.proposal(task_id, round_, lie_hash).slashed
    with reverts(
        errors.LedgerProposalAlreadySlashed, taskId=task_id, round=round_, resultHash=lie_hash
    ):
        env.ledger.slash_conflicting(task_id, round_, lie_hash, env.nodes[5])


def test_slashConflicting_slashes_an_aggregator_that_proposed_a_lie_too(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    lie, _ = env.result(task_id, round_, {}, rejected=1, label="-lie")
    lie_hash = env.ledger.propose_result(task_id, round_, lie, env.aggregator)
    env.finalize(task_id, round_, {env.nodes[0].address: TOKEN}, settle=True)
    receipt = env.ledger.slash_conflicting(task_id, round_, lie_hash, env.nodes[5])
    assert [e["account"] for e in env.events(receipt, "BondSlashed")] == [env.aggregator.address]


def test_slashConflicting_reverts_for_the_result_itself_unknown_ones_and_late_calls(
    env: LedgerEnv,
) -> None:
    task_id, round_, _, lie_hash = _conflicting(env)
    finalized = env.ledger.round(task_id, round_).result_hash
    with reverts(errors.LedgerNotConflicting, taskId=task_id, round=round_, resultHash=finalized):
        env.ledger.slash_conflicting(task_id, round_, finalized, env.nodes[5])
    unknown = digest_of("nothing")
    with reverts(errors.LedgerUnknownProposal, taskId=task_id, round=round_, resultHash=unknown):
        env.ledger.slash_conflicting(task_id, round_, unknown, env.nodes[5])
    env.end_slash_window(task_id, round_)
    slash_end = env.ledger.round(task_id, round_).finalized_at + 1200
    with reverts(errors.LedgerSlashWindowOver, taskId=task_id, round=round_, closedAt=slash_end):
        env.ledger.slash_conflicting(task_id, round_, lie_hash, env.nodes[5])


def test_slashConflicting_spares_a_proposal_made_on_other_score_sheets(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    early, _ = env.result(task_id, round_, {}, rejected=1, label="-early")
    early_hash = env.ledger.propose_result(task_id, round_, early, env.aggregator)
    env.ledger.post_scores(task_id, round_, digest_of("s"), "bafy-s", env.validators[0])
    env.finalize(task_id, round_, {env.nodes[0].address: TOKEN})
    with reverts(errors.LedgerNotConflicting, taskId=task_id, round=round_, resultHash=early_hash):
        env.ledger.slash_conflicting(task_id, round_, early_hash, env.nodes[5])


def test_slashConflicting_reverts_before_finalization(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env, env.nodes[0])
    with reverts(
        errors.LedgerUnexpectedRoundState,
        **_unexpected(task_id, round_, CLOSED, FINALIZED, SETTLED),
    ):
        env.ledger.slash_conflicting(task_id, round_, digest_of("x"), env.nodes[5])


# ---------------------------------------------------------------- executeSlash


def _slashed_round(env: LedgerEnv, amount: int = 4 * TOKEN) -> tuple[int, int, SlashTree]:
    """A round whose quorum-signed result slashes nodes[0] by ``amount`` and nodes[1] by 1."""
    a, b = env.nodes[0], env.nodes[1]
    task_id, round_ = _closed_round(env, a, b)
    slashes = [SlashEntry(a.address, amount, 7, "bafy-ev"), SlashEntry(b.address, 1, 2, "bafy-ev")]
    env.finalize(task_id, round_, {}, rejected=2, slashes=slashes)
    return task_id, round_, SlashTree(task_id, round_, slashes)


def test_executeSlash_moves_stake_into_the_pool_and_emits(env: LedgerEnv) -> None:
    task_id, round_, tree = _slashed_round(env)
    env.settle(task_id, round_)
    node = env.nodes[0]
    entry = tree.entry(node.address)
    assert env.ledger.slash_leaf(task_id, round_, entry) != ZERO
    receipt = env.ledger.execute_slash(task_id, round_, entry, tree.proof(entry), env.nodes[6])
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
    with reverts(errors.LedgerAlreadySlashed, taskId=task_id, round=round_, node=node.address):
        env.ledger.execute_slash(task_id, round_, entry, tree.proof(entry), env.nodes[6])


def test_executeSlash_takes_at_most_the_stake_left(env: LedgerEnv) -> None:
    task_id, round_, tree = _slashed_round(env, amount=50 * TOKEN)
    env.settle(task_id, round_)
    entry = tree.entry(env.nodes[0].address)
    receipt = env.ledger.execute_slash(task_id, round_, entry, tree.proof(entry), env.nodes[6])
    (event,) = env.events(receipt, "NodeSlashed")
    assert event["amount"] == 10 * TOKEN
    assert env.ledger.member(task_id, env.nodes[0].address).stake == 0


def test_executeSlash_reverts_outside_its_window_and_on_a_forged_leaf(env: LedgerEnv) -> None:
    task_id, round_, tree = _slashed_round(env)
    entry = tree.entry(env.nodes[0].address)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, FINALIZED, SETTLED)
    ):
        env.ledger.execute_slash(task_id, round_, entry, tree.proof(entry), env.nodes[6])
    env.settle(task_id, round_)
    forged = SlashEntry(entry.node, 9 * TOKEN, entry.reason, entry.evidence_cid)
    with reverts(
        errors.LedgerInvalidSlashProof,
        taskId=task_id,
        round=round_,
        node=entry.node,
        amount=9 * TOKEN,
        reason=7,
    ):
        env.ledger.execute_slash(task_id, round_, forged, tree.proof(entry), env.nodes[6])
    env.end_slash_window(task_id, round_)
    slash_end = env.ledger.round(task_id, round_).finalized_at + 1200
    with reverts(errors.LedgerSlashWindowOver, taskId=task_id, round=round_, closedAt=slash_end):
        env.ledger.execute_slash(task_id, round_, entry, tree.proof(entry), env.nodes[6])


def test_executeSlash_reverts_for_a_node_that_did_not_commit_in_the_round(env: LedgerEnv) -> None:
    node, bystander = env.nodes[0], env.nodes[1]
    task_id, round_ = _closed_round(env, node)
    env.join(task_id, bystander)
    entry = SlashEntry(bystander.address, TOKEN, 1, "bafy-ev")
    env.finalize(task_id, round_, {}, rejected=1, slashes=[entry], settle=True)
    tree = SlashTree(task_id, round_, [entry])
    with reverts(errors.LedgerNotCommitted, taskId=task_id, round=round_, node=bystander.address):
        env.ledger.execute_slash(task_id, round_, entry, tree.proof(entry), env.nodes[6])


# ---------------------------------------------------------------- abandonRound


def test_abandonRound_gives_up_a_round_after_its_grace_period_and_emits(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = env.open(task_id)
    env.commit(task_id, round_, node)
    r = env.ledger.round(task_id, round_)
    with reverts(
        errors.LedgerRoundNotAbandonable,
        taskId=task_id,
        round=round_,
        abandonableAt=r.reveal_deadline + 3600 + 1,
    ):
        env.ledger.abandon_round(task_id, round_, env.nodes[5])
    env.abandonable(task_id, round_)
    receipt = env.ledger.abandon_round(task_id, round_, env.nodes[5])
    assert env.events(receipt, "RoundAbandoned") == [
        {"taskId": task_id, "round": round_, "epoch": 0, "caller": env.nodes[5].address}
    ]
    assert env.ledger.round_state(task_id, round_) is ABANDONED
    assert env.ledger.round(task_id, round_).abandoned
    assert env.ledger.task(task_id).reserved == 0
    assert env.ledger.open_round(task_id) == 0


def test_abandonRound_reverts_for_finalized_settled_and_unopened_rounds(env: LedgerEnv) -> None:
    task_id = env.create_task()
    round_ = env.open(task_id)
    with reverts(
        errors.LedgerUnexpectedRoundState,
        **_unexpected(task_id, round_ + 1, UNOPENED, OPEN, REVEALING, CLOSED),
    ):
        env.ledger.abandon_round(task_id, round_ + 1, env.nodes[5])
    env.finalize(task_id, round_, {})
    env.abandonable(task_id, round_)
    with reverts(
        errors.LedgerUnexpectedRoundState,
        **_unexpected(task_id, round_, SETTLED, OPEN, REVEALING, CLOSED),
    ):
        env.ledger.abandon_round(task_id, round_, env.nodes[5])


# ---------------------------------------------------------------- roundState


def test_roundState_is_unopened_for_round_zero_and_rounds_not_opened_yet(env: LedgerEnv) -> None:
    task_id = env.create_task()
    assert [env.ledger.round_state(task_id, r) for r in (0, 1, 2)] == [UNOPENED] * 3
    env.open(task_id)
    assert [env.ledger.round_state(task_id, r) for r in (0, 2)] == [UNOPENED] * 2


def test_roundState_goes_open_revealing_closed_finalized_settled(env: LedgerEnv) -> None:
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = env.open(task_id)
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
    finalized_at = env.ledger.round(task_id, round_).finalized_at
    env.advance_to(finalized_at + 500)  # inside the 600 s challenge window
    assert env.ledger.round_state(task_id, round_) is FINALIZED
    env.advance_to(finalized_at + 600)
    assert env.ledger.round_state(task_id, round_) is SETTLED
    assert env.ledger.round_state(task_id, env.open(task_id)) is OPEN


def test_roundState_closes_when_the_window_passes_with_nothing_committed(env: LedgerEnv) -> None:
    task_id = env.create_task(submission_window=60)
    env.join(task_id, env.nodes[0])
    round_ = env.open(task_id)
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
    round_ = env.open(task_id)
    env.submit(task_id, round_, a)
    env.chain.advance_time(61)
    assert env.ledger.round_state(task_id, round_) is REVEALING
    env.chain.advance_time(60)
    assert env.ledger.round_state(task_id, round_) is CLOSED
    env.pending.clear()
    env.finalize(task_id, round_, {})  # the unrevealed commitment counts for nothing
    assert env.ledger.round(task_id, round_).reveals == 0


def test_roundState_of_a_round_opened_with_no_member_is_closed_at_once(env: LedgerEnv) -> None:
    task_id = env.create_task()
    round_ = env.open(task_id)
    assert env.ledger.round(task_id, round_).eligible == 0
    assert env.ledger.round_state(task_id, round_) is CLOSED  # nobody may commit: no waiting
    env.join(task_id, env.nodes[0])
    assert env.ledger.round_state(task_id, round_) is CLOSED


def test_roundState_reverts_for_an_unknown_task(env: LedgerEnv) -> None:
    with reverts(errors.LedgerUnknownTask, taskId=7):
        env.ledger.round_state(7, 1)


# ---------------------------------------------------------------- claim / claimBatch


def _round_with_rewards(env: LedgerEnv, amounts: list[int]) -> tuple[int, int, RewardTree]:
    task_id = env.create_task()
    nodes = env.nodes[: len(amounts)]
    env.join(task_id, *nodes)
    round_, tree = env.run_round(task_id, dict(zip(nodes, amounts, strict=True)))
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
    round2, _ = env.run_round(task_id, {a: 30 * TOKEN})
    # the same (node, amount) in round 1's tree does not prove round 2's leaf
    with reverts(
        errors.LedgerInvalidProof, taskId=task_id, round=round2, node=a.address, amount=30 * TOKEN
    ):
        env.ledger.claim(ClaimRequest(task_id, round2, 30 * TOKEN, (tree.root,)), a)


def test_claim_reverts_until_the_round_is_settled_and_for_zero(env: LedgerEnv) -> None:
    task_id = env.create_task()
    node = env.nodes[0]
    env.join(task_id, node)
    round_ = env.open(task_id)
    with reverts(errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, OPEN, SETTLED)):
        env.ledger.claim(ClaimRequest(task_id, round_, TOKEN, ()), node)
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_ + 1, UNOPENED, SETTLED)
    ):
        env.ledger.claim(ClaimRequest(task_id, round_ + 1, TOKEN, ()), node)
    env.commit(task_id, round_, node)
    tree = env.finalize(task_id, round_, {node.address: TOKEN})
    assert tree is not None
    request = ClaimRequest(task_id, round_, TOKEN, tuple(tree.proof(node.address)))
    with reverts(
        errors.LedgerUnexpectedRoundState, **_unexpected(task_id, round_, FINALIZED, SETTLED)
    ):
        env.ledger.claim(request, node)  # the challenge window runs
    env.settle(task_id, round_)
    with reverts(errors.LedgerZeroAmount):
        env.ledger.claim(ClaimRequest(task_id, round_, 0, ()), node)
    env.ledger.claim(request, node)


def test_claim_never_pays_more_than_the_round_total(env: LedgerEnv) -> None:
    """A reward table whose entries sum above the posted total cannot drain the pool."""
    task_id = env.create_task()
    a, b = env.nodes[0], env.nodes[1]
    env.join(task_id, a, b)
    round_ = env.open(task_id)
    env.submit(task_id, round_, a)
    env.submit(task_id, round_, b)
    tree = env.finalize(
        task_id,
        round_,
        {a.address: 60 * TOKEN, b.address: 60 * TOKEN},
        total=100 * TOKEN,
        settle=True,
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
        round_, tree = env.run_round(task_id, {node: amount})
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
