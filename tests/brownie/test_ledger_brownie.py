"""LoRALedger under brownie: one full commit-reveal round with Merkle claims, and the protocol's
guards.

Reverts are matched on the custom error brownie decodes from the revert data (the selector
looked up in the compiled ABIs): `ErrorName: arg1, arg2, ...`, every argument checked.
"""

import brownie
import pytest
from brownie import chain
from eth_abi import encode
from eth_utils import keccak

REWARD_PER_ROUND = 1_000 * 10**18
MIN_STAKE = 10 * 10**18
FUNDING = 5_000 * 10**18
WINDOW = 3_600  # seconds a round accepts commitments
REVEAL_WINDOW = 1_800  # seconds after that during which commitments are revealed
MAX_EXAMPLES = 1_000
MAX_ROUNDS = 2
BASE_MODEL_HASH = "0x" + keccak(text="HuggingFaceTB/SmolLM2-135M-Instruct").hex()
INITIAL_CID = "bafkreiinitialglobaladapter"
INITIAL_DIGEST = "0x" + "11" * 32
DIGEST_A = "0x" + "aa" * 32
DIGEST_B = "0x" + "bb" * 32
GLOBAL_DIGEST = "0x" + "22" * 32
AGGREGATOR_ROLE = keccak(text="AGGREGATOR_ROLE")
SALT_A = "0x" + "5a" * 32
SALT_B = "0x" + "5b" * 32
# ILoRALedger.RoundState
UNOPENED, OPEN, REVEALING, CLOSED, FINALIZED = range(5)


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


def create_task(ledger, token, admin, sponsor, nodes):
    """A task created and funded by `sponsor` and joined by `nodes`; returns (tx, task id)."""
    token.transfer(sponsor, FUNDING, {"from": admin})
    params = (
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
    )
    created = ledger.createTask(params, {"from": sponsor})
    task_id = created.return_value
    token.approve(ledger, FUNDING, {"from": sponsor})
    ledger.fundTask(task_id, FUNDING, {"from": sponsor})
    for node in nodes:
        token.transfer(node, MIN_STAKE, {"from": admin})
        token.approve(ledger, MIN_STAKE, {"from": node})
        ledger.join(task_id, {"from": node})
    return created, task_id


def finalization(root, total, accepted, rejected=0):
    return (
        "bafkreiglobalround",
        GLOBAL_DIGEST,
        "bafkreireportround",
        accepted,
        rejected,
        hex32(root),
        total,
    )


def run_round(ledger, aggregator, task_id, submitters, root, total):
    """Open round 1, let `submitters` commit then reveal, finalize it with `root`; returns the
    round."""
    round_ = ledger.openRound(task_id, {"from": aggregator}).return_value
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
    ledger.finalizeRound(
        task_id, round_, finalization(root, total, len(submitters)), {"from": aggregator}
    )
    return round_


@pytest.fixture(scope="module")
def task_id(ledger, token, admin, sponsor, node_a, node_b):
    """Task 1, funded, joined by node_a and node_b, no round opened yet."""
    return create_task(ledger, token, admin, sponsor, (node_a, node_b))[1]


@pytest.fixture
def open_round(ledger, aggregator, task_id):
    """Round 1 of the task, open."""
    return ledger.openRound(task_id, {"from": aggregator}).return_value


@pytest.fixture
def single_leaf_round(ledger, aggregator, task_id, node_a):
    """Round 1 finalized with a one-leaf reward tree paying node_a: root = leaf, empty proof."""
    amount = 400 * 10**18
    round_ = run_round(
        ledger, aggregator, task_id, (node_a,), reward_leaf(task_id, 1, node_a, amount), amount
    )
    return round_, amount


# ----------------------------------------------------------------- happy path


def test_round_lifecycle_pays_rewards_through_merkle_claims(
    admin, aggregator, sponsor, node_a, node_b, token, ledger
):
    created, task_id = create_task(ledger, token, admin, sponsor, (node_a, node_b))
    assert ledger.taskCount() == task_id
    assert dict(created.events["TaskCreated"]) == {
        "taskId": task_id,
        "sponsor": sponsor,
        "token": token,
        "baseModelHash": BASE_MODEL_HASH,
        "initialGlobalCid": INITIAL_CID,
        "initialGlobalDigest": INITIAL_DIGEST,
        "rewardPerRound": REWARD_PER_ROUND,
        "minStake": MIN_STAKE,
        "submissionWindow": WINDOW,
        "revealWindow": REVEAL_WINDOW,
        "maxExamples": MAX_EXAMPLES,
        "maxRounds": MAX_ROUNDS,
    }
    task = ledger.getTask(task_id)
    assert (task["funded"], task["activeNodes"]) == (FUNDING, 2)
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
    # every active node committed: the commit phase is over before its deadline
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

    # every commitment revealed: the round is closed and may be finalized before the deadline
    assert ledger.roundState(task_id, round_) == CLOSED
    amount_a, amount_b = 600 * 10**18, 400 * 10**18
    leaf_a = reward_leaf(task_id, round_, node_a, amount_a)
    leaf_b = reward_leaf(task_id, round_, node_b, amount_b)
    assert ledger.rewardLeaf(task_id, round_, node_a, amount_a) == hex32(leaf_a)
    root = pair_root(leaf_a, leaf_b)
    finalized = ledger.finalizeRound(
        task_id, round_, finalization(root, amount_a + amount_b, accepted=2), {"from": aggregator}
    )
    assert dict(finalized.events["RoundFinalized"]) == {
        "taskId": task_id,
        "round": round_,
        "globalCid": "bafkreiglobalround",
        "globalDigest": GLOBAL_DIGEST,
        "reportCid": "bafkreireportround",
        "accepted": 2,
        "rejected": 0,
        "rewardRoot": hex32(root),
        "rewardTotal": amount_a + amount_b,
    }
    assert ledger.getTask(task_id)["globalDigest"] == GLOBAL_DIGEST
    assert ledger.roundState(task_id, round_) == FINALIZED

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
    assert token.balanceOf(ledger) == FUNDING + 2 * MIN_STAKE - amount_a - amount_b


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


def test_openRound_reverts_when_caller_lacks_aggregator_role(ledger, task_id, outsider):
    with brownie.reverts(
        typed_error("AccessControlUnauthorizedAccount", outsider, AGGREGATOR_ROLE)
    ):
        ledger.openRound(task_id, {"from": outsider})


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
    ledger, aggregator, task_id, single_leaf_round
):
    round_, amount = single_leaf_round
    assert ledger.roundState(task_id, round_) == FINALIZED
    with brownie.reverts(
        typed_error("LedgerUnexpectedRoundState", task_id, round_, FINALIZED, states(CLOSED))
    ):
        ledger.finalizeRound(
            task_id, round_, finalization(b"\x01" * 32, amount, 1), {"from": aggregator}
        )


def test_finalizeRound_reverts_when_window_not_over(ledger, aggregator, task_id, open_round):
    # node_a and node_b joined, neither submitted, the window runs for an hour
    assert ledger.roundState(task_id, open_round) == OPEN
    with brownie.reverts(
        typed_error("LedgerUnexpectedRoundState", task_id, open_round, OPEN, states(CLOSED))
    ):
        ledger.finalizeRound(
            task_id, open_round, finalization(b"\x01" * 32, 0, 0), {"from": aggregator}
        )


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


def test_claim_reverts_when_round_not_finalized(ledger, task_id, open_round, node_a):
    with brownie.reverts(
        typed_error("LedgerUnexpectedRoundState", task_id, open_round, OPEN, states(FINALIZED))
    ):
        ledger.claim(task_id, open_round, 1, [], {"from": node_a})
