"""Where the ledger's events landed (transaction and block), and the read-only views of one
transaction or block behind the dashboard's links (``/api/tx/<hash>``, ``/api/block/<n>``).

The audit's views keep the block of some events and no transaction hash; the page links every
round opened and finalized, commitment, reveal, claim, score sheet, challenge and slash to its
transaction. :class:`Landings` reads them from the same event logs as
:class:`chain.events.History` (``Chain.logs``, cached and read incrementally under the same
keys, so a poll costs no second read of the history).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_abi.exceptions import DecodingError
from eth_typing import ABIEvent, HexStr
from eth_utils.abi import event_abi_to_log_topic
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import BlockNotFound, TransactionNotFound

from aggregator.audit import to_json
from chain.bindings import Ledger

__all__ = [
    "Landed",
    "Landings",
    "describe_block",
    "describe_transaction",
    "parse_block_number",
    "parse_tx_hash",
]

_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_BLOCK_NUMBER = re.compile(r"(0|[1-9][0-9]{0,17})")  # decimal, below 10**18
MAX_BLOCK_TRANSACTIONS = 200  # a block view lists at most this many


def parse_tx_hash(text: str) -> str | None:
    """``text`` as a transaction hash (``0x`` and 64 hex digits, lowercased), else None."""
    return text.lower() if _TX_HASH.fullmatch(text) else None


def parse_block_number(text: str) -> int | None:
    """``text`` as a block number (decimal digits, no sign or leading zero), else None."""
    return int(text) if _BLOCK_NUMBER.fullmatch(text) else None


@dataclass(frozen=True)
class Landed:
    """Where an event landed: its transaction's hash (``0x``-prefixed) and block."""

    tx: str
    block: int


def _round(args: Mapping[str, Any]) -> int:
    return int(args["round"])


def _hash(args: Mapping[str, Any]) -> str:
    return bytes(args["resultHash"]).hex()  # as the audit's views write result hashes


def _account(args: Mapping[str, Any], name: str) -> str:
    return str(args[name]).lower()


# The events the page links, each with the key that names it within one task (the last event
# with a key wins: a round re-finalized after a challenge, a validator's latest sheet).
_KEYS: dict[str, Callable[[Mapping[str, Any]], tuple[object, ...]]] = {
    "TaskCreated": lambda a: (),
    "TaskCancelled": lambda a: (),
    "RoundOpened": lambda a: (_round(a),),
    "RoundFinalized": lambda a: (_round(a), _hash(a)),
    "RoundAbandoned": lambda a: (_round(a),),
    "RoundVoided": lambda a: (_round(a), _hash(a)),
    "ProposalSlashed": lambda a: (_round(a), _hash(a)),
    "BondSlashed": lambda a: (_round(a), _account(a, "account")),
    "UpdateCommitted": lambda a: (_round(a), _account(a, "node")),
    "UpdateRevealed": lambda a: (_round(a), _account(a, "node")),
    "RewardClaimed": lambda a: (_round(a), _account(a, "node")),
    "ScoresPosted": lambda a: (_round(a), _account(a, "validator")),
}


class Landings:
    """The transactions of one task's events, by event name and key (see ``_KEYS``)."""

    def __init__(self, found: Mapping[tuple[object, ...], Landed]) -> None:
        self._found = dict(found)

    @classmethod
    def read(cls, ledger: Ledger, from_block: int, task_id: int) -> Landings:
        """Read the task's events from ``from_block`` on."""
        found: dict[tuple[object, ...], Landed] = {}
        for name, key in _KEYS.items():
            event = getattr(ledger.contract.events, name)
            for log in ledger.chain.logs(event, from_block, {"taskId": task_id}):
                landed = Landed(Web3.to_hex(log["transactionHash"]), int(log["blockNumber"]))
                found[(name, *key(log["args"]))] = landed
        return cls(found)

    def get(self, event: str, *key: object) -> Landed | None:
        """Where the event ``event`` with ``key`` landed (addresses in lowercase)."""
        return self._found.get((event, *key))


# ------------------------------------------------------------------ transaction and block views


@dataclass(frozen=True)
class KnownContract:
    """A contract whose calls and events the views decode (the ledger, the tasks' tokens)."""

    label: str  # "ledger", "token LLT"
    contract: Contract


class Decoder:
    """Names the calls and events of the known contracts."""

    def __init__(self, known: Sequence[KnownContract]) -> None:
        self._by_address = {k.contract.address.lower(): k for k in known}
        self._events: dict[tuple[str, bytes], tuple[KnownContract, str]] = {}
        for k in known:
            for entry in k.contract.abi:
                if entry.get("type") != "event" or entry.get("anonymous"):
                    continue
                event = cast(ABIEvent, entry)
                topic = bytes(event_abi_to_log_topic(event))
                self._events[(k.contract.address.lower(), topic)] = (k, event["name"])

    def label(self, address: str | None) -> str | None:
        known = self._by_address.get(str(address).lower()) if address else None
        return known.label if known else None

    def call(self, to: str | None, data: bytes) -> tuple[str | None, Any]:
        """The function a transaction to ``to`` called, with its arguments (None if unknown)."""
        known = self._by_address.get(str(to).lower()) if to else None
        if known is None or len(data) < 4:
            return None, None
        try:
            fn, args = known.contract.decode_function_input(data)
        except (ValueError, DecodingError):  # no function has this selector, or bad arguments
            return None, None
        return str(fn.fn_name), to_json(args)

    def events(self, logs: Iterable[Any]) -> list[dict[str, Any]]:
        """The receipt's logs, decoded where they come from a known contract."""
        out = []
        for log in logs:
            address = str(log["address"])
            topics = log["topics"]
            found = self._events.get((address.lower(), bytes(topics[0]))) if topics else None
            entry: dict[str, Any] = {
                "log_index": int(log["logIndex"]),
                "address": address,
                "contract": self.label(address),
                "event": None,
                "args": None,
            }
            if found is not None:
                known, name = found
                decoded = getattr(known.contract.events, name)().process_log(log)
                entry["event"], entry["args"] = name, to_json(dict(decoded["args"]))
            out.append(entry)
        return out


def describe_transaction(w3: Web3, tx_hash: str, decoder: Decoder) -> dict[str, Any] | None:
    """A mined (or pending) transaction with its receipt as JSON; None when the chain has none."""
    try:
        tx = w3.eth.get_transaction(HexStr(tx_hash))
    except TransactionNotFound:
        return None
    try:
        receipt: Any = w3.eth.get_transaction_receipt(HexStr(tx_hash))
    except TransactionNotFound:
        receipt = None
    to = tx.get("to")
    function, arguments = decoder.call(to, bytes(tx.get("input", b"")))
    block = tx.get("blockNumber")
    timestamp = int(w3.eth.get_block(block)["timestamp"]) if block is not None else None
    return {
        "hash": Web3.to_hex(tx["hash"]),
        "status": (
            "pending" if receipt is None else "success" if receipt["status"] == 1 else "reverted"
        ),
        "block": block,
        "block_hash": Web3.to_hex(tx["blockHash"]) if tx.get("blockHash") else None,
        "timestamp": timestamp,
        "index": tx.get("transactionIndex"),
        "from": tx["from"],
        "to": to,
        "to_label": decoder.label(to),
        "function": function,
        "arguments": arguments,
        "value": str(tx.get("value", 0)),
        "nonce": tx["nonce"],
        "gas_limit": tx["gas"],
        "gas_used": None if receipt is None else int(receipt["gasUsed"]),
        "effective_gas_price": (
            None if receipt is None else str(receipt.get("effectiveGasPrice", 0))
        ),
        "contract_created": None if receipt is None else receipt.get("contractAddress"),
        "events": [] if receipt is None else decoder.events(receipt["logs"]),
    }


def describe_block(w3: Web3, number: int, decoder: Decoder) -> dict[str, Any] | None:
    """Block ``number`` with its transactions (hash, from, to, function) as JSON; None when the
    chain has no such block yet."""
    try:
        block = w3.eth.get_block(number)
    except BlockNotFound:
        return None
    listed: list[Any] = list(block["transactions"])
    transactions = []
    for tx_hash in listed[:MAX_BLOCK_TRANSACTIONS]:
        tx = w3.eth.get_transaction(HexStr(Web3.to_hex(tx_hash)))
        to = tx.get("to")
        transactions.append(
            {
                "hash": Web3.to_hex(tx["hash"]),
                "from": tx["from"],
                "to": to,
                "to_label": decoder.label(to),
                "function": decoder.call(to, bytes(tx.get("input", b"")))[0],
            }
        )
    return {
        "number": int(block["number"]),
        "hash": Web3.to_hex(block["hash"]),
        "parent_hash": Web3.to_hex(block["parentHash"]),
        "timestamp": int(block["timestamp"]),
        "gas_used": int(block["gasUsed"]),
        "gas_limit": int(block["gasLimit"]),
        "transaction_count": len(listed),
        "transactions": transactions,
    }
