"""The attacks LoRALedger v3 stops, on the embedded chain and on Ganache.

Each test plays the attack as its party would, asserts the exact refusal, and asserts who got
paid in the end: under v2 one account holding ``AGGREGATOR_ROLE`` could finalize any round
alone, pay itself, drain a pool over rounds and slash any node of any task at any time; a
vanished aggregator locked stakes and pools forever; a node could leave between finalization
and its slash; a late joiner blocked a round's early end.
"""

from __future__ import annotations

from typing import Any

from chain import errors
from chain.attest import recover_signer, sign_result
from chain.bindings import ZERO_DIGEST, Attestation, ClaimRequest
from chain.events import BondSlashReason, History
from chain.merkle import SlashEntry, SlashTree
from chain.round_state import RoundState
from tests.support.chain import AGGREGATOR_BOND, TOKEN, VALIDATOR_BOND, LedgerEnv, reverts

UNOPENED, OPEN, REVEALING, CLOSED, FINALIZED, SETTLED, ABANDONED = RoundState
TEN_YEARS = 10 * 365 * 24 * 3600


def _closed_round(env: LedgerEnv, fund: int = 1000 * TOKEN) -> tuple[int, int]:
    """A task whose first round is ``CLOSED`` with nodes[0]'s revealed update."""
    task_id = env.create_task(fund=fund)
    env.join(task_id, env.nodes[0])
    round_ = env.open(task_id)
    env.commit(task_id, round_, env.nodes[0])
    env.reveal_all(task_id, round_)
    return task_id, round_


# ---------------------------------------------------------------- 1. the lone aggregator


def test_attack_the_aggregator_alone_cannot_finalize_or_pay_itself(env: LedgerEnv) -> None:
    task_id, round_ = _closed_round(env)
    thief = env.aggregator
    before = env.token.balance_of(thief.address)
    # alone: no validator signature
    result, _ = env.result(task_id, round_, {env.nodes[0].address: 10 * TOKEN})
    with reverts(
        errors.LedgerQuorumNotReached, taskId=task_id, round=round_, attestations=0, quorum=2
    ):
        env.ledger.finalize_round(task_id, round_, result, [], thief)
    # its own signature counts for nothing
    (own,) = env.sign(task_id, round_, result, thief)
    with reverts(errors.LedgerNotValidator, taskId=task_id, account=thief.address):
        env.ledger.finalize_round(task_id, round_, result, [own], thief)
    # rejecting every update and paying itself the round's reward
    pays_itself, _ = env.result(
        task_id, round_, {thief.address: 100 * TOKEN}, accepted=0, rejected=1
    )
    with reverts(
        errors.LedgerRewardWithoutAccepted, taskId=task_id, round=round_, rewardTotal=100 * TOKEN
    ):
        env.ledger.propose_result(task_id, round_, pays_itself, thief)
    # nothing is reserved, nothing can be claimed, no next round opens to try again
    assert env.ledger.task(task_id).reserved == 0
    assert env.ledger.round_state(task_id, round_) is CLOSED
    with reverts(
        errors.LedgerUnexpectedRoundState,
        taskId=task_id,
        round=round_,
        current=CLOSED,
        expectedStates=RoundState.to_bitmap({SETTLED, ABANDONED}),
    ):
        env.ledger.open_next_round(task_id, thief)
    assert env.token.balance_of(thief.address) == before


def test_attack_a_reward_to_a_non_submitter_is_challenged_and_its_signers_pay(
    env: LedgerEnv,
) -> None:
    """The aggregator bribes two validators into signing a table that pays it; any node
    challenges within the window: the round is voided, the three bonds go to the pool, and in
    the end the sponsor recovers the pool plus the bonds, the aggregator nothing."""
    task_id, round_ = _closed_round(env)
    thief, (v0, v1, honest) = env.aggregator, env.validators
    rewards = {env.nodes[0].address: 10 * TOKEN, thief.address: 90 * TOKEN}
    result, tree = env.result(task_id, round_, rewards, accepted=1)
    assert tree is not None
    env.ledger.finalize_round(
        task_id, round_, result, env.sign(task_id, round_, result, v0, v1), thief
    )
    request = ClaimRequest(task_id, round_, 90 * TOKEN, tuple(tree.proof(thief.address)))
    with reverts(
        errors.LedgerUnexpectedRoundState,
        taskId=task_id,
        round=round_,
        current=FINALIZED,
        expectedStates=RoundState.to_bitmap({SETTLED}),
    ):
        env.ledger.claim(request, thief)  # the challenge window runs first
    env.ledger.challenge_reward(
        task_id, round_, thief.address, 90 * TOKEN, tree.proof(thief.address), env.nodes[3]
    )
    slashed = History(env.ledger, env.deployment.block).bond_slashes(task_id)
    assert [(s.account, s.amount, s.reason) for s in slashed] == [
        (thief.address, AGGREGATOR_BOND, BondSlashReason.REWARD_CHALLENGED),
        (v0.address, VALIDATOR_BOND, BondSlashReason.REWARD_CHALLENGED),
        (v1.address, VALIDATOR_BOND, BondSlashReason.REWARD_CHALLENGED),
    ]
    with reverts(
        errors.LedgerUnexpectedRoundState,
        taskId=task_id,
        round=round_,
        current=CLOSED,
        expectedStates=RoundState.to_bitmap({SETTLED}),
    ):
        env.ledger.claim(request, thief)
    # the slashed parties can neither propose nor sign again; the round is abandoned
    with reverts(errors.LedgerBondSlashed, taskId=task_id, account=thief.address):
        env.ledger.propose_result(task_id, round_, result, thief)
    env.abandonable(task_id, round_)
    env.ledger.abandon_round(task_id, round_, env.nodes[3])
    env.ledger.cancel_task(task_id, env.sponsor)
    sponsor_before = env.token.balance_of(env.sponsor.address)
    env.ledger.withdraw_remainder(task_id, env.sponsor)
    assert env.token.balance_of(env.sponsor.address) - sponsor_before == (
        1000 * TOKEN + AGGREGATOR_BOND + 2 * VALIDATOR_BOND
    )
    for party in (thief, v0, v1):
        with reverts(errors.LedgerBondSlashed, taskId=task_id, account=party.address):
            env.ledger.withdraw_bond(task_id, party)
    env.ledger.withdraw_bond(task_id, honest)
    env.ledger.leave(task_id, env.nodes[0])
    env.ledger.withdraw_stake(task_id, env.nodes[0])
    assert env.token.balance_of(env.ledger.address) == 0


def test_attack_the_aggregator_cannot_slash_a_node_of_any_task_at_any_time(
    env: LedgerEnv,
) -> None:
    """No cross-task role, and a slash needs a leaf of a quorum-signed slash root, executed
    inside its round's slash window."""
    victim = env.nodes[0]
    other_aggregator = env.nodes[7]
    foreign = env.create_task(aggregator=other_aggregator.address)
    env.join(foreign, victim)
    with reverts(errors.LedgerNotAggregator, taskId=foreign, caller=env.aggregator.address):
        env.ledger.open_next_round(foreign, env.aggregator)
    round_, _ = env.ledger.open_next_round(foreign, other_aggregator)
    env.commit(foreign, round_, victim)
    env.reveal_all(foreign, round_)
    forged = SlashEntry(victim.address, 10 * TOKEN, 1, "bafy-made-up")
    tree = SlashTree(foreign, round_, [forged])
    with reverts(
        errors.LedgerUnexpectedRoundState,
        taskId=foreign,
        round=round_,
        current=CLOSED,
        expectedStates=RoundState.to_bitmap({SETTLED}),
    ):
        env.ledger.execute_slash(foreign, round_, forged, tree.proof(forged), env.aggregator)
    honest, _ = env.result(foreign, round_, {victim.address: TOKEN})
    with reverts(errors.LedgerNotProposer, taskId=foreign, caller=env.aggregator.address):
        env.ledger.propose_result(foreign, round_, honest, env.aggregator)
    env.ledger.finalize_round(
        foreign, round_, honest, env.sign(foreign, round_, honest), other_aggregator
    )
    env.settle(foreign, round_)
    with reverts(
        errors.LedgerInvalidSlashProof,
        taskId=foreign,
        round=round_,
        node=victim.address,
        amount=10 * TOKEN,
        reason=1,
    ):
        env.ledger.execute_slash(foreign, round_, forged, tree.proof(forged), env.aggregator)
    env.end_slash_window(foreign, round_)
    closed_at = env.ledger.round(foreign, round_).finalized_at + 1200
    with reverts(errors.LedgerSlashWindowOver, taskId=foreign, round=round_, closedAt=closed_at):
        env.ledger.execute_slash(foreign, round_, forged, tree.proof(forged), env.aggregator)
    assert env.ledger.member(foreign, victim.address).stake == 10 * TOKEN


# ---------------------------------------------------------------- 2. forged signatures


def test_attack_signatures_over_another_epoch_round_task_contract_or_chain_are_refused(
    env: LedgerEnv,
) -> None:
    task_id, round_ = _closed_round(env)
    result, _ = env.result(task_id, round_, {env.nodes[0].address: TOKEN})
    v0, v1, _ = env.validators
    (good,) = env.sign(task_id, round_, result, v0)
    chain_id, ledger = env.chain.chain_id, env.ledger.address
    honest: dict[str, Any] = dict(
        chain_id=chain_id,
        verifying_contract=ledger,
        task_id=task_id,
        round_=round_,
        epoch=0,
        result=result,
        scores_digest=ZERO_DIGEST,
    )
    elsewhere = [
        {"epoch": 1},
        {"round_": round_ + 1},
        {"task_id": task_id + 1},
        {"verifying_contract": env.token.address},
        {"chain_id": chain_id + 1},
        {"scores_digest": b"\x01" * 32},
    ]
    for change in elsewhere:
        signed = sign_result(v1, **(honest | change))
        recovered = recover_signer(signed.signature, **honest)
        assert recovered != v1.address
        with reverts(
            errors.LedgerInvalidSignature,
            taskId=task_id,
            round=round_,
            validator=v1.address,
            recovered=recovered,
        ):
            env.ledger.finalize_round(task_id, round_, result, [good, signed], env.aggregator)
    # too few, twice the same, and an outsider's signature are refused as well
    with reverts(
        errors.LedgerQuorumNotReached, taskId=task_id, round=round_, attestations=1, quorum=2
    ):
        env.ledger.finalize_round(task_id, round_, result, [good], env.aggregator)
    result_hash = env.ledger.result_hash(task_id, round_, result)
    with reverts(
        errors.LedgerAlreadyAttested,
        taskId=task_id,
        round=round_,
        resultHash=result_hash,
        validator=v0.address,
    ):
        env.ledger.finalize_round(task_id, round_, result, [good, good], env.aggregator)
    (outsider,) = env.sign(task_id, round_, result, env.nodes[5])
    with reverts(errors.LedgerNotValidator, taskId=task_id, account=env.nodes[5].address):
        env.ledger.finalize_round(task_id, round_, result, [good, outsider], env.aggregator)
    truncated = Attestation(v1.address, env.sign(task_id, round_, result, v1)[0].signature[:64])
    with reverts(
        errors.LedgerInvalidSignature,
        taskId=task_id,
        round=round_,
        validator=v1.address,
        recovered="0x" + "00" * 20,
    ):
        env.ledger.finalize_round(task_id, round_, result, [good, truncated], env.aggregator)
    assert env.ledger.round_state(task_id, round_) is CLOSED


# ---------------------------------------------------------------- 3. the vanished aggregator


def test_attack_ten_years_after_a_deadline_every_deposit_comes_back(env: LedgerEnv) -> None:
    """The aggregator vanishes after its nodes submitted; ten years later anyone abandons the
    round, the node leaves with its stake, the sponsor cancels and takes the pool back, and
    every bond returns: the ledger holds nothing."""
    node = env.nodes[0]
    task_id, round_ = _closed_round(env)
    env.chain.advance_time(TEN_YEARS)
    env.ledger.leave(task_id, node)
    with reverts(errors.LedgerStakeLocked, taskId=task_id, node=node.address, unlocksAt=0):
        env.ledger.withdraw_stake(task_id, node)  # its round has not ended yet
    env.ledger.abandon_round(task_id, round_, env.nodes[4])
    node_before = env.token.balance_of(node.address)
    env.ledger.withdraw_stake(task_id, node)
    assert env.token.balance_of(node.address) == node_before + 10 * TOKEN
    env.ledger.cancel_task(task_id, env.sponsor)
    sponsor_before = env.token.balance_of(env.sponsor.address)
    env.ledger.withdraw_remainder(task_id, env.sponsor)
    assert env.token.balance_of(env.sponsor.address) == sponsor_before + 1000 * TOKEN
    for party in (env.aggregator, *env.validators):
        before = env.token.balance_of(party.address)
        env.ledger.withdraw_bond(task_id, party)
        bond = AGGREGATOR_BOND if party is env.aggregator else VALIDATOR_BOND
        assert env.token.balance_of(party.address) == before + bond
    assert env.token.balance_of(env.ledger.address) == 0


# ---------------------------------------------------------------- 4. the underfunded task


def test_attack_an_underfunded_task_is_cancelled_and_its_remainder_withdrawn(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task(fund=60 * TOKEN)
    env.join(task_id, env.nodes[0])
    with reverts(
        errors.LedgerInsufficientPool, taskId=task_id, available=60 * TOKEN, required=100 * TOKEN
    ):
        env.open(task_id)
    with reverts(errors.LedgerNotSponsor, taskId=task_id, caller=env.nodes[0].address):
        env.ledger.cancel_task(task_id, env.nodes[0])
    env.ledger.cancel_task(task_id, env.sponsor)
    before = env.token.balance_of(env.sponsor.address)
    env.ledger.withdraw_remainder(task_id, env.sponsor)
    assert env.token.balance_of(env.sponsor.address) == before + 60 * TOKEN
    env.ledger.leave(task_id, env.nodes[0])
    env.ledger.withdraw_stake(task_id, env.nodes[0])
    for party in (env.aggregator, *env.validators):
        env.ledger.withdraw_bond(task_id, party)
    assert env.token.balance_of(env.ledger.address) == 0


# ---------------------------------------------------------------- 5. leaving before the slash


def test_attack_a_node_cannot_dodge_its_slash_by_leaving_after_finalization(
    env: LedgerEnv,
) -> None:
    cheat = env.nodes[0]
    task_id, round_ = _closed_round(env)
    slash = SlashEntry(cheat.address, 4 * TOKEN, 2, "bafy-report")
    env.finalize(task_id, round_, {}, rejected=1, slashes=[slash])
    env.ledger.leave(task_id, cheat)  # right after finalization, in the challenge window
    closes = env.ledger.round(task_id, round_).finalized_at + 600 + 600
    with reverts(
        errors.LedgerStakeLocked, taskId=task_id, node=cheat.address, unlocksAt=closes + 1
    ):
        env.ledger.withdraw_stake(task_id, cheat)
    env.settle(task_id, round_)
    with reverts(
        errors.LedgerStakeLocked, taskId=task_id, node=cheat.address, unlocksAt=closes + 1
    ):
        env.ledger.withdraw_stake(task_id, cheat)
    tree = SlashTree(task_id, round_, [slash])
    env.ledger.execute_slash(task_id, round_, slash, tree.proof(slash), env.nodes[3])
    env.end_slash_window(task_id, round_)
    before = env.token.balance_of(cheat.address)
    env.ledger.withdraw_stake(task_id, cheat)
    assert env.token.balance_of(cheat.address) == before + 6 * TOKEN
    assert env.ledger.task(task_id).funded == 1004 * TOKEN


# ---------------------------------------------------------------- 6. the late joiner


def test_attack_a_late_joiner_neither_blocks_the_early_end_nor_commits_in_its_round(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    a, b, late = env.nodes[0], env.nodes[1], env.nodes[2]
    env.join(task_id, a, b)
    round_ = env.open(task_id)
    env.join(task_id, late)
    env.commit(task_id, round_, a)
    env.commit(task_id, round_, b)
    assert env.ledger.round_state(task_id, round_) is REVEALING  # not waiting for `late`
    with reverts(
        errors.LedgerUnexpectedRoundState,
        taskId=task_id,
        round=round_,
        current=REVEALING,
        expectedStates=RoundState.to_bitmap({OPEN}),
    ):
        env.commit(task_id, round_, late)
    env.reveal(task_id, round_, a)
    env.reveal(task_id, round_, b)
    env.finalize(task_id, round_, {a.address: TOKEN, b.address: TOKEN}, settle=True)
    assert env.chain.timestamp() < env.ledger.round(task_id, round_).reveal_deadline
    round2 = env.open(task_id)
    assert env.ledger.round(task_id, round2).eligible == 3
    env.commit(task_id, round2, late)  # from the next round on, it takes part


def test_attack_a_node_joining_while_the_round_is_open_cannot_commit_in_it(
    env: LedgerEnv,
) -> None:
    task_id = env.create_task()
    env.join(task_id, env.nodes[0])
    round_ = env.open(task_id)
    late = env.nodes[1]
    env.join(task_id, late)
    assert env.ledger.round_state(task_id, round_) is OPEN
    with reverts(
        errors.LedgerJoinedAfterOpen, taskId=task_id, round=round_, node=late.address, joinedRound=1
    ):
        env.commit(task_id, round_, late)
    env.commit(task_id, round_, env.nodes[0])
    assert env.ledger.round_state(task_id, round_) is REVEALING


# ---------------------------------------------------------------- liars and dropouts


def test_a_lying_proposer_and_its_attesters_lose_their_bonds(env: LedgerEnv) -> None:
    """The aggregator proposes a lie and validator 2 signs it; validators 0 and 1 finalize the
    honest result; anyone reports the lie: the aggregator's and validator 2's bonds go to the
    pool, the honest validators keep theirs."""
    task_id, round_ = _closed_round(env)
    liar_validator = env.validators[2]
    lie, _ = env.result(task_id, round_, {}, rejected=1, label="-lie")
    lie_hash = env.ledger.propose_result(task_id, round_, lie, env.aggregator)
    (signed,) = env.sign(task_id, round_, lie, liar_validator)
    env.ledger.attest(task_id, round_, lie_hash, signed, env.aggregator)
    honest, _ = env.result(task_id, round_, {env.nodes[0].address: 30 * TOKEN})
    env.ledger.finalize_round(
        task_id,
        round_,
        honest,
        env.sign(task_id, round_, honest, env.validators[0], env.validators[1]),
        env.validators[0],
    )
    funded = env.ledger.task(task_id).funded
    env.ledger.slash_conflicting(task_id, round_, lie_hash, env.nodes[3])
    slashed = History(env.ledger, env.deployment.block).bond_slashes(task_id)
    assert [(s.account, s.amount, s.reason) for s in slashed] == [
        (env.aggregator.address, AGGREGATOR_BOND, BondSlashReason.CONFLICTING_RESULT),
        (liar_validator.address, VALIDATOR_BOND, BondSlashReason.CONFLICTING_RESULT),
    ]
    assert env.ledger.task(task_id).funded == funded + AGGREGATOR_BOND + VALIDATOR_BOND
    for honest_validator in env.validators[:2]:
        assert env.ledger.bond_of(task_id, honest_validator.address).active
    # the honest result stands: it settles and pays
    env.settle(task_id, round_)
    assert env.ledger.round_state(task_id, round_) is SETTLED


def test_a_dropped_validator_does_not_stop_finalization(env: LedgerEnv) -> None:
    """One validator of three never shows up (no bond, no sheet, no signature): the other two
    are the quorum."""
    task_id = env.create_task(bonds=False)
    env.post_bonds(task_id, env.aggregator, env.validators[0], env.validators[1])
    node = env.nodes[0]
    env.join(task_id, node)
    round_, tree = env.run_round(task_id, {node: 40 * TOKEN})
    assert tree is not None
    assert env.ledger.round(task_id, round_).signers == 0b011
    before = env.token.balance_of(node.address)
    env.ledger.claim(
        ClaimRequest(task_id, round_, 40 * TOKEN, tuple(tree.proof(node.address))), node
    )
    assert env.token.balance_of(node.address) == before + 40 * TOKEN
    assert not env.ledger.bond_of(task_id, env.validators[2].address).posted
