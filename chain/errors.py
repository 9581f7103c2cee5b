"""Contract custom errors mapped onto the project's exceptions: one class per Solidity error.

Every custom error of the contracts' ABIs has a class here, generated from the ABI (the block
between the ``BEGIN GENERATED``/``END GENERATED`` lines, rewritten by ``loraledger contracts
build``; ``chain.errorgen`` renders it and a test fails when it disagrees with the committed
ABIs). Each subclasses :class:`ContractRevert` and carries the decoded arguments both as
attributes (``exc.task_id``, ``exc.round``) and as ``exc.args``, in the Solidity order. Callers
catch classes, never compare names::

    try:
        ledger.finalize_round(task_id, round_, result, attestations, account)
    except errors.LedgerQuorumNotReached as exc:
        ...

Whichever chain raised the revert maps to the same class (eth-tester raises
``TransactionFailed`` with the raw bytes, Ganache and anvil ``ContractCustomError`` with hex
data). ``exc.name`` is the Solidity name, for display.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import Any, ClassVar

from eth_abi.abi import decode as abi_decode
from eth_typing import ChecksumAddress
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from web3 import Web3

from chain.round_state import RoundState
from loraledger.errors import ChainError, ServiceUnavailable

#: What a user can do about each error; shown by the CLI under the message.
HINTS: dict[str, str] = {
    "LedgerUnknownTask": "list tasks with `loraledger task list`",
    "LedgerNotJoined": "join first: `loraledger node join --task TASK`",
    "LedgerAlreadyJoined": "this account is already a member of the task",
    "LedgerAlreadyCommitted": "one commitment per node per round; wait for the next round",
    "LedgerNotCommitted": "only a node that committed in the round can reveal (or be slashed)",
    "LedgerAlreadyRevealed": "each commitment is revealed once",
    "LedgerCommitmentMismatch": "reveal the digest, example count and salt that were committed "
    "(the node's journal keeps them)",
    "LedgerExamplesAboveCap": "claim at most the task's maxExamples (`loraledger task show TASK`)",
    "LedgerDigestReused": "an update with this digest was already revealed in this task",
    "LedgerAlreadyClaimed": "each round's reward is claimed once",
    "LedgerInvalidProof": "the proof must come from the round report of this round and account",
    "LedgerInsufficientPool": "fund the task: `loraledger task fund TASK AMOUNT`",
    "LedgerTaskComplete": "every round of this task has been opened or has ended",
    "LedgerTaskNotComplete": "wait until the task's last round ends, or cancel the task first",
    "LedgerTaskCancelled": "the sponsor cancelled this task: only withdrawals remain",
    "LedgerTaskActive": "the task can still go on; it can be cancelled once it cannot (or sits "
    "idle for its grace period)",
    "LedgerNotSponsor": "only the account that created the task can do this",
    "LedgerNotAggregator": "only the task's aggregator opens its rounds (`loraledger task show TASK`)",
    "LedgerNotValidator": "only the task's validators score and sign its results",
    "LedgerNotProposer": "only the task's aggregator or one of its validators proposes results",
    "LedgerNotBondholder": "only the task's aggregator and validators hold bonds",
    "LedgerBondNotPosted": "post the bond first (postBond)",
    "LedgerBondAlreadyPosted": "a bond is posted once per task",
    "LedgerBondSlashed": "this account's bond was slashed: it may no longer act for the task",
    "LedgerBondLocked": "bonds unlock once the task is over and its last slash window closed",
    "LedgerStakeLocked": "a leaving node's stake unlocks once the rounds it committed in can no "
    "longer slash it",
    "LedgerMemberLeaving": "this node started leaving the task; withdraw its stake when it unlocks",
    "LedgerNotLeaving": "start leaving first (leave), then withdraw the stake",
    "LedgerJoinedAfterOpen": "a node commits from the first round opened after it joined",
    "LedgerQuorumNotReached": "gather signatures from more of the task's validators",
    "LedgerInvalidSignature": "the validator must sign this result of this round, task, epoch, "
    "contract and chain (chain.attest.sign_result)",
    "LedgerScoresMismatch": "a result must use exactly the score sheets posted for the round",
    "LedgerStaleProposal": "the round was voided since: propose the result again in its new epoch",
    "LedgerRoundNotAbandonable": "a round can be abandoned only after its grace period",
    "LedgerSlashWindowOver": "the round's slash window has closed",
    "AccessControlUnauthorizedAccount": "use an account holding the role (see `loraledger deploy --help`)",
    "ERC20InsufficientAllowance": "approve the ledger for the amount first",
    "ERC20InsufficientBalance": "the account does not hold enough tokens",
}

#: Hints for ``LedgerUnexpectedRoundState``, by (state the round is in, state the call needs).
ROUND_STATE_HINTS: dict[tuple[RoundState, RoundState], str] = {
    (
        RoundState.UNOPENED,
        RoundState.OPEN,
    ): "wait for the aggregator to open the round (`loraledger task show TASK`)",
    (
        RoundState.REVEALING,
        RoundState.OPEN,
    ): "the commit phase is over; the node takes part in the next round",
    (
        RoundState.CLOSED,
        RoundState.OPEN,
    ): "the window closed; the node takes part in the next round",
    (
        RoundState.FINALIZED,
        RoundState.OPEN,
    ): "commit in the round that is open now (`loraledger task show TASK`)",
    (
        RoundState.SETTLED,
        RoundState.OPEN,
    ): "commit in the round that is open now (`loraledger task show TASK`)",
    (
        RoundState.OPEN,
        RoundState.REVEALING,
    ): "reveal once the commit phase ends (window over or every eligible node committed)",
    (
        RoundState.CLOSED,
        RoundState.REVEALING,
    ): "the reveal window is over; an unrevealed commitment earns nothing",
    (
        RoundState.FINALIZED,
        RoundState.REVEALING,
    ): "the round is finalized; the reveal window is over",
    (
        RoundState.OPEN,
        RoundState.CLOSED,
    ): "wait until the commit window closes and the commitments are revealed",
    (
        RoundState.REVEALING,
        RoundState.CLOSED,
    ): "wait until every commitment is revealed or the reveal window closes",
    (RoundState.FINALIZED, RoundState.CLOSED): "the round is already finalized",
    (RoundState.SETTLED, RoundState.CLOSED): "the round is already finalized and settled",
    (RoundState.ABANDONED, RoundState.CLOSED): "the round was abandoned",
    (RoundState.CLOSED, RoundState.FINALIZED): "the round awaits a result signed by a quorum",
    (RoundState.SETTLED, RoundState.FINALIZED): "the round's challenge window is over",
    (RoundState.OPEN, RoundState.SETTLED): "the round is still open: wait for it to be settled",
    (
        RoundState.REVEALING,
        RoundState.SETTLED,
    ): "the round is revealing: wait for it to be finalized and settled",
    (
        RoundState.CLOSED,
        RoundState.SETTLED,
    ): "the round awaits a result signed by a quorum of validators",
    (
        RoundState.FINALIZED,
        RoundState.SETTLED,
    ): "the round's challenge window is running: wait for it to end",
    (RoundState.ABANDONED, RoundState.SETTLED): "the round was abandoned: it pays nothing",
}

_ROLE_NAMES = {
    Web3.keccak(text="MINTER_ROLE").hex(): "MINTER_ROLE",
    "00" * 32: "DEFAULT_ADMIN_ROLE",
}


class ContractRevert(ChainError):
    """A transaction or call reverted with a custom error of the contracts.

    Subclasses declare the error's ABI: ``FIELDS`` (Solidity argument names), ``TYPES`` (ABI
    types) and ``ENUMS`` (arguments decoded as a Python enum). They are built with the decoded
    values in order, which become ``args`` and one snake_case attribute per argument.
    """

    FIELDS: ClassVar[tuple[str, ...]] = ()
    TYPES: ClassVar[tuple[str, ...]] = ()
    ENUMS: ClassVar[Mapping[str, type[IntEnum]]] = {}

    def __init__(self, *values: Any) -> None:
        if len(values) != len(self.FIELDS):
            raise TypeError(f"{self.name} takes {len(self.FIELDS)} arguments, got {len(values)}")
        self.args_by_name: dict[str, Any] = dict(zip(self.FIELDS, values, strict=True))
        for field, value in self.args_by_name.items():
            setattr(self, snake_case(field), value)
        shown = ", ".join(
            f"{key}={self._show(key, value)}" for key, value in self.args_by_name.items()
        )
        self.message = f"{self.name}({shown})"
        super().__init__(self.message, hint=self._hint())
        self.args = values

    @property
    def name(self) -> str:
        """The Solidity name of the error."""
        return type(self).__name__

    @classmethod
    def signature(cls) -> str:
        """``Name(type,...)``, whose keccak256 starts with the error's selector."""
        return f"{cls.__name__}({','.join(cls.TYPES)})"

    @classmethod
    def selector(cls) -> bytes:
        return bytes(function_signature_to_4byte_selector(cls.signature()))

    @classmethod
    def from_data(cls, data: bytes) -> ContractRevert:
        """The error for ABI-encoded arguments ``data`` (the revert data after the selector)."""
        values = abi_decode(list(cls.TYPES), data)
        return cls(
            *(cls._convert(f, t, v) for f, t, v in zip(cls.FIELDS, cls.TYPES, values, strict=True))
        )

    @classmethod
    def _convert(cls, field: str, typ: str, value: Any) -> Any:
        if typ == "address":
            return to_checksum_address(value)
        if field in cls.ENUMS:
            return cls.ENUMS[field](value)
        return value

    def _show(self, field: str, value: Any) -> str:
        return _show(value)

    def _hint(self) -> str | None:
        return HINTS.get(self.name)

    def __str__(self) -> str:
        return self.message


class RoundStateRevert(ContractRevert):
    """Base of ``LedgerUnexpectedRoundState``: the round is not in a state the call allows."""

    current: RoundState
    expected_states: bytes

    @property
    def expected(self) -> frozenset[RoundState]:
        """The states that would have allowed the call."""
        return RoundState.from_bitmap(self.expected_states)

    def _show(self, field: str, value: Any) -> str:
        if isinstance(value, RoundState):
            return value.name
        if field == "expectedStates":
            return "{" + ", ".join(s.name for s in sorted(RoundState.from_bitmap(value))) + "}"
        return _show(value)

    def _hint(self) -> str | None:
        for expected in sorted(self.expected):
            hint = ROUND_STATE_HINTS.get((self.current, expected))
            if hint is not None:
                return hint
        return None


class TransactionReverted(ChainError):
    """A transaction reverted without a decodable reason (out of gas, plain revert)."""


class NonceTaken(ChainError):
    """Another transaction of the same account was mined with this transaction's nonce (two
    processes signing as one account): this one can never be mined, so nothing of it was sent.
    :meth:`chain.network.Chain.send` builds it again with the next nonce."""


class ChainUnavailable(ChainError, ServiceUnavailable):
    """The chain's RPC endpoint did not answer (connection refused, dropped or timed out)
    after the provider's retries: the chain process may be restarting."""


class ChainMoved(ChainError):
    """What was read from the chain moments ago no longer holds together: a reorganisation
    replaced blocks, or the RPC node answering is behind the one answering before. Reading
    again, a little later, sees one consistent chain (:class:`chain.recovery.Recovery`)."""


class TransactionNotMined(ChainError):
    """A sent transaction was not mined in time (or the chain could not be asked): it may still
    be, so the caller must not send it again under a new nonce without checking."""


def snake_case(name: str) -> str:
    """``taskId`` -> ``task_id``: the attribute name of a Solidity argument."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        hexed = value.hex()
        return _ROLE_NAMES.get(hexed, "0x" + hexed)
    return str(value)


class ErrorDecoder:
    """Decodes revert data against the custom errors of one or more ABIs.

    Each error maps to its class in this module; an error of an ABI the project does not ship
    gets a class made on the spot, so it still decodes (and is caught as ``ContractRevert``).
    """

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, type[ContractRevert]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                fields = tuple(str(i["name"]) for i in item["inputs"])
                types = tuple(abi_type(i) for i in item["inputs"])
                cls = CONTRACT_ERRORS.get(f"{item['name']}({','.join(types)})")
                if cls is None or fields != cls.FIELDS:
                    cls = _foreign_error(str(item["name"]), fields, types)
                self._errors[cls.selector()] = cls

    def decode(self, data: bytes) -> ContractRevert | None:
        """The revert for ``data`` (selector + ABI-encoded args), or None if unknown."""
        cls = self._errors.get(data[:4])
        return cls.from_data(data[4:]) if cls is not None else None

    def from_exception(self, exc: BaseException) -> ChainError | None:
        """Map a web3 / eth-tester revert exception to a project error, or None if it is not one."""
        data = revert_data(exc)
        if data is None:
            return None
        decoded = self.decode(data) if len(data) >= 4 else None
        if decoded is not None:
            return decoded
        return TransactionReverted(f"transaction reverted: {exc}")


def _foreign_error(
    name: str, fields: tuple[str, ...], types: tuple[str, ...]
) -> type[ContractRevert]:
    """A class for an error of an ABI the project does not ship (caught as ContractRevert)."""

    class Foreign(ContractRevert):
        FIELDS = fields
        TYPES = types

    Foreign.__name__ = Foreign.__qualname__ = name
    return Foreign


def abi_type(item: dict[str, Any]) -> str:
    """The canonical type of an ABI input, as selectors spell it (tuples expanded)."""
    if item["type"].startswith("tuple"):
        inner = ",".join(abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


_TESTER_REVERT = re.compile(r"execution reverted: (b(['\"]).*\2)$", re.DOTALL)


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by ``exc``, if it is a revert at all."""
    from eth_tester.exceptions import TransactionFailed
    from web3.exceptions import ContractCustomError, ContractLogicError

    if isinstance(exc, ContractCustomError):
        data = exc.data if isinstance(exc.data, str) else str(exc.args[-1])
        return bytes.fromhex(data.removeprefix("0x"))
    if isinstance(exc, ContractLogicError):
        for candidate in (exc.data, *exc.args):
            hexed = candidate
            if isinstance(candidate, dict):  # Ganache: {"result": "0x…", "message": "revert", ...}
                hexed = candidate.get("result") or candidate.get("data")
            if isinstance(hexed, str) and hexed.startswith("0x") and len(hexed) >= 10:
                return bytes.fromhex(hexed[2:])
        return b""
    if isinstance(exc, TransactionFailed):
        first = exc.args[0] if exc.args else b""
        if isinstance(first, bytes):
            return first
        match = _TESTER_REVERT.search(str(first))
        if match:
            return bytes(ast.literal_eval(match.group(1)))
        return b""
    return None


# ---- BEGIN GENERATED from the ABIs in chain/artifacts by `loraledger contracts build`; do not edit ----
# fmt: off  (generated: kept as the generator writes it)


class AccessControlBadConfirmation(ContractRevert):
    """``AccessControlBadConfirmation()``"""

    FIELDS = ()
    TYPES = ()


class AccessControlUnauthorizedAccount(ContractRevert):
    """``AccessControlUnauthorizedAccount(address account, bytes32 neededRole)``"""

    FIELDS = ("account", "neededRole")
    TYPES = ("address", "bytes32")
    account: ChecksumAddress
    needed_role: bytes


class ERC20InsufficientAllowance(ContractRevert):
    """``ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed)``"""

    FIELDS = ("spender", "allowance", "needed")
    TYPES = ("address", "uint256", "uint256")
    spender: ChecksumAddress
    allowance: int
    needed: int


class ERC20InsufficientBalance(ContractRevert):
    """``ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed)``"""

    FIELDS = ("sender", "balance", "needed")
    TYPES = ("address", "uint256", "uint256")
    sender: ChecksumAddress
    balance: int
    needed: int


class ERC20InvalidApprover(ContractRevert):
    """``ERC20InvalidApprover(address approver)``"""

    FIELDS = ("approver",)
    TYPES = ("address",)
    approver: ChecksumAddress


class ERC20InvalidReceiver(ContractRevert):
    """``ERC20InvalidReceiver(address receiver)``"""

    FIELDS = ("receiver",)
    TYPES = ("address",)
    receiver: ChecksumAddress


class ERC20InvalidSender(ContractRevert):
    """``ERC20InvalidSender(address sender)``"""

    FIELDS = ("sender",)
    TYPES = ("address",)
    sender: ChecksumAddress


class ERC20InvalidSpender(ContractRevert):
    """``ERC20InvalidSpender(address spender)``"""

    FIELDS = ("spender",)
    TYPES = ("address",)
    spender: ChecksumAddress


class InvalidShortString(ContractRevert):
    """``InvalidShortString()``"""

    FIELDS = ()
    TYPES = ()


class LedgerAlreadyAttested(ContractRevert):
    """``LedgerAlreadyAttested(uint256 taskId, uint32 round, bytes32 resultHash, address validator)``"""

    FIELDS = ("taskId", "round", "resultHash", "validator")
    TYPES = ("uint256", "uint32", "bytes32", "address")
    task_id: int
    round: int
    result_hash: bytes
    validator: ChecksumAddress


class LedgerAlreadyClaimed(ContractRevert):
    """``LedgerAlreadyClaimed(uint256 taskId, uint32 round, address node)``"""

    FIELDS = ("taskId", "round", "node")
    TYPES = ("uint256", "uint32", "address")
    task_id: int
    round: int
    node: ChecksumAddress


class LedgerAlreadyCommitted(ContractRevert):
    """``LedgerAlreadyCommitted(uint256 taskId, uint32 round, address node)``"""

    FIELDS = ("taskId", "round", "node")
    TYPES = ("uint256", "uint32", "address")
    task_id: int
    round: int
    node: ChecksumAddress


class LedgerAlreadyJoined(ContractRevert):
    """``LedgerAlreadyJoined(uint256 taskId, address node)``"""

    FIELDS = ("taskId", "node")
    TYPES = ("uint256", "address")
    task_id: int
    node: ChecksumAddress


class LedgerAlreadyProposed(ContractRevert):
    """``LedgerAlreadyProposed(uint256 taskId, uint32 round, bytes32 resultHash)``"""

    FIELDS = ("taskId", "round", "resultHash")
    TYPES = ("uint256", "uint32", "bytes32")
    task_id: int
    round: int
    result_hash: bytes


class LedgerAlreadyRevealed(ContractRevert):
    """``LedgerAlreadyRevealed(uint256 taskId, uint32 round, address node)``"""

    FIELDS = ("taskId", "round", "node")
    TYPES = ("uint256", "uint32", "address")
    task_id: int
    round: int
    node: ChecksumAddress


class LedgerAlreadySlashed(ContractRevert):
    """``LedgerAlreadySlashed(uint256 taskId, uint32 round, address node)``"""

    FIELDS = ("taskId", "round", "node")
    TYPES = ("uint256", "uint32", "address")
    task_id: int
    round: int
    node: ChecksumAddress


class LedgerBondAlreadyPosted(ContractRevert):
    """``LedgerBondAlreadyPosted(uint256 taskId, address account)``"""

    FIELDS = ("taskId", "account")
    TYPES = ("uint256", "address")
    task_id: int
    account: ChecksumAddress


class LedgerBondLocked(ContractRevert):
    """``LedgerBondLocked(uint256 taskId, address account, uint64 unlocksAt)``"""

    FIELDS = ("taskId", "account", "unlocksAt")
    TYPES = ("uint256", "address", "uint64")
    task_id: int
    account: ChecksumAddress
    unlocks_at: int


class LedgerBondNotPosted(ContractRevert):
    """``LedgerBondNotPosted(uint256 taskId, address account)``"""

    FIELDS = ("taskId", "account")
    TYPES = ("uint256", "address")
    task_id: int
    account: ChecksumAddress


class LedgerBondSlashed(ContractRevert):
    """``LedgerBondSlashed(uint256 taskId, address account)``"""

    FIELDS = ("taskId", "account")
    TYPES = ("uint256", "address")
    task_id: int
    account: ChecksumAddress


class LedgerClaimAboveRoundTotal(ContractRevert):
    """``LedgerClaimAboveRoundTotal(uint256 taskId, uint32 round, uint256 claimed, uint256 rewardTotal)``"""

    FIELDS = ("taskId", "round", "claimed", "rewardTotal")
    TYPES = ("uint256", "uint32", "uint256", "uint256")
    task_id: int
    round: int
    claimed: int
    reward_total: int


class LedgerCommitmentMismatch(ContractRevert):
    """``LedgerCommitmentMismatch(uint256 taskId, uint32 round, address node, bytes32 committed, bytes32 revealed)``"""

    FIELDS = ("taskId", "round", "node", "committed", "revealed")
    TYPES = ("uint256", "uint32", "address", "bytes32", "bytes32")
    task_id: int
    round: int
    node: ChecksumAddress
    committed: bytes
    revealed: bytes


class LedgerCountMismatch(ContractRevert):
    """``LedgerCountMismatch(uint256 taskId, uint32 round, uint32 accepted, uint32 rejected, uint32 reveals)``"""

    FIELDS = ("taskId", "round", "accepted", "rejected", "reveals")
    TYPES = ("uint256", "uint32", "uint32", "uint32", "uint32")
    task_id: int
    round: int
    accepted: int
    rejected: int
    reveals: int


class LedgerDigestReused(ContractRevert):
    """``LedgerDigestReused(uint256 taskId, bytes32 digest)``"""

    FIELDS = ("taskId", "digest")
    TYPES = ("uint256", "bytes32")
    task_id: int
    digest: bytes


class LedgerEmptyBatch(ContractRevert):
    """``LedgerEmptyBatch()``"""

    FIELDS = ()
    TYPES = ()


class LedgerEmptyCid(ContractRevert):
    """``LedgerEmptyCid()``"""

    FIELDS = ()
    TYPES = ()


class LedgerExamplesAboveCap(ContractRevert):
    """``LedgerExamplesAboveCap(uint256 taskId, uint32 round, address node, uint64 numExamples, uint64 maxExamples)``"""

    FIELDS = ("taskId", "round", "node", "numExamples", "maxExamples")
    TYPES = ("uint256", "uint32", "address", "uint64", "uint64")
    task_id: int
    round: int
    node: ChecksumAddress
    num_examples: int
    max_examples: int


class LedgerInsufficientPool(ContractRevert):
    """``LedgerInsufficientPool(uint256 taskId, uint256 available, uint256 required)``"""

    FIELDS = ("taskId", "available", "required")
    TYPES = ("uint256", "uint256", "uint256")
    task_id: int
    available: int
    required: int


class LedgerInvalidDuration(ContractRevert):
    """``LedgerInvalidDuration(uint64 challengeWindow, uint64 slashWindow, uint64 gracePeriod)``"""

    FIELDS = ("challengeWindow", "slashWindow", "gracePeriod")
    TYPES = ("uint64", "uint64", "uint64")
    challenge_window: int
    slash_window: int
    grace_period: int


class LedgerInvalidMaxExamples(ContractRevert):
    """``LedgerInvalidMaxExamples(uint64 maxExamples)``"""

    FIELDS = ("maxExamples",)
    TYPES = ("uint64",)
    max_examples: int


class LedgerInvalidMaxRounds(ContractRevert):
    """``LedgerInvalidMaxRounds(uint32 maxRounds)``"""

    FIELDS = ("maxRounds",)
    TYPES = ("uint32",)
    max_rounds: int


class LedgerInvalidPrivacy(ContractRevert):
    """``LedgerInvalidPrivacy(uint8 mode, uint8 accountant)``"""

    FIELDS = ("mode", "accountant")
    TYPES = ("uint8", "uint8")
    mode: int
    accountant: int


class LedgerInvalidProof(ContractRevert):
    """``LedgerInvalidProof(uint256 taskId, uint32 round, address node, uint256 amount)``"""

    FIELDS = ("taskId", "round", "node", "amount")
    TYPES = ("uint256", "uint32", "address", "uint256")
    task_id: int
    round: int
    node: ChecksumAddress
    amount: int


class LedgerInvalidQuorum(ContractRevert):
    """``LedgerInvalidQuorum(uint32 quorum, uint256 validators)``"""

    FIELDS = ("quorum", "validators")
    TYPES = ("uint32", "uint256")
    quorum: int
    validators: int


class LedgerInvalidRevealWindow(ContractRevert):
    """``LedgerInvalidRevealWindow(uint64 revealWindow)``"""

    FIELDS = ("revealWindow",)
    TYPES = ("uint64",)
    reveal_window: int


class LedgerInvalidRole(ContractRevert):
    """``LedgerInvalidRole(address account)``"""

    FIELDS = ("account",)
    TYPES = ("address",)
    account: ChecksumAddress


class LedgerInvalidShare(ContractRevert):
    """``LedgerInvalidShare(uint16 validatorShareBps)``"""

    FIELDS = ("validatorShareBps",)
    TYPES = ("uint16",)
    validator_share_bps: int


class LedgerInvalidSignature(ContractRevert):
    """``LedgerInvalidSignature(uint256 taskId, uint32 round, address validator, address recovered)``"""

    FIELDS = ("taskId", "round", "validator", "recovered")
    TYPES = ("uint256", "uint32", "address", "address")
    task_id: int
    round: int
    validator: ChecksumAddress
    recovered: ChecksumAddress


class LedgerInvalidSlashProof(ContractRevert):
    """``LedgerInvalidSlashProof(uint256 taskId, uint32 round, address node, uint256 amount, uint16 reason)``"""

    FIELDS = ("taskId", "round", "node", "amount", "reason")
    TYPES = ("uint256", "uint32", "address", "uint256", "uint16")
    task_id: int
    round: int
    node: ChecksumAddress
    amount: int
    reason: int


class LedgerInvalidToken(ContractRevert):
    """``LedgerInvalidToken(address token)``"""

    FIELDS = ("token",)
    TYPES = ("address",)
    token: ChecksumAddress


class LedgerInvalidValidatorCount(ContractRevert):
    """``LedgerInvalidValidatorCount(uint256 count)``"""

    FIELDS = ("count",)
    TYPES = ("uint256",)
    count: int


class LedgerInvalidWindow(ContractRevert):
    """``LedgerInvalidWindow(uint64 submissionWindow)``"""

    FIELDS = ("submissionWindow",)
    TYPES = ("uint64",)
    submission_window: int


class LedgerJoinedAfterOpen(ContractRevert):
    """``LedgerJoinedAfterOpen(uint256 taskId, uint32 round, address node, uint32 joinedRound)``"""

    FIELDS = ("taskId", "round", "node", "joinedRound")
    TYPES = ("uint256", "uint32", "address", "uint32")
    task_id: int
    round: int
    node: ChecksumAddress
    joined_round: int


class LedgerMemberLeaving(ContractRevert):
    """``LedgerMemberLeaving(uint256 taskId, address node)``"""

    FIELDS = ("taskId", "node")
    TYPES = ("uint256", "address")
    task_id: int
    node: ChecksumAddress


class LedgerNotAggregator(ContractRevert):
    """``LedgerNotAggregator(uint256 taskId, address caller)``"""

    FIELDS = ("taskId", "caller")
    TYPES = ("uint256", "address")
    task_id: int
    caller: ChecksumAddress


class LedgerNotBondholder(ContractRevert):
    """``LedgerNotBondholder(uint256 taskId, address account)``"""

    FIELDS = ("taskId", "account")
    TYPES = ("uint256", "address")
    task_id: int
    account: ChecksumAddress


class LedgerNotCommitted(ContractRevert):
    """``LedgerNotCommitted(uint256 taskId, uint32 round, address node)``"""

    FIELDS = ("taskId", "round", "node")
    TYPES = ("uint256", "uint32", "address")
    task_id: int
    round: int
    node: ChecksumAddress


class LedgerNotConflicting(ContractRevert):
    """``LedgerNotConflicting(uint256 taskId, uint32 round, bytes32 resultHash)``"""

    FIELDS = ("taskId", "round", "resultHash")
    TYPES = ("uint256", "uint32", "bytes32")
    task_id: int
    round: int
    result_hash: bytes


class LedgerNotJoined(ContractRevert):
    """``LedgerNotJoined(uint256 taskId, address node)``"""

    FIELDS = ("taskId", "node")
    TYPES = ("uint256", "address")
    task_id: int
    node: ChecksumAddress


class LedgerNotLeaving(ContractRevert):
    """``LedgerNotLeaving(uint256 taskId, address node)``"""

    FIELDS = ("taskId", "node")
    TYPES = ("uint256", "address")
    task_id: int
    node: ChecksumAddress


class LedgerNotProposer(ContractRevert):
    """``LedgerNotProposer(uint256 taskId, address caller)``"""

    FIELDS = ("taskId", "caller")
    TYPES = ("uint256", "address")
    task_id: int
    caller: ChecksumAddress


class LedgerNotSponsor(ContractRevert):
    """``LedgerNotSponsor(uint256 taskId, address caller)``"""

    FIELDS = ("taskId", "caller")
    TYPES = ("uint256", "address")
    task_id: int
    caller: ChecksumAddress


class LedgerNotValidator(ContractRevert):
    """``LedgerNotValidator(uint256 taskId, address account)``"""

    FIELDS = ("taskId", "account")
    TYPES = ("uint256", "address")
    task_id: int
    account: ChecksumAddress


class LedgerProposalAlreadySlashed(ContractRevert):
    """``LedgerProposalAlreadySlashed(uint256 taskId, uint32 round, bytes32 resultHash)``"""

    FIELDS = ("taskId", "round", "resultHash")
    TYPES = ("uint256", "uint32", "bytes32")
    task_id: int
    round: int
    result_hash: bytes


class LedgerQuorumNotReached(ContractRevert):
    """``LedgerQuorumNotReached(uint256 taskId, uint32 round, uint32 attestations, uint32 quorum)``"""

    FIELDS = ("taskId", "round", "attestations", "quorum")
    TYPES = ("uint256", "uint32", "uint32", "uint32")
    task_id: int
    round: int
    attestations: int
    quorum: int


class LedgerRewardAboveRoundCap(ContractRevert):
    """``LedgerRewardAboveRoundCap(uint256 taskId, uint32 round, uint256 rewardTotal, uint256 rewardPerRound)``"""

    FIELDS = ("taskId", "round", "rewardTotal", "rewardPerRound")
    TYPES = ("uint256", "uint32", "uint256", "uint256")
    task_id: int
    round: int
    reward_total: int
    reward_per_round: int


class LedgerRewardJustified(ContractRevert):
    """``LedgerRewardJustified(uint256 taskId, uint32 round, address account)``"""

    FIELDS = ("taskId", "round", "account")
    TYPES = ("uint256", "uint32", "address")
    task_id: int
    round: int
    account: ChecksumAddress


class LedgerRewardWithoutAccepted(ContractRevert):
    """``LedgerRewardWithoutAccepted(uint256 taskId, uint32 round, uint256 rewardTotal)``"""

    FIELDS = ("taskId", "round", "rewardTotal")
    TYPES = ("uint256", "uint32", "uint256")
    task_id: int
    round: int
    reward_total: int


class LedgerRoundNotAbandonable(ContractRevert):
    """``LedgerRoundNotAbandonable(uint256 taskId, uint32 round, uint64 abandonableAt)``"""

    FIELDS = ("taskId", "round", "abandonableAt")
    TYPES = ("uint256", "uint32", "uint64")
    task_id: int
    round: int
    abandonable_at: int


class LedgerScoresAlreadyPosted(ContractRevert):
    """``LedgerScoresAlreadyPosted(uint256 taskId, uint32 round, address validator)``"""

    FIELDS = ("taskId", "round", "validator")
    TYPES = ("uint256", "uint32", "address")
    task_id: int
    round: int
    validator: ChecksumAddress


class LedgerScoresMismatch(ContractRevert):
    """``LedgerScoresMismatch(uint256 taskId, uint32 round, uint32 scoresBitmap, uint32 roundScoresBitmap)``"""

    FIELDS = ("taskId", "round", "scoresBitmap", "roundScoresBitmap")
    TYPES = ("uint256", "uint32", "uint32", "uint32")
    task_id: int
    round: int
    scores_bitmap: int
    round_scores_bitmap: int


class LedgerSlashWindowOver(ContractRevert):
    """``LedgerSlashWindowOver(uint256 taskId, uint32 round, uint64 closedAt)``"""

    FIELDS = ("taskId", "round", "closedAt")
    TYPES = ("uint256", "uint32", "uint64")
    task_id: int
    round: int
    closed_at: int


class LedgerStakeLocked(ContractRevert):
    """``LedgerStakeLocked(uint256 taskId, address node, uint64 unlocksAt)``"""

    FIELDS = ("taskId", "node", "unlocksAt")
    TYPES = ("uint256", "address", "uint64")
    task_id: int
    node: ChecksumAddress
    unlocks_at: int


class LedgerStakeTooLow(ContractRevert):
    """``LedgerStakeTooLow(uint256 taskId, address node, uint256 stake, uint256 minStake)``"""

    FIELDS = ("taskId", "node", "stake", "minStake")
    TYPES = ("uint256", "address", "uint256", "uint256")
    task_id: int
    node: ChecksumAddress
    stake: int
    min_stake: int


class LedgerStaleProposal(ContractRevert):
    """``LedgerStaleProposal(uint256 taskId, uint32 round, bytes32 resultHash, uint32 proposalEpoch, uint32 epoch)``"""

    FIELDS = ("taskId", "round", "resultHash", "proposalEpoch", "epoch")
    TYPES = ("uint256", "uint32", "bytes32", "uint32", "uint32")
    task_id: int
    round: int
    result_hash: bytes
    proposal_epoch: int
    epoch: int


class LedgerTaskActive(ContractRevert):
    """``LedgerTaskActive(uint256 taskId, uint64 cancellableAt)``"""

    FIELDS = ("taskId", "cancellableAt")
    TYPES = ("uint256", "uint64")
    task_id: int
    cancellable_at: int


class LedgerTaskCancelled(ContractRevert):
    """``LedgerTaskCancelled(uint256 taskId)``"""

    FIELDS = ("taskId",)
    TYPES = ("uint256",)
    task_id: int


class LedgerTaskComplete(ContractRevert):
    """``LedgerTaskComplete(uint256 taskId, uint32 maxRounds)``"""

    FIELDS = ("taskId", "maxRounds")
    TYPES = ("uint256", "uint32")
    task_id: int
    max_rounds: int


class LedgerTaskNotComplete(ContractRevert):
    """``LedgerTaskNotComplete(uint256 taskId, uint32 roundsEnded, uint32 maxRounds)``"""

    FIELDS = ("taskId", "roundsEnded", "maxRounds")
    TYPES = ("uint256", "uint32", "uint32")
    task_id: int
    rounds_ended: int
    max_rounds: int


class LedgerUnexpectedRoundState(RoundStateRevert):
    """``LedgerUnexpectedRoundState(uint256 taskId, uint32 round, RoundState current, bytes32 expectedStates)``"""

    FIELDS = ("taskId", "round", "current", "expectedStates")
    TYPES = ("uint256", "uint32", "uint8", "bytes32")
    ENUMS = {"current": RoundState}
    task_id: int
    round: int
    current: RoundState
    expected_states: bytes


class LedgerUnknownProposal(ContractRevert):
    """``LedgerUnknownProposal(uint256 taskId, uint32 round, bytes32 resultHash)``"""

    FIELDS = ("taskId", "round", "resultHash")
    TYPES = ("uint256", "uint32", "bytes32")
    task_id: int
    round: int
    result_hash: bytes


class LedgerUnknownTask(ContractRevert):
    """``LedgerUnknownTask(uint256 taskId)``"""

    FIELDS = ("taskId",)
    TYPES = ("uint256",)
    task_id: int


class LedgerZeroAmount(ContractRevert):
    """``LedgerZeroAmount()``"""

    FIELDS = ()
    TYPES = ()


class LedgerZeroCommitment(ContractRevert):
    """``LedgerZeroCommitment()``"""

    FIELDS = ()
    TYPES = ()


class LedgerZeroDigest(ContractRevert):
    """``LedgerZeroDigest()``"""

    FIELDS = ()
    TYPES = ()


class LedgerZeroExamples(ContractRevert):
    """``LedgerZeroExamples(uint256 taskId, uint32 round, address node)``"""

    FIELDS = ("taskId", "round", "node")
    TYPES = ("uint256", "uint32", "address")
    task_id: int
    round: int
    node: ChecksumAddress


class ReentrancyGuardReentrantCall(ContractRevert):
    """``ReentrancyGuardReentrantCall()``"""

    FIELDS = ()
    TYPES = ()


class SafeERC20FailedOperation(ContractRevert):
    """``SafeERC20FailedOperation(address token)``"""

    FIELDS = ("token",)
    TYPES = ("address",)
    token: ChecksumAddress


class StringTooLong(ContractRevert):
    """``StringTooLong(string str)``"""

    FIELDS = ("str",)
    TYPES = ("string",)
    str: str


#: Every generated class by its signature, e.g. ``LedgerUnknownTask(uint256)``.
CONTRACT_ERRORS: dict[str, type[ContractRevert]] = {
    cls.signature(): cls
    for cls in (
        AccessControlBadConfirmation,
        AccessControlUnauthorizedAccount,
        ERC20InsufficientAllowance,
        ERC20InsufficientBalance,
        ERC20InvalidApprover,
        ERC20InvalidReceiver,
        ERC20InvalidSender,
        ERC20InvalidSpender,
        InvalidShortString,
        LedgerAlreadyAttested,
        LedgerAlreadyClaimed,
        LedgerAlreadyCommitted,
        LedgerAlreadyJoined,
        LedgerAlreadyProposed,
        LedgerAlreadyRevealed,
        LedgerAlreadySlashed,
        LedgerBondAlreadyPosted,
        LedgerBondLocked,
        LedgerBondNotPosted,
        LedgerBondSlashed,
        LedgerClaimAboveRoundTotal,
        LedgerCommitmentMismatch,
        LedgerCountMismatch,
        LedgerDigestReused,
        LedgerEmptyBatch,
        LedgerEmptyCid,
        LedgerExamplesAboveCap,
        LedgerInsufficientPool,
        LedgerInvalidDuration,
        LedgerInvalidMaxExamples,
        LedgerInvalidMaxRounds,
        LedgerInvalidPrivacy,
        LedgerInvalidProof,
        LedgerInvalidQuorum,
        LedgerInvalidRevealWindow,
        LedgerInvalidRole,
        LedgerInvalidShare,
        LedgerInvalidSignature,
        LedgerInvalidSlashProof,
        LedgerInvalidToken,
        LedgerInvalidValidatorCount,
        LedgerInvalidWindow,
        LedgerJoinedAfterOpen,
        LedgerMemberLeaving,
        LedgerNotAggregator,
        LedgerNotBondholder,
        LedgerNotCommitted,
        LedgerNotConflicting,
        LedgerNotJoined,
        LedgerNotLeaving,
        LedgerNotProposer,
        LedgerNotSponsor,
        LedgerNotValidator,
        LedgerProposalAlreadySlashed,
        LedgerQuorumNotReached,
        LedgerRewardAboveRoundCap,
        LedgerRewardJustified,
        LedgerRewardWithoutAccepted,
        LedgerRoundNotAbandonable,
        LedgerScoresAlreadyPosted,
        LedgerScoresMismatch,
        LedgerSlashWindowOver,
        LedgerStakeLocked,
        LedgerStakeTooLow,
        LedgerStaleProposal,
        LedgerTaskActive,
        LedgerTaskCancelled,
        LedgerTaskComplete,
        LedgerTaskNotComplete,
        LedgerUnexpectedRoundState,
        LedgerUnknownProposal,
        LedgerUnknownTask,
        LedgerZeroAmount,
        LedgerZeroCommitment,
        LedgerZeroDigest,
        LedgerZeroExamples,
        ReentrancyGuardReentrantCall,
        SafeERC20FailedOperation,
        StringTooLong,
    )
}
# fmt: on
# ---- END GENERATED ----
