"""Contract custom errors mapped onto the project's exceptions.

Every revert becomes a :class:`ContractRevert` naming the Solidity error and its arguments,
e.g. ``LedgerAlreadySubmitted(taskId=1, round=2, node=0x…)``, whichever chain raised it
(eth-tester raises ``TransactionFailed`` with the raw bytes, Ganache and anvil
``ContractCustomError`` with hex data).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import Web3

from loraledger.errors import ChainError

#: What a user can do about each error; shown by the CLI under the message.
HINTS: dict[str, str] = {
    "LedgerUnknownTask": "list tasks with `loraledger task list`",
    "LedgerNotJoined": "join first: `loraledger node join --task TASK`",
    "LedgerAlreadyJoined": "this account is already a member of the task",
    "LedgerNoOpenRound": "wait for the aggregator to open the next round",
    "LedgerWrongRound": "submit for the round that is open now (`loraledger task show TASK`)",
    "LedgerSubmissionWindowClosed": "the window closed; the node takes part in the next round",
    "LedgerAlreadySubmitted": "one submission per node per round; wait for the next round",
    "LedgerDigestReused": "an update with this digest was already submitted to this task",
    "LedgerWindowNotOver": "wait until the window closes or every joined node has submitted",
    "LedgerRoundStillOpen": "finalize the open round first",
    "LedgerRoundAlreadyFinalized": "each round is finalized exactly once",
    "LedgerAlreadyClaimed": "each round's reward is claimed once",
    "LedgerInvalidProof": "the proof must come from the round report of this round and account",
    "LedgerInsufficientPool": "fund the task: `loraledger task fund TASK AMOUNT`",
    "LedgerTaskComplete": "every round of this task has been finalized",
    "LedgerNotSponsor": "only the account that created the task can do this",
    "AccessControlUnauthorizedAccount": "use an account holding the role (see `loraledger deploy --help`)",
    "ERC20InsufficientAllowance": "approve the ledger for the amount first",
    "ERC20InsufficientBalance": "the account does not hold enough tokens",
}

_ROLE_NAMES = {
    Web3.keccak(text="AGGREGATOR_ROLE").hex(): "AGGREGATOR_ROLE",
    Web3.keccak(text="MINTER_ROLE").hex(): "MINTER_ROLE",
    "00" * 32: "DEFAULT_ADMIN_ROLE",
}


class ContractRevert(ChainError):
    """A transaction or call reverted with a custom error of the contracts."""

    def __init__(self, name: str, args: dict[str, Any]) -> None:
        shown = ", ".join(f"{key}={_show(value)}" for key, value in args.items())
        super().__init__(f"{name}({shown})", hint=HINTS.get(name))
        self.name = name
        self.args_by_name = args


class TransactionReverted(ChainError):
    """A transaction reverted without a decodable reason (out of gas, plain revert)."""


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        hexed = value.hex()
        return _ROLE_NAMES.get(hexed, "0x" + hexed)
    return str(value)


class ErrorDecoder:
    """Decodes revert data against the custom errors of one or more ABIs."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_abi_type(i) for i in item["inputs"]]
                selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
                self._errors[selector] = (item["name"], [i["name"] for i in item["inputs"]], types)

    def decode(self, data: bytes) -> ContractRevert | None:
        """The revert for ``data`` (selector + ABI-encoded args), or None if unknown."""
        entry = self._errors.get(data[:4])
        if entry is None:
            return None
        name, names, types = entry
        values = abi_decode(types, data[4:])
        args = {
            key: to_checksum_address(value) if typ == "address" else value
            for key, typ, value in zip(names, types, values, strict=True)
        }
        return ContractRevert(name, args)

    def from_exception(self, exc: BaseException) -> ChainError | None:
        """Map a web3 / eth-tester revert exception to a project error, or None if it is not one."""
        data = revert_data(exc)
        if data is None:
            return None
        decoded = self.decode(data) if len(data) >= 4 else None
        if decoded is not None:
            return decoded
        return TransactionReverted(f"transaction reverted: {exc}")


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
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
