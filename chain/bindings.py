"""Typed bindings for the contracts: the one place ABI ``Any`` becomes real types.

``Ledger`` wraps LoRALedger, ``Token`` an ERC-20 (LedgerToken or any other). Reads return
frozen dataclasses; transactions take the signing account and return the receipt. Reverts
raise the :class:`chain.errors.ContractRevert` subclass of the Solidity error
(e.g. ``chain.errors.LedgerUnexpectedRoundState``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.logs import DISCARD as _DISCARD
from web3.types import TxReceipt

from chain.compiler import load_artifact
from chain.merkle import SlashEntry
from chain.network import Chain
from chain.round_state import RoundState
from loraledger.errors import ConfigError
from loraledger.privacy import ACCOUNTANTS, NO_PRIVACY, PRIVACY_MODES, TaskPrivacy

ZERO_DIGEST = b"\x00" * 32
#: Most examples a node may claim per round when a task does not say (``TaskParams``).
DEFAULT_MAX_EXAMPLES = 100_000
#: Seconds after finalization during which a result can be challenged, when a task does not say.
DEFAULT_CHALLENGE_WINDOW = 600
#: Seconds after the challenge window during which a round's slashes can be executed.
DEFAULT_SLASH_WINDOW = 600
#: Seconds of inactivity after which a round can be abandoned or its task cancelled.
DEFAULT_GRACE_PERIOD = 3600


def base_model_hash(model_id: str) -> bytes:
    """keccak256 of a base model identifier, as tasks record it."""
    return bytes(Web3.keccak(text=model_id))


_FIELD = (1 << 52) - 1  # a packed privacy policy's fixed-point fields (ILoRALedger.sol)
_MILLIONTHS = 1_000_000
_DELTA_UNITS = 10**15


def _fixed(value: float, units: int, what: str) -> int:
    scaled = round(value * units)
    if not 0 < scaled <= _FIELD:
        raise ConfigError(
            f"the privacy policy's {what} {value:g} is outside what the chain records "
            f"(1/{units:g} to {_FIELD / units:g})"
        )
    return scaled


def pack_privacy(policy: TaskPrivacy) -> int:
    """``policy`` as ``TaskParams.privacy`` records it (one word: ILoRALedger.sol's layout).
    Numbers are rounded to the chain's fixed point: :func:`unpack_privacy` of the result is
    the policy nodes and auditors will read, so a task's creator checks that one."""
    if not policy.required:
        return 0
    if policy.min_nodes > 0xFFFFFFFF:
        raise ConfigError(
            f"the privacy policy's minimum of {policy.min_nodes} nodes is more than the chain "
            "records (2^32 - 1)"
        )
    return (
        PRIVACY_MODES.index(policy.mode)
        | ACCOUNTANTS.index(policy.accountant) << 8
        | policy.min_nodes << 16
        | _fixed(policy.clip_norm, _MILLIONTHS, "clipping bound") << 48
        | _fixed(policy.noise_multiplier, _MILLIONTHS, "noise multiplier") << 100
        | _fixed(policy.target_epsilon, _MILLIONTHS, "target epsilon") << 152
        | _fixed(policy.delta, _DELTA_UNITS, "delta") << 204
    )


def unpack_privacy(word: int) -> TaskPrivacy:
    """The policy a ``TaskParams.privacy`` word records (the contract checked its shape)."""
    mode = word & 0xFF
    accountant = word >> 8 & 0xFF
    if mode >= len(PRIVACY_MODES) or accountant >= len(ACCOUNTANTS):
        raise ConfigError(f"unknown privacy policy word {word:#x}")
    return TaskPrivacy(
        mode=PRIVACY_MODES[mode],
        accountant=ACCOUNTANTS[accountant],
        min_nodes=word >> 16 & 0xFFFFFFFF,
        clip_norm=(word >> 48 & _FIELD) / _MILLIONTHS,
        noise_multiplier=(word >> 100 & _FIELD) / _MILLIONTHS,
        target_epsilon=(word >> 152 & _FIELD) / _MILLIONTHS,
        delta=(word >> 204 & _FIELD) / _DELTA_UNITS,
    )


def commitment_hash(
    task_id: int, round_: int, node: str, digest: bytes, num_examples: int, salt: bytes
) -> bytes:
    """The commitment ``commitUpdate`` takes for an update, as the contract's ``commitmentOf``
    computes it: ``keccak256(abi.encode(taskId, round, node, digest, numExamples, salt))``."""
    if len(digest) != 32 or len(salt) != 32:
        raise ValueError(
            f"digest and salt must be 32 bytes, got {len(digest)} and {len(salt)} bytes"
        )
    encoded = abi_encode(
        ["uint256", "uint32", "address", "bytes32", "uint64", "bytes32"],
        [task_id, round_, Web3.to_checksum_address(node), digest, num_examples, salt],
    )
    return bytes(Web3.keccak(encoded))


@dataclass(frozen=True)
class TaskParams:
    """What a sponsor chooses for a task. ``reveal_window=None`` gives the reveal phase as many
    seconds as the commit phase (``submission_window``). ``aggregator`` opens rounds and
    proposes results; ``quorum`` of the ``validators`` must sign a result (the contract checks
    that it is a majority)."""

    base_model_hash: bytes
    initial_global_cid: str
    initial_global_digest: bytes
    token: str
    reward_per_round: int
    min_stake: int
    submission_window: int
    max_rounds: int
    aggregator: str
    validators: tuple[str, ...]
    quorum: int
    reveal_window: int | None = None
    max_examples: int = DEFAULT_MAX_EXAMPLES
    aggregator_bond: int = 0
    validator_bond: int = 0
    validator_share_bps: int = 0
    challenge_window: int = DEFAULT_CHALLENGE_WINDOW
    slash_window: int = DEFAULT_SLASH_WINDOW
    grace_period: int = DEFAULT_GRACE_PERIOD
    privacy: TaskPrivacy = NO_PRIVACY  # what DP the task requires (docs/privacy.md)

    def __post_init__(self) -> None:
        # a list is welcome; kept as a tuple so the params stay hashable and immutable
        object.__setattr__(self, "validators", tuple(self.validators))

    @property
    def effective_reveal_window(self) -> int:
        return self.submission_window if self.reveal_window is None else self.reveal_window

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.base_model_hash,
            self.initial_global_cid,
            self.initial_global_digest,
            Web3.to_checksum_address(self.token),
            self.reward_per_round,
            self.min_stake,
            self.submission_window,
            self.effective_reveal_window,
            self.max_examples,
            self.max_rounds,
            Web3.to_checksum_address(self.aggregator),
            [Web3.to_checksum_address(v) for v in self.validators],
            self.quorum,
            self.aggregator_bond,
            self.validator_bond,
            self.validator_share_bps,
            self.challenge_window,
            self.slash_window,
            self.grace_period,
            pack_privacy(self.privacy),
        )


@dataclass(frozen=True)
class Task:
    task_id: int
    sponsor: ChecksumAddress
    token: ChecksumAddress
    aggregator: ChecksumAddress
    base_model_hash: bytes
    global_digest: bytes
    reward_per_round: int
    min_stake: int
    funded: int
    reserved: int
    paid: int
    withdrawn: int
    aggregator_bond: int
    validator_bond: int
    submission_window: int
    reveal_window: int
    max_examples: int
    challenge_window: int
    slash_window: int
    grace_period: int
    created_at: int
    slashable_until: int  # last time a settled round before the last one opened can slash
    max_rounds: int
    rounds_opened: int
    active_nodes: int  # members that joined and did not start leaving
    quorum: int
    validator_share_bps: int
    cancelled: bool

    @property
    def available(self) -> int:
        """Pool not reserved by finalized rounds nor withdrawn."""
        return self.funded - self.reserved - self.withdrawn


@dataclass(frozen=True)
class Round:
    task_id: int
    round: int
    start_digest: bytes
    result_digest: bytes
    reward_root: bytes
    reward_total: int
    claimed: int
    result_hash: bytes  # of the finalized result (zero until finalized, and once voided)
    slash_root: bytes
    opened_at: int
    deadline: int  # last chain time at which commitments are accepted
    reveal_deadline: int  # last chain time at which commitments are revealed
    finalized_at: int  # zero until finalized, and again once voided
    voided_at: int  # last time a challenge voided its finalization (zero: never)
    eligible: int  # members that may commit (active at opening, less those that left uncommitted)
    commits: int
    reveals: int
    accepted: int
    rejected: int
    epoch: int  # finalizations voided so far; results sign it
    scores_bitmap: int  # bit i: validators[i] posted its score sheet
    signers: int  # bit i: validators[i] signed the finalized result
    abandoned: bool

    @property
    def finalized(self) -> bool:
        """Whether a result stands (``FINALIZED`` or ``SETTLED``; see ``Ledger.round_state``)."""
        return self.finalized_at != 0

    @property
    def all_committed(self) -> bool:
        """Every eligible member committed (what ends the commit phase before its deadline)."""
        return self.commits >= self.eligible

    @property
    def submissions(self) -> int:
        """The updates the round's result counts: its reveals (``accepted + rejected`` must
        equal it); commitments never revealed count for nothing."""
        return self.reveals

    @property
    def unrevealed(self) -> int:
        return self.commits - self.reveals


@dataclass(frozen=True)
class Member:
    joined: bool  # a member (until its stake is withdrawn)
    leaving: bool  # started leaving: no longer active, stake still slashable
    stake: int
    joined_round: int  # rounds opened when it joined: it commits only in later rounds
    last_commit_round: int  # zero: never committed
    slashable_until: int  # last time an earlier round it committed in can slash it


@dataclass(frozen=True)
class Submission:
    """A node's commitment in a round and what its reveal showed (zeros until revealed)."""

    commitment: bytes
    digest: bytes
    num_examples: int
    committed_at: int
    revealed_at: int

    @property
    def committed(self) -> bool:
        return self.commitment != ZERO_DIGEST

    @property
    def revealed(self) -> bool:
        return self.revealed_at != 0

    @property
    def exists(self) -> bool:
        """Whether the node revealed an update in the round (the round counts it)."""
        return self.revealed


@dataclass(frozen=True)
class Finalization:
    """A round's result: what is proposed, signed by validators and finalized."""

    global_cid: str
    global_digest: bytes
    report_cid: str
    accepted: int
    rejected: int
    reward_root: bytes
    reward_total: int
    slash_root: bytes = ZERO_DIGEST  # Merkle root of the round's slashes (zero: none)
    scores_bitmap: int = 0  # bit i: validators[i]'s score sheet was used

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.global_cid,
            self.global_digest,
            self.report_cid,
            self.accepted,
            self.rejected,
            self.reward_root,
            self.reward_total,
            self.slash_root,
            self.scores_bitmap,
        )

    @classmethod
    def from_abi(cls, raw: Any) -> Finalization:
        """From the ABI-decoded struct (a tuple, or a mapping as in event arguments)."""
        if isinstance(raw, Mapping):
            raw = tuple(raw[name] for name in _FINALIZATION_FIELDS)
        (g_cid, g_digest, r_cid, accepted, rejected, root, total, slash_root, bitmap) = raw
        return cls(
            g_cid,
            bytes(g_digest),
            r_cid,
            int(accepted),
            int(rejected),
            bytes(root),
            int(total),
            bytes(slash_root),
            int(bitmap),
        )


_FINALIZATION_FIELDS = (
    "globalCid",
    "globalDigest",
    "reportCid",
    "accepted",
    "rejected",
    "rewardRoot",
    "rewardTotal",
    "slashRoot",
    "scoresBitmap",
)


@dataclass(frozen=True)
class Attestation:
    """A validator's EIP-712 signature of a result (see :mod:`chain.attest`)."""

    validator: str
    signature: bytes

    def as_tuple(self) -> tuple[Any, ...]:
        return (Web3.to_checksum_address(self.validator), self.signature)


@dataclass(frozen=True)
class Bond:
    """The bond of a task's aggregator or validator."""

    posted: bool
    amount: int  # held now (zero once slashed or withdrawn)
    slashed: bool = False  # taken into the pool: the account may no longer act for the task

    @property
    def active(self) -> bool:
        """Posted and not slashed: the account may act for the task."""
        return self.posted and not self.slashed


@dataclass(frozen=True)
class Proposal:
    """A proposed result of a round (``proposalOf``); ``proposer`` is the zero address when
    nothing was proposed under that hash."""

    proposer: ChecksumAddress
    epoch: int
    scores_bitmap: int
    attesters: int  # bit i: validators[i] signed it
    attestations: int
    slashed: bool  # its proposer's and signers' bonds were slashed
    outcome_hash: bytes = ZERO_DIGEST  # of its reward root, total and counts

    @property
    def exists(self) -> bool:
        return int(self.proposer, 16) != 0

    def attested_by(self, index: int) -> bool:
        """Whether the validator at ``index`` (in the task's order) signed it."""
        return index >= 0 and bool(self.attesters >> index & 1)


@dataclass(frozen=True)
class ClaimRequest:
    task_id: int
    round: int
    amount: int
    proof: tuple[bytes, ...]


class Ledger:
    """The LoRALedger contract at ``address`` on ``chain``."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = Web3.to_checksum_address(address)
        self.contract = chain.w3.eth.contract(
            address=self.address, abi=load_artifact("LoRALedger").abi
        )

    # ------------------------------------------------------------ reads

    def task_count(self) -> int:
        return int(self.chain.call(self.contract.functions.taskCount()))

    def task(self, task_id: int) -> Task:
        raw = self.chain.call(self.contract.functions.getTask(task_id))
        return Task(task_id, *raw)

    def round(self, task_id: int, round_: int) -> Round:
        raw = self.chain.call(self.contract.functions.getRound(task_id, round_))
        return Round(task_id, round_, *raw)

    def member(self, task_id: int, node: str) -> Member:
        return Member(
            *self.chain.call(
                self.contract.functions.getMember(task_id, Web3.to_checksum_address(node))
            )
        )

    def submission(self, task_id: int, round_: int, node: str) -> Submission:
        fn = self.contract.functions.getSubmission(task_id, round_, Web3.to_checksum_address(node))
        return Submission(*self.chain.call(fn))

    def has_claimed(self, task_id: int, round_: int, node: str) -> bool:
        fn = self.contract.functions.hasClaimed(task_id, round_, Web3.to_checksum_address(node))
        return bool(self.chain.call(fn))

    def is_complete(self, task_id: int) -> bool:
        return bool(self.chain.call(self.contract.functions.isComplete(task_id)))

    def round_state(self, task_id: int, round_: int) -> RoundState:
        """The state of ``round_`` now, as the contract decides it (``roundState``)."""
        return RoundState(self.chain.call(self.contract.functions.roundState(task_id, round_)))

    def open_round(self, task_id: int) -> int:
        """The round opened last while it is not finalized (``OPEN``, ``REVEALING`` or
        ``CLOSED``: accepting commitments or reveals, or awaiting a result), 0 when none."""
        last = self.task(task_id).rounds_opened
        return last if self.round_state(task_id, last).pending else 0

    def validators(self, task_id: int) -> tuple[ChecksumAddress, ...]:
        """The task's validators, in the order of their bits in bitmaps (``validatorsOf``)."""
        raw = self.chain.call(self.contract.functions.validatorsOf(task_id))
        return tuple(Web3.to_checksum_address(v) for v in raw)

    def bond_of(self, task_id: int, account: str) -> Bond:
        raw = self.chain.call(
            self.contract.functions.bondOf(task_id, Web3.to_checksum_address(account))
        )
        posted, slashed, amount = raw
        return Bond(bool(posted), int(amount), bool(slashed))

    def scores_of(self, task_id: int, round_: int, validator: str) -> bytes:
        """The digest of the score sheet ``validator`` posted for ``round_`` (zero: none)."""
        fn = self.contract.functions.scoresOf(task_id, round_, Web3.to_checksum_address(validator))
        return bytes(self.chain.call(fn))

    def proposal(self, task_id: int, round_: int, result_hash: bytes) -> Proposal:
        raw = self.chain.call(self.contract.functions.proposalOf(task_id, round_, result_hash))
        proposer, epoch, bitmap, attesters, attestations, slashed, outcome = raw
        return Proposal(
            Web3.to_checksum_address(proposer),
            int(epoch),
            int(bitmap),
            int(attesters),
            int(attestations),
            bool(slashed),
            bytes(outcome),
        )

    def result_hash(self, task_id: int, round_: int, result: Finalization) -> bytes:
        """The contract's ``resultHashOf`` ``result`` in the round's current epoch (a call;
        :func:`chain.attest.result_hash` computes the same offline)."""
        fn = self.contract.functions.resultHashOf(task_id, round_, result.as_tuple())
        return bytes(self.chain.call(fn))

    def attestation_digest(
        self,
        task_id: int,
        round_: int,
        result_hash: bytes,
        result: Finalization,
        scores_digest: bytes,
    ) -> bytes:
        """The EIP-712 digest a validator signs (``attestationDigest``; a call:
        :func:`chain.attest.attestation_digest` computes the same offline)."""
        fn = self.contract.functions.attestationDigest(
            task_id,
            round_,
            result_hash,
            result.global_digest,
            bytes(Web3.keccak(text=result.report_cid)),
            result.reward_root,
            scores_digest,
        )
        return bytes(self.chain.call(fn))

    def commitment_of(
        self, task_id: int, round_: int, node: str, digest: bytes, num_examples: int, salt: bytes
    ) -> bytes:
        """The contract's ``commitmentOf`` (a call; :func:`commitment_hash` computes the same
        offline)."""
        fn = self.contract.functions.commitmentOf(
            task_id, round_, Web3.to_checksum_address(node), digest, num_examples, salt
        )
        return bytes(self.chain.call(fn))

    def reward_leaf(self, task_id: int, round_: int, node: str, amount: int) -> bytes:
        """The contract's ``rewardLeaf`` (:func:`chain.merkle.leaf_hash` offline)."""
        fn = self.contract.functions.rewardLeaf(
            task_id, round_, Web3.to_checksum_address(node), amount
        )
        return bytes(self.chain.call(fn))

    def slash_leaf(self, task_id: int, round_: int, entry: SlashEntry) -> bytes:
        """The contract's ``slashLeaf`` (:func:`chain.merkle.slash_leaf_hash` offline)."""
        fn = self.contract.functions.slashLeaf(
            task_id,
            round_,
            Web3.to_checksum_address(entry.node),
            entry.amount,
            entry.reason,
            entry.evidence_cid,
        )
        return bytes(self.chain.call(fn))

    # ------------------------------------------------------------ transactions: tasks

    def create_task(self, params: TaskParams, sponsor: LocalAccount) -> tuple[int, TxReceipt]:
        receipt = self.chain.send(self.contract.functions.createTask(params.as_tuple()), sponsor)
        (event,) = self.contract.events.TaskCreated().process_receipt(receipt, errors=_DISCARD)
        return int(event["args"]["taskId"]), receipt

    def fund_task(self, task_id: int, amount: int, funder: LocalAccount) -> TxReceipt:
        return self.chain.send(self.contract.functions.fundTask(task_id, amount), funder)

    def cancel_task(self, task_id: int, sponsor: LocalAccount) -> TxReceipt:
        """``cancelTask``: stop a task that cannot go on (no round in flight)."""
        return self.chain.send(self.contract.functions.cancelTask(task_id), sponsor)

    def withdraw_remainder(self, task_id: int, sponsor: LocalAccount) -> TxReceipt:
        return self.chain.send(self.contract.functions.withdrawRemainder(task_id), sponsor)

    def post_bond(self, task_id: int, signer: LocalAccount) -> TxReceipt:
        """``postBond``: the aggregator or a validator locks its bond (approve the token first)."""
        return self.chain.send(self.contract.functions.postBond(task_id), signer)

    def withdraw_bond(self, task_id: int, signer: LocalAccount) -> TxReceipt:
        return self.chain.send(self.contract.functions.withdrawBond(task_id), signer)

    # ------------------------------------------------------------ transactions: nodes

    def join(self, task_id: int, node: LocalAccount) -> TxReceipt:
        return self.chain.send(self.contract.functions.join(task_id), node)

    def leave(self, task_id: int, node: LocalAccount) -> TxReceipt:
        """``leave``: start unbonding (the stake stays slashable until :meth:`withdraw_stake`)."""
        return self.chain.send(self.contract.functions.leave(task_id), node)

    def withdraw_stake(self, task_id: int, node: LocalAccount) -> TxReceipt:
        return self.chain.send(self.contract.functions.withdrawStake(task_id), node)

    # ------------------------------------------------------------ transactions: rounds

    def open_next_round(self, task_id: int, aggregator: LocalAccount) -> tuple[int, TxReceipt]:
        receipt = self.chain.send(self.contract.functions.openRound(task_id), aggregator)
        (event,) = self.contract.events.RoundOpened().process_receipt(receipt, errors=_DISCARD)
        return int(event["args"]["round"]), receipt

    def commit_update(
        self, task_id: int, round_: int, commitment: bytes, signer: LocalAccount
    ) -> TxReceipt:
        """``commitUpdate``: commit to an update (see :func:`commitment_hash`)."""
        fn = self.contract.functions.commitUpdate(task_id, round_, commitment)
        return self.chain.send(fn, signer)

    def reveal_update(
        self,
        task_id: int,
        round_: int,
        cid: str,
        digest: bytes,
        num_examples: int,
        salt: bytes,
        signer: LocalAccount,
    ) -> TxReceipt:
        """``revealUpdate``: reveal the update committed to in a ``REVEALING`` round."""
        fn = self.contract.functions.revealUpdate(task_id, round_, cid, digest, num_examples, salt)
        return self.chain.send(fn, signer)

    def post_scores(
        self, task_id: int, round_: int, digest: bytes, cid: str, signer: LocalAccount
    ) -> TxReceipt:
        """``postScores``: a validator's score sheet for a ``CLOSED`` round."""
        fn = self.contract.functions.postScores(task_id, round_, digest, cid)
        return self.chain.send(fn, signer)

    def propose_result(
        self, task_id: int, round_: int, result: Finalization, signer: LocalAccount
    ) -> bytes:
        """``proposeResult``; returns the result's hash (what validators sign)."""
        fn = self.contract.functions.proposeResult(task_id, round_, result.as_tuple())
        receipt = self.chain.send(fn, signer)
        (event,) = self.contract.events.ResultProposed().process_receipt(receipt, errors=_DISCARD)
        return bytes(event["args"]["resultHash"])

    def attest(
        self,
        task_id: int,
        round_: int,
        result_hash: bytes,
        attestation: Attestation,
        signer: LocalAccount,
    ) -> TxReceipt:
        """``attest``: relay a validator's signature (``signer`` may be anyone)."""
        fn = self.contract.functions.attest(task_id, round_, result_hash, *attestation.as_tuple())
        return self.chain.send(fn, signer)

    def finalize_round(
        self,
        task_id: int,
        round_: int,
        result: Finalization,
        attestations: Sequence[Attestation],
        signer: LocalAccount,
    ) -> TxReceipt:
        """``finalizeRound``: propose (unless proposed) and attest ``result`` at once; reverts
        ``LedgerQuorumNotReached`` unless the signatures reach the task's quorum."""
        fn = self.contract.functions.finalizeRound(
            task_id, round_, result.as_tuple(), [a.as_tuple() for a in attestations]
        )
        return self.chain.send(fn, signer)

    def challenge_reward(
        self,
        task_id: int,
        round_: int,
        account: str,
        amount: int,
        proof: Sequence[bytes],
        signer: LocalAccount,
    ) -> TxReceipt:
        """``challengeReward``: void a ``FINALIZED`` round whose reward table pays ``account``,
        which took no part in it."""
        fn = self.contract.functions.challengeReward(
            task_id, round_, Web3.to_checksum_address(account), amount, list(proof)
        )
        return self.chain.send(fn, signer)

    def slash_conflicting(
        self, task_id: int, round_: int, result_hash: bytes, signer: LocalAccount
    ) -> TxReceipt:
        """``slashConflicting``: slash a proposal that conflicts with the finalized result."""
        fn = self.contract.functions.slashConflicting(task_id, round_, result_hash)
        return self.chain.send(fn, signer)

    def execute_slash(
        self,
        task_id: int,
        round_: int,
        entry: SlashEntry,
        proof: Sequence[bytes],
        signer: LocalAccount,
    ) -> TxReceipt:
        """``executeSlash``: execute one slash of a ``SETTLED`` round's slash root."""
        fn = self.contract.functions.executeSlash(
            task_id,
            round_,
            Web3.to_checksum_address(entry.node),
            entry.amount,
            entry.reason,
            entry.evidence_cid,
            list(proof),
        )
        return self.chain.send(fn, signer)

    def abandon_round(self, task_id: int, round_: int, signer: LocalAccount) -> TxReceipt:
        """``abandonRound``: give up a round nobody finalized within its grace period."""
        return self.chain.send(self.contract.functions.abandonRound(task_id, round_), signer)

    # ------------------------------------------------------------ transactions: claims

    def claim(self, request: ClaimRequest, node: LocalAccount) -> TxReceipt:
        fn = self.contract.functions.claim(
            request.task_id, request.round, request.amount, list(request.proof)
        )
        return self.chain.send(fn, node)

    def claim_batch(self, requests: list[ClaimRequest], node: LocalAccount) -> TxReceipt:
        claims = [(r.task_id, r.round, r.amount, list(r.proof)) for r in requests]
        return self.chain.send(self.contract.functions.claimBatch(claims), node)


class Token:
    """An ERC-20 at ``address`` (the ABI of LedgerToken covers the ERC-20 surface)."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = Web3.to_checksum_address(address)
        self.contract = chain.w3.eth.contract(
            address=self.address, abi=load_artifact("LedgerToken").abi
        )

    def balance_of(self, account: str) -> int:
        return int(
            self.chain.call(self.contract.functions.balanceOf(Web3.to_checksum_address(account)))
        )

    def symbol(self) -> str:
        """The ERC-20 metadata symbol (``LLT`` for LedgerToken)."""
        return str(self.chain.call(self.contract.functions.symbol()))

    def decimals(self) -> int:
        return int(self.chain.call(self.contract.functions.decimals()))

    def allowance(self, owner: str, spender: str) -> int:
        fn = self.contract.functions.allowance(
            Web3.to_checksum_address(owner), Web3.to_checksum_address(spender)
        )
        return int(self.chain.call(fn))

    def approve(self, spender: str, amount: int, owner: LocalAccount) -> TxReceipt:
        return self.chain.send(
            self.contract.functions.approve(Web3.to_checksum_address(spender), amount), owner
        )

    def transfer(self, to: str, amount: int, sender: LocalAccount) -> TxReceipt:
        return self.chain.send(
            self.contract.functions.transfer(Web3.to_checksum_address(to), amount), sender
        )

    def mint(self, to: str, amount: int, minter: LocalAccount) -> TxReceipt:
        return self.chain.send(
            self.contract.functions.mint(Web3.to_checksum_address(to), amount), minter
        )
