"""Typed bindings for the contracts: the one place ABI ``Any`` becomes real types.

``Ledger`` wraps LoRALedger, ``Token`` an ERC-20 (LedgerToken or any other). Reads return
frozen dataclasses; transactions take the signing account and return the receipt. Reverts
raise the :class:`chain.errors.ContractRevert` subclass of the Solidity error
(e.g. ``chain.errors.LedgerUnexpectedRoundState``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.logs import DISCARD as _DISCARD
from web3.types import TxReceipt

from chain.compiler import load_artifact
from chain.network import Chain
from chain.round_state import RoundState

ZERO_DIGEST = b"\x00" * 32
#: Most examples a node may claim per round when a task does not say (``TaskParams``).
DEFAULT_MAX_EXAMPLES = 100_000


def base_model_hash(model_id: str) -> bytes:
    """keccak256 of a base model identifier, as tasks record it."""
    return bytes(Web3.keccak(text=model_id))


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
    seconds as the commit phase (``submission_window``)."""

    base_model_hash: bytes
    initial_global_cid: str
    initial_global_digest: bytes
    token: str
    reward_per_round: int
    min_stake: int
    submission_window: int
    max_rounds: int
    reveal_window: int | None = None
    max_examples: int = DEFAULT_MAX_EXAMPLES

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
        )


@dataclass(frozen=True)
class Task:
    task_id: int
    sponsor: ChecksumAddress
    token: ChecksumAddress
    base_model_hash: bytes
    global_digest: bytes
    reward_per_round: int
    min_stake: int
    funded: int
    reserved: int
    paid: int
    withdrawn: int
    submission_window: int
    reveal_window: int
    max_examples: int
    max_rounds: int
    rounds_opened: int
    active_nodes: int

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
    opened_at: int
    deadline: int  # last chain time at which commitments are accepted
    reveal_deadline: int  # last chain time at which commitments are revealed
    commits: int
    reveals: int
    accepted: int
    rejected: int
    all_committed: bool
    finalized: bool

    @property
    def submissions(self) -> int:
        """The updates the round's finalization counts: its reveals (``accepted + rejected``
        must equal it); commitments never revealed count for nothing."""
        return self.reveals

    @property
    def unrevealed(self) -> int:
        return self.commits - self.reveals


@dataclass(frozen=True)
class Member:
    joined: bool
    stake: int


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
    global_cid: str
    global_digest: bytes
    report_cid: str
    accepted: int
    rejected: int
    reward_root: bytes
    reward_total: int

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            self.global_cid,
            self.global_digest,
            self.report_cid,
            self.accepted,
            self.rejected,
            self.reward_root,
            self.reward_total,
        )


@dataclass(frozen=True)
class ClaimRequest:
    task_id: int
    round: int
    amount: int
    proof: tuple[bytes, ...]


class Ledger:
    """The LoRALedger contract at ``address`` on ``chain``."""

    AGGREGATOR_ROLE = bytes(Web3.keccak(text="AGGREGATOR_ROLE"))
    DEFAULT_ADMIN_ROLE = ZERO_DIGEST

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
        ``CLOSED``: accepting commitments or reveals, or awaiting finalization), 0 when none."""
        last = self.task(task_id).rounds_opened
        return last if self.round_state(task_id, last).pending else 0

    def has_role(self, role: bytes, account: str) -> bool:
        return bool(
            self.chain.call(
                self.contract.functions.hasRole(role, Web3.to_checksum_address(account))
            )
        )

    # ------------------------------------------------------------ transactions

    def create_task(self, params: TaskParams, sponsor: LocalAccount) -> tuple[int, TxReceipt]:
        receipt = self.chain.send(self.contract.functions.createTask(params.as_tuple()), sponsor)
        (event,) = self.contract.events.TaskCreated().process_receipt(receipt, errors=_DISCARD)
        return int(event["args"]["taskId"]), receipt

    def fund_task(self, task_id: int, amount: int, funder: LocalAccount) -> TxReceipt:
        return self.chain.send(self.contract.functions.fundTask(task_id, amount), funder)

    def join(self, task_id: int, node: LocalAccount) -> TxReceipt:
        return self.chain.send(self.contract.functions.join(task_id), node)

    def leave(self, task_id: int, node: LocalAccount) -> TxReceipt:
        return self.chain.send(self.contract.functions.leave(task_id), node)

    def open_next_round(self, task_id: int, aggregator: LocalAccount) -> tuple[int, TxReceipt]:
        receipt = self.chain.send(self.contract.functions.openRound(task_id), aggregator)
        (event,) = self.contract.events.RoundOpened().process_receipt(receipt, errors=_DISCARD)
        return int(event["args"]["round"]), receipt

    def commitment_of(
        self, task_id: int, round_: int, node: str, digest: bytes, num_examples: int, salt: bytes
    ) -> bytes:
        """The contract's ``commitmentOf`` (a call; :func:`commitment_hash` computes the same
        offline)."""
        fn = self.contract.functions.commitmentOf(
            task_id, round_, Web3.to_checksum_address(node), digest, num_examples, salt
        )
        return bytes(self.chain.call(fn))

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

    def finalize_round(
        self, task_id: int, round_: int, result: Finalization, aggregator: LocalAccount
    ) -> TxReceipt:
        fn = self.contract.functions.finalizeRound(task_id, round_, result.as_tuple())
        return self.chain.send(fn, aggregator)

    def claim(self, request: ClaimRequest, node: LocalAccount) -> TxReceipt:
        fn = self.contract.functions.claim(
            request.task_id, request.round, request.amount, list(request.proof)
        )
        return self.chain.send(fn, node)

    def claim_batch(self, requests: list[ClaimRequest], node: LocalAccount) -> TxReceipt:
        claims = [(r.task_id, r.round, r.amount, list(r.proof)) for r in requests]
        return self.chain.send(self.contract.functions.claimBatch(claims), node)

    def slash(
        self,
        task_id: int,
        round_: int,
        node: str,
        amount: int,
        reason: int,
        evidence_cid: str,
        signer: LocalAccount,
    ) -> TxReceipt:
        """``slash``: move ``amount`` of ``node``'s stake into the pool, for what it committed
        in the finalized round ``round_``."""
        fn = self.contract.functions.slash(
            task_id, round_, Web3.to_checksum_address(node), amount, reason, evidence_cid
        )
        return self.chain.send(fn, signer)

    def withdraw_remainder(self, task_id: int, sponsor: LocalAccount) -> TxReceipt:
        return self.chain.send(self.contract.functions.withdrawRemainder(task_id), sponsor)

    def grant_role(self, role: bytes, account: str, admin: LocalAccount) -> TxReceipt:
        fn = self.contract.functions.grantRole(role, Web3.to_checksum_address(account))
        return self.chain.send(fn, admin)


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
