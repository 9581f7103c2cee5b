"""LoRALedger v3 under brownie: one full commit-reveal round finalized by a quorum of validator
signatures (EIP-712), settled after its challenge window and paid through Merkle claims; and
the protocol's guards.

Reverts are matched on the custom error brownie decodes from the revert data (the selector
looked up in the compiled ABIs): `ErrorName: arg1, arg2, ...`, every argument checked.
Signatures are made here with eth_account from the EIP-712 typed data; the contract's own
`resultHashOf` and `attestationDigest` are checked against that computation.
"""

import brownie
import pytest
from brownie import chain
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

REWARD_PER_ROUND = 1_000 * 10**18
MIN_STAKE = 10 * 10**18
FUNDING = 5_000 * 10**18
WINDOW = 3_600  # seconds a round accepts commitments
REVEAL_WINDOW = 1_800  # seconds after that during which commitments are revealed
MAX_EXAMPLES = 1_000
MAX_ROUNDS = 2
QUORUM = 2
AGGREGATOR_BOND = 50 * 10**18
VALIDATOR_BOND = 20 * 10**18
SHARE_BPS = 1_000
CHALLENGE_WINDOW = 600
SLASH_WINDOW = 600
GRACE_PERIOD = 7_200
BASE_MODEL_HASH = "0x" + keccak(text="HuggingFaceTB/SmolLM2-135M-Instruct").hex()
INITIAL_CID = "bafkreiinitialglobaladapter"
INITIAL_DIGEST = "0x" + "11" * 32
DIGEST_A = "0x" + "aa" * 32
DIGEST_B = "0x" + "bb" * 32
GLOBAL_DIGEST = "0x" + "22" * 32
SALT_A = "0x" + "5a" * 32
SALT_B = "0x" + "5b" * 32
ZERO32 = "0x" + "00" * 32
RESULT_HASH_TYPES = [
    *("uint256", "uint32", "uint32", "bytes32", "bytes32", "bytes32"),
    *("uint32", "uint32", "bytes32", "uint256", "bytes32", "uint32"),
]
# ILoRALedger.RoundState
UNOPENED, OPEN, REVEALING, CLOSED, FINALIZED, SETTLED, ABANDONED = range(7)


# ----------------------------------------------------------------- helpers


def commitment(task_id, round_, node, digest, num_examples, salt):
    """keccak256(abi.encode(taskId, round, node, digest, numExamples, salt)), as commitmentOf."""
    encoded = encode(
        ["uint256", "uint32", "address", "bytes32", "uint64", "bytes32"],
        [
            task_id,
            round_,
            str(node),
            bytes.fromhex(digest[2:]),
            num_examples,
            bytes.fromhex(salt[2:]),
        ],
    )
    return hex32(keccak(encoded))


def reward_leaf(task_id, round_, node, amount):
    """OpenZeppelin standard Merkle leaf: keccak256(bytes.concat(keccak256(abi.encode(...))))."""
    encoded = encode(
        ["uint256", "uint32", "address", "uint256"], [task_id, round_, str(node), amount]
    )
    return keccak(keccak(encoded))


def pair_root(a, b):
    """Root of a two-leaf tree: keccak256 of the sorted pair (OpenZeppelin's commutative hash)."""
    return keccak(b"".join(sorted((a, b))))


def hex32(value):
    return "0x" + value.hex()


def states(*allowed):
    """The bitmap of allowed round states an error carries: bit `uint8(state)` per state."""
    return sum(1 << state for state in allowed).to_bytes(32, "big")


def typed_error(name, *args):
    """The revert string brownie decodes from a custom error: `Name: arg, ...`, with addresses
    in lower case and bytes32 values as Python bytes."""

    def show(arg):
        text = str(arg)
        return text.lower() if text.startswith("0x") and len(text) == 42 else text

    return f"{name}: {', '.join(show(a) for a in args)}"


def task_params(token, aggregator, validators):
    return (
        BASE_MODEL_HASH,
        INITIAL_CID,
        INITIAL_DIGEST,
        token,
        REWARD_PER_ROUND,
        MIN_STAKE,
        WINDOW,
        REVEAL_WINDOW,
        MAX_EXAMPLES,
        MAX_ROUNDS,
        aggregator,
        [str(v) for v in validators],
        QUORUM,
        AGGREGATOR_BOND,
        VALIDATOR_BOND,
        SHARE_BPS,
        CHALLENGE_WINDOW,
        SLASH_WINDOW,
        GRACE_PERIOD,
        0,  # privacy: none required
    )


def create_task(ledger, token, admin, sponsor, nodes, aggregator, validators):
    """A task created and funded by `sponsor`, its aggregator and validators bonded, joined by
    `nodes`; returns (tx, task id)."""
    token.transfer(sponsor, FUNDING, {"from": admin})
    created = ledger.createTask(task_params(token, aggregator, validators), {"from": sponsor})
    task_id = created.return_value
    token.approve(ledger, FUNDING, {"from": sponsor})
    ledger.fundTask(task_id, FUNDING, {"from": sponsor})
    for party, bond in [(aggregator, AGGREGATOR_BOND)] + [(v, VALIDATOR_BOND) for v in validators]:
        token.transfer(party, bond, {"from": admin})
        token.approve(ledger, bond, {"from": party})
        ledger.postBond(task_id, {"from": party})
    for node in nodes:
        token.transfer(node, MIN_STAKE, {"from": admin})
        token.approve(ledger, MIN_STAKE, {"from": node})
        ledger.join(task_id, {"from": node})
    return created, task_id


def finalization(root, total, accepted, rejected=0):
    """A Finalization tuple: no slash root, no score sheet used."""
    return (
        "bafkreiglobalround",
        GLOBAL_DIGEST,
        "bafkreireportround",
        accepted,
        rejected,
        hex32(root),
        total,
        ZERO32,
        0,
    )


def result_hash(ledger, task_id, round_, result, epoch=0):
    """keccak256(abi.encode(taskId, round, epoch, globalDigest, keccak(globalCid),
    keccak(reportCid), accepted, rejected, rewardRoot, rewardTotal, slashRoot, scoresBitmap)),
    checked against the contract's resultHashOf."""
    g_cid, g_digest, r_cid, accepted, rejected, root, total, slash_root, bitmap = result
    encoded = encode(
        RESULT_HASH_TYPES,
        [
            task_id,
            round_,
            epoch,
            bytes.fromhex(g_digest[2:]),
            keccak(text=g_cid),
            keccak(text=r_cid),
            accepted,
            rejected,
            bytes.fromhex(root[2:]),
            total,
            bytes.fromhex(slash_root[2:]),
            bitmap,
        ],
    )
    hashed = keccak(encoded)
    assert ledger.resultHashOf(task_id, round_, result) == hex32(hashed)
    return hashed


def sign(ledger, validator, task_id, round_, result, epoch=0):
    """The validator's EIP-712 signature of `result` (as chain.attest.sign_result makes it)."""
    hashed = result_hash(ledger, task_id, round_, result, epoch)
    scores = bytes(ledger.scoresOf(task_id, round_, validator))
    message = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "RoundResult": [
                {"name": "taskId", "type": "uint256"},
                {"name": "round", "type": "uint32"},
                {"name": "resultHash", "type": "bytes32"},
                {"name": "globalDigest", "type": "bytes32"},
                {"name": "reportCidHash", "type": "bytes32"},
                {"name": "rewardRoot", "type": "bytes32"},
                {"name": "scoresDigest", "type": "bytes32"},
            ],
        },
        "primaryType": "RoundResult",
        "domain": {
            "name": "LoRALedger",
            "version": "3",
            "chainId": chain.id,
            "verifyingContract": ledger.address,
        },
        "message": {
            "taskId": task_id,
            "round": round_,
            "resultHash": hashed,
            "globalDigest": bytes.fromhex(result[1][2:]),
            "reportCidHash": keccak(text=result[2]),
            "rewardRoot": bytes.fromhex(result[5][2:]),
            "scoresDigest": scores,
        },
    }
    signable = encode_typed_data(full_message=message)
    digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert ledger.attestationDigest(
        task_id, round_, hashed, result[1], keccak(text=result[2]), result[5], scores
    ) == hex32(digest)
    signed = Account.from_key(validator.private_key).sign_message(signable)
    return (str(validator), "0x" + bytes(signed.signature).hex())


def commit_and_reveal(ledger, task_id, round_, submitters):
    updates = [
        ("0x" + f"{i + 1:02x}" * 32, "0x" + f"{i + 0x51:02x}" * 32) for i in range(len(submitters))
    ]
    for node, (digest, salt) in zip(submitters, updates, strict=True):
        ledger.commitUpdate(
            task_id, round_, commitment(task_id, round_, node, digest, 100, salt), {"from": node}
        )
    chain.sleep(WINDOW + 1)
    for i, (node, (digest, salt)) in enumerate(zip(submitters, updates, strict=True)):
        ledger.revealUpdate(task_id, round_, f"bafkreiupdate{i}", digest, 100, salt, {"from": node})


def run_round(ledger, aggregator, validators, task_id, submitters, root, total, settle=True):
    """Open a round, let `submitters` commit then reveal, finalize it with `root` signed by
    two validators and (with `settle`) wait out the challenge window; returns the round."""
    round_ = ledger.openRound(task_id, {"from": aggregator}).return_value
    commit_and_reveal(ledger, task_id, round_, submitters)
    result = finalization(root, total, len(submitters))
    signatures = [sign(ledger, v, task_id, round_, result) for v in validators[:QUORUM]]
    ledger.finalizeRound(task_id, round_, result, signatures, {"from": aggregator})
    if settle:
        chain.sleep(CHALLENGE_WINDOW + 1)
        chain.mine()
    return round_


@pytest.fixture(scope="module")
def task_id(ledger, token, admin, sponsor, node_a, node_b, aggregator, validators):
    """Task 1, funded, bonded, joined by node_a and node_b, no round opened yet."""
    return create_task(ledger, token, admin, sponsor, (node_a, node_b), aggregator, validators)[1]


@pytest.fixture
def open_round(ledger, aggregator, task_id):
    """Round 1 of the task, open."""
    return ledger.openRound(task_id, {"from": aggregator}).return_value


@pytest.fixture
def single_leaf_round(ledger, aggregator, validators, task_id, node_a):
    """Round 1 settled with a one-leaf reward tree paying node_a: root = leaf, empty proof."""
    amount = 400 * 10**18
    round_ = run_round(
        ledger,
        aggregator,
        validators,
        task_id,
        (node_a,),
        reward_leaf(task_id, 1, node_a, amount),
        amount,
    )
    return round_, amount


# ----------------------------------------------------------------- happy path


def test_round_lifecycle_pays_rewards_through_merkle_claims(
    admin, aggregator, sponsor, node_a, node_b, validators, token, ledger
):
    created, task_id = create_task(
        ledger, token, admin, sponsor, (node_a, node_b), aggregator, validators
    )
    assert ledger.taskCount() == task_id
    event = created.events["TaskCreated"]
    assert (event["taskId"], event["sponsor"], event["token"]) == (task_id, sponsor, token)
    assert tuple(event["params"]) == task_params(token, aggregator, validators)
    task = ledger.getTask(task_id)
    assert (task["funded"], task["activeNodes"], task["aggregator"], task["quorum"]) == (
        FUNDING,
        2,
        aggregator,
        QUORUM,
    )
    assert ledger.validatorsOf(task_id) == [str(v) for v in validators]
    member = ledger.getMember(task_id, node_a)
    assert member["joined"] and member["stake"] == MIN_STAKE

    assert ledger.roundState(task_id, 1) == UNOPENED
    opened = ledger.openRound(task_id, {"from": aggregator})
    round_ = opened.return_value
    assert ledger.roundState(task_id, round_) == OPEN
    deadline = opened.timestamp + WINDOW
    assert dict(opened.events["RoundOpened"]) == {
        "taskId": task_id,
        "round": 1,
        "startDigest": INITIAL_DIGEST,
        "deadline": deadline,
        "revealDeadline": deadline + REVEAL_WINDOW,
        "eligible": 2,
    }

    commitment_a = commitment(task_id, round_, node_a, DIGEST_A, 120, SALT_A)
    assert ledger.commitmentOf(task_id, round_, node_a, DIGEST_A, 120, SALT_A) == commitment_a
    committed = ledger.commitUpdate(task_id, round_, commitment_a, {"from": node_a})
    assert dict(committed.events["UpdateCommitted"]) == {
        "taskId": task_id,
        "round": round_,
        "node": node_a,
        "commitment": commitment_a,
    }
    assert "UpdateRevealed" not in committed.events  # nothing to copy yet
    assert ledger.roundState(task_id, round_) == OPEN
    ledger.commitUpdate(
        task_id, round_, commitment(task_id, round_, node_b, DIGEST_B, 80, SALT_B), {"from": node_b}
    )
    # every eligible node committed: the commit phase is over before its deadline
    assert ledger.roundState(task_id, round_) == REVEALING
    revealed = ledger.revealUpdate(
        task_id, round_, "bafkreiupdatea", DIGEST_A, 120, SALT_A, {"from": node_a}
    )
    assert dict(revealed.events["UpdateRevealed"]) == {
        "taskId": task_id,
        "round": round_,
        "node": node_a,
        "cid": "bafkreiupdatea",
        "digest": DIGEST_A,
        "numExamples": 120,
    }
    ledger.revealUpdate(task_id, round_, "bafkreiupdateb", DIGEST_B, 80, SALT_B, {"from": node_b})
    submission = ledger.getSubmission(task_id, round_, node_b)
    assert submission["digest"] == DIGEST_B and submission["numExamples"] == 80

    # every commitment revealed: the round is closed; two of three validators sign the result
    assert ledger.roundState(task_id, round_) == CLOSED
    amount_a, amount_b = 600 * 10**18, 400 * 10**18
    leaf_a = reward_leaf(task_id, round_, node_a, amount_a)
    leaf_b = reward_leaf(task_id, round_, node_b, amount_b)
    assert ledger.rewardLeaf(task_id, round_, node_a, amount_a) == hex32(leaf_a)
    root = pair_root(leaf_a, leaf_b)
    result = finalization(root, amount_a + amount_b, accepted=2)
    signatures = [sign(ledger, v, task_id, round_, result) for v in validators[:2]]
    finalized = ledger.finalizeRound(task_id, round_, result, signatures, {"from": aggregator})
    hashed = hex32(result_hash(ledger, task_id, round_, result))
    proposed = finalized.events["ResultProposed"]
    assert (proposed["resultHash"], proposed["proposer"], proposed["epoch"]) == (
        hashed,
        aggregator,
        0,
    )
    assert [dict(a) for a in finalized.events["Attested"]] == [
        {
            "taskId": task_id,
            "round": round_,
            "resultHash": hashed,
            "validator": validator,
            "signature": signature,
            "attestations": i + 1,
        }
        for i, (validator, signature) in enumerate(signatures)
    ]
    done = finalized.events["RoundFinalized"]
    assert (done["resultHash"], done["proposer"], done["signers"], done["epoch"]) == (
        hashed,
        aggregator,
        0b011,
        0,
    )
    assert tuple(done["result"]) == result
    assert ledger.getTask(task_id)["globalDigest"] == GLOBAL_DIGEST
    assert ledger.roundState(task_id, round_) == FINALIZED

    # nothing is claimable while the challenge window runs
    with brownie.reverts(
        typed_error("LedgerUnexpectedRoundState", task_id, round_, FINALIZED, states(SETTLED))
    ):
        ledger.claim(task_id, round_, amount_a, [hex32(leaf_b)], {"from": node_a})
    chain.sleep(CHALLENGE_WINDOW + 1)
    chain.mine()
    assert ledger.roundState(task_id, round_) == SETTLED

    claimed = ledger.claim(task_id, round_, amount_a, [hex32(leaf_b)], {"from": node_a})
    assert dict(claimed.events["RewardClaimed"]) == {
        "taskId": task_id,
        "round": round_,
        "node": node_a,
        "amount": amount_a,
    }
    ledger.claim(task_id, round_, amount_b, [hex32(leaf_a)], {"from": node_b})

    assert token.balanceOf(node_a) == amount_a
    assert token.balanceOf(node_b) == amount_b
    assert ledger.hasClaimed(task_id, round_, node_a) and ledger.hasClaimed(task_id, round_, node_b)
    task = ledger.getTask(task_id)
    assert (task["reserved"], task["paid"]) == (amount_a + amount_b, amount_a + amount_b)
    bonds = AGGREGATOR_BOND + 3 * VALIDATOR_BOND
    assert token.balanceOf(ledger) == FUNDING + 2 * MIN_STAKE + bonds - amount_a - amount_b


def test_claim_pays_a_single_leaf_tree_with_an_empty_proof(
    ledger, token, task_id, node_a, single_leaf_round
):
    round_, amount = single_leaf_round
    tx = ledger.claim(task_id, round_, amount, [], {"from": node_a})
    assert dict(tx.events["RewardClaimed"]) == {
        "taskId": task_id,
        "round": round_,
        "node": node_a,
        "amount": amount,
    }
    assert token.balanceOf(node_a) == amount


# ----------------------------------------------------------------- openRound


def test_openRound_reverts_for_anyone_but_the_tasks_aggregator(
    ledger, task_id, outsider, validators
):
    for caller in (outsider, validators[0]):
        with brownie.reverts(typed_error("LedgerNotAggregator", task_id, caller)):
            ledger.openRound(task_id, {"from": caller})


# ----------------------------------------------------------------- commitUpdate / revealUpdate


def test_commitUpdate_reverts_when_node_already_committed(ledger, task_id, open_round, node_a):
    ledger.commitUpdate(task_id, open_round, "0x" + "c1" * 32, {"from": node_a})
    with brownie.reverts(typed_error("LedgerAlreadyCommitted", task_id, open_round, node_a)):
        ledger.commitUpdate(task_id, open_round, "0x" + "c2" * 32, {"from": node_a})


def test_commitUpdate_reverts_when_window_closed(ledger, task_id, open_round, node_a):
    chain.sleep(WINDOW + 1)
    chain.mine()
    assert ledger.roundState(task_id, open_round) == CLOSED  # nothing committed: nothing to reveal
    with brownie.reverts(
        typed_error("LedgerUnexpectedRoundState", task_id, open_round, CLOSED, states(OPEN))
    ):
        ledger.commitUpdate(task_id, open_round, "0x" + "c1" * 32, {"from": node_a})
    assert ledger.getRound(task_id, open_round)["commits"] == 0


def test_commitUpdate_reverts_when_round_not_opened(ledger, task_id, node_a):
    with brownie.reverts(
        typed_error("LedgerUnexpectedRoundState", task_id, 1, UNOPENED, states(OPEN))
    ):
        ledger.commitUpdate(task_id, 1, "0x" + "c1" * 32, {"from": node_a})


def test_commitUpdate_reverts_for_a_node_that_joined_during_the_round(
    ledger, token, admin, task_id, open_round, outsider
):
    token.transfer(outsider, MIN_STAKE, {"from": admin})
    token.approve(ledger, MIN_STAKE, {"from": outsider})
    ledger.join(task_id, {"from": outsider})
    with brownie.reverts(
        typed_error("LedgerJoinedAfterOpen", task_id, open_round, outsider, open_round)
    ):
        ledger.commitUpdate(task_id, open_round, "0x" + "c1" * 32, {"from": outsider})


def test_revealUpdate_reverts_for_a_copier_revealing_someone_elses_update(
    ledger, task_id, open_round, node_a, node_b
):
    commitment_a = commitment(task_id, open_round, node_a, DIGEST_A, 10, SALT_A)
    ledger.commitUpdate(task_id, open_round, commitment_a, {"from": node_a})
    ledger.commitUpdate(task_id, open_round, "0x" + "c0" * 32, {"from": node_b})
    ledger.revealUpdate(
        task_id, open_round, "bafkreiupdatea", DIGEST_A, 10, SALT_A, {"from": node_a}
    )
    copied = commitment(task_id, open_round, node_b, DIGEST_A, 10, SALT_A)
    with brownie.reverts(
        typed_error(
            "LedgerCommitmentMismatch",
            task_id,
            open_round,
            node_b,
            bytes.fromhex("c0" * 32),
            bytes.fromhex(copied[2:]),
        )
    ):
        ledger.revealUpdate(
            task_id, open_round, "bafkreiupdatea", DIGEST_A, 10, SALT_A, {"from": node_b}
        )


def test_revealUpdate_reverts_when_examples_exceed_the_cap(ledger, task_id, open_round, node_a):
    too_many = MAX_EXAMPLES + 1
    ledger.commitUpdate(
        task_id,
        open_round,
        commitment(task_id, open_round, node_a, DIGEST_A, too_many, SALT_A),
        {"from": node_a},
    )
    chain.sleep(WINDOW + 1)
    with brownie.reverts(
        typed_error("LedgerExamplesAboveCap", task_id, open_round, node_a, too_many, MAX_EXAMPLES)
    ):
        ledger.revealUpdate(
            task_id, open_round, "bafkreiupdatea", DIGEST_A, too_many, SALT_A, {"from": node_a}
        )


# ----------------------------------------------------------------- finalizeRound


def test_finalizeRound_reverts_when_round_already_finalized(
    ledger, aggregator, validators, task_id, single_leaf_round
):
    round_, amount = single_leaf_round
    assert ledger.roundState(task_id, round_) == SETTLED
    with brownie.reverts(
        typed_error("LedgerUnexpectedRoundState", task_id, round_, SETTLED, states(CLOSED))
    ):
        ledger.finalizeRound(
            task_id, round_, finalization(b"\x01" * 32, amount, 1), [], {"from": aggregator}
        )


def test_finalizeRound_reverts_when_window_not_over(ledger, aggregator, task_id, open_round):
    # node_a and node_b joined, neither submitted, the window runs for an hour
    assert ledger.roundState(task_id, open_round) == OPEN
    with brownie.reverts(
        typed_error("LedgerUnexpectedRoundState", task_id, open_round, OPEN, states(CLOSED))
    ):
        ledger.finalizeRound(
            task_id, open_round, finalization(b"\x01" * 32, 0, 0), [], {"from": aggregator}
        )


def test_finalizeRound_reverts_without_a_quorum_of_valid_signatures(
    ledger, aggregator, validators, task_id, open_round, node_a, outsider
):
    commit_and_reveal(ledger, task_id, open_round, (node_a,))
    chain.sleep(REVEAL_WINDOW + 1)
    chain.mine()
    result = finalization(b"\x01" * 32, 10**18, 1)
    one = sign(ledger, validators[0], task_id, open_round, result)
    with brownie.reverts(typed_error("LedgerQuorumNotReached", task_id, open_round, 1, QUORUM)):
        ledger.finalizeRound(task_id, open_round, result, [one], {"from": aggregator})
    # validators[1] named, validators[0]'s key used
    forged = (str(validators[1]), one[1])
    with brownie.reverts(
        typed_error("LedgerInvalidSignature", task_id, open_round, validators[1], validators[0])
    ):
        ledger.finalizeRound(task_id, open_round, result, [one, forged], {"from": aggregator})
    assert ledger.roundState(task_id, open_round) == CLOSED


# ----------------------------------------------------------------- challengeReward / abandonRound


def test_challengeReward_voids_a_round_paying_an_account_that_took_no_part(
    ledger, token, aggregator, validators, task_id, node_a, outsider
):
    leaf_a = reward_leaf(task_id, 1, node_a, 10**18)
    leaf_thief = reward_leaf(task_id, 1, aggregator, 9 * 10**18)
    round_ = run_round(
        ledger,
        aggregator,
        validators,
        task_id,
        (node_a,),
        pair_root(leaf_a, leaf_thief),
        10 * 10**18,
        settle=False,
    )
    assert ledger.roundState(task_id, round_) == FINALIZED
    tx = ledger.challengeReward(
        task_id, round_, aggregator, 9 * 10**18, [hex32(leaf_a)], {"from": outsider}
    )
    assert tx.events["RoundVoided"]["epoch"] == 1
    assert [(e["account"], e["amount"]) for e in tx.events["BondSlashed"]] == [
        (aggregator, AGGREGATOR_BOND),
        (validators[0], VALIDATOR_BOND),
        (validators[1], VALIDATOR_BOND),
    ]
    assert ledger.roundState(task_id, round_) == CLOSED
    task = ledger.getTask(task_id)
    assert task["reserved"] == 0
    assert task["funded"] == FUNDING + AGGREGATOR_BOND + 2 * VALIDATOR_BOND


def test_abandonRound_frees_a_round_nobody_finalized(
    ledger, aggregator, task_id, open_round, node_a
):
    commit_and_reveal(ledger, task_id, open_round, (node_a,))
    reveal_deadline = ledger.getRound(task_id, open_round)["revealDeadline"]
    with brownie.reverts(
        typed_error(
            "LedgerRoundNotAbandonable",
            task_id,
            open_round,
            reveal_deadline + GRACE_PERIOD + 1,
        )
    ):
        ledger.abandonRound(task_id, open_round, {"from": node_a})
    chain.sleep(REVEAL_WINDOW + GRACE_PERIOD + 1)
    tx = ledger.abandonRound(task_id, open_round, {"from": node_a})
    assert dict(tx.events["RoundAbandoned"]) == {
        "taskId": task_id,
        "round": open_round,
        "epoch": 0,
        "caller": node_a,
    }
    ledger.leave(task_id, {"from": node_a})
    left = ledger.withdrawStake(task_id, {"from": node_a})
    assert left.events["NodeLeft"]["stakeReturned"] == MIN_STAKE


# ----------------------------------------------------------------- claim


def test_claim_reverts_when_already_claimed(ledger, token, task_id, node_a, single_leaf_round):
    round_, amount = single_leaf_round
    ledger.claim(task_id, round_, amount, [], {"from": node_a})
    with brownie.reverts(typed_error("LedgerAlreadyClaimed", task_id, round_, node_a)):
        ledger.claim(task_id, round_, amount, [], {"from": node_a})
    assert token.balanceOf(node_a) == amount


def test_claim_reverts_when_proof_is_forged(
    ledger, token, task_id, node_a, node_b, single_leaf_round
):
    round_, amount = single_leaf_round
    forged = [hex32(reward_leaf(task_id, round_, node_b, amount))]
    # another node replaying node_a's leaf, and node_a inflating its amount
    with brownie.reverts(typed_error("LedgerInvalidProof", task_id, round_, node_b, amount)):
        ledger.claim(task_id, round_, amount, [], {"from": node_b})
    with brownie.reverts(typed_error("LedgerInvalidProof", task_id, round_, node_a, amount + 1)):
        ledger.claim(task_id, round_, amount + 1, forged, {"from": node_a})
    assert token.balanceOf(node_b) == 0 and not ledger.hasClaimed(task_id, round_, node_a)


def test_claim_reverts_when_round_not_settled(ledger, task_id, open_round, node_a):
    with brownie.reverts(
        typed_error("LedgerUnexpectedRoundState", task_id, open_round, OPEN, states(SETTLED))
    ):
        ledger.claim(task_id, open_round, 1, [], {"from": node_a})
