"""Reward and slash tables as Merkle trees in OpenZeppelin's standard format.

Reward leaves are ``keccak256(bytes.concat(keccak256(abi.encode(taskId, round, node,
amount))))`` and slash leaves ``keccak256(bytes.concat(keccak256(abi.encode(taskId, round,
node, amount, reason, keccak256(bytes(evidenceCid))))))`` (double hashed, as
``@openzeppelin/merkle-tree``'s StandardMerkleTree), pairs are hashed in sorted order
(``MerkleProof``'s commutative hash), and the tree is laid out as the JS library lays it out
(leaves sorted by hash, stored from the end of an array), so roots and proofs match that
library byte for byte. Proof length grows with log2(number of entries). One tree
implementation (:class:`MerkleTree`) serves both tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi.abi import encode
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from loraledger.errors import ConfigError

LEAF_TYPES = ("uint256", "uint32", "address", "uint256")
SLASH_LEAF_TYPES = ("uint256", "uint32", "address", "uint256", "uint16", "bytes32")


@dataclass(frozen=True)
class RewardEntry:
    node: str
    amount: int


@dataclass(frozen=True)
class SlashEntry:
    """One slash of a round: ``amount`` of ``node``'s stake, for ``reason`` (a code of the round
    report's reason table), with the evidence at ``evidence_cid``."""

    node: str
    amount: int
    reason: int
    evidence_cid: str


def leaf_hash(task_id: int, round_: int, node: str, amount: int) -> bytes:
    """The reward leaf the contract rebuilds in ``rewardLeaf``."""
    return keccak(keccak(encode(LEAF_TYPES, (task_id, round_, to_checksum_address(node), amount))))


def slash_leaf_hash(task_id: int, round_: int, entry: SlashEntry) -> bytes:
    """The slash leaf the contract rebuilds in ``slashLeaf``."""
    values = (
        task_id,
        round_,
        to_checksum_address(entry.node),
        entry.amount,
        entry.reason,
        keccak(text=entry.evidence_cid),
    )
    return keccak(keccak(encode(SLASH_LEAF_TYPES, values)))


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


class MerkleTree:
    """A tree over distinct leaves, laid out as OpenZeppelin's StandardMerkleTree."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ConfigError("a Merkle tree needs at least one leaf")
        ordered = sorted(leaves)
        n = len(ordered)
        tree: list[bytes] = [b""] * (2 * n - 1)
        for i, leaf in enumerate(ordered):
            tree[len(tree) - 1 - i] = leaf
        for i in range(len(tree) - 1 - n, -1, -1):
            tree[i] = _hash_pair(tree[2 * i + 1], tree[2 * i + 2])
        self._tree = tree
        self._index = {leaf: len(tree) - 1 - i for i, leaf in enumerate(ordered)}

    @property
    def root(self) -> bytes:
        return self._tree[0]

    def proof(self, leaf: bytes) -> list[bytes]:
        """Sibling hashes from ``leaf`` up to the root."""
        i = self._index[leaf]
        proof = []
        while i > 0:
            sibling = i - 1 if i % 2 == 0 else i + 1
            proof.append(self._tree[sibling])
            i = (i - 1) // 2
        return proof


def _checked_nodes(
    entries: Sequence[RewardEntry] | Sequence[SlashEntry], table: str
) -> list[ChecksumAddress]:
    if not entries:
        raise ConfigError(f"a {table} tree needs at least one entry")
    nodes = [to_checksum_address(e.node) for e in entries]
    if len(set(nodes)) != len(nodes):
        raise ConfigError(f"a {table} table lists each node once")
    for entry in entries:
        if entry.amount <= 0:
            raise ConfigError(
                f"{table} amounts must be positive, got {entry.amount} for {entry.node}"
            )
    return nodes


class RewardTree:
    """The Merkle tree of one round's reward table."""

    def __init__(self, task_id: int, round_: int, entries: Sequence[RewardEntry]) -> None:
        nodes = _checked_nodes(entries, "reward")
        self.task_id = task_id
        self.round = round_
        self.entries = tuple(
            RewardEntry(node, e.amount) for node, e in zip(nodes, entries, strict=True)
        )
        self._amounts = {e.node: e.amount for e in self.entries}  # a proof per line: O(1) each
        self._tree = MerkleTree(
            [leaf_hash(task_id, round_, e.node, e.amount) for e in self.entries]
        )

    @property
    def root(self) -> bytes:
        return self._tree.root

    @property
    def total(self) -> int:
        return sum(e.amount for e in self.entries)

    def proof(self, node: str) -> list[bytes]:
        """Sibling hashes from the node's leaf up to the root."""
        address = to_checksum_address(node)
        amount = self._amounts.get(address)
        if amount is None:
            raise ConfigError(f"{address} has no entry in the reward table of round {self.round}")
        return self._tree.proof(leaf_hash(self.task_id, self.round, address, amount))


class SlashTree:
    """The Merkle tree of one round's slashes (its root goes into the signed result)."""

    def __init__(self, task_id: int, round_: int, entries: Sequence[SlashEntry]) -> None:
        nodes = _checked_nodes(entries, "slash")
        self.task_id = task_id
        self.round = round_
        self.entries = tuple(
            SlashEntry(node, e.amount, e.reason, e.evidence_cid)
            for node, e in zip(nodes, entries, strict=True)
        )
        self._by_node = {e.node: e for e in self.entries}
        self._tree = MerkleTree([slash_leaf_hash(task_id, round_, e) for e in self.entries])

    @property
    def root(self) -> bytes:
        return self._tree.root

    def entry(self, node: str) -> SlashEntry:
        """The slash of ``node`` in this table."""
        address = to_checksum_address(node)
        found = self._by_node.get(address)
        if found is None:
            raise ConfigError(f"{address} has no entry in the slash table of round {self.round}")
        return found

    def proof(self, node: SlashEntry | str) -> list[bytes]:
        """Sibling hashes from the leaf of ``node`` (its address, or its entry) to the root."""
        entry = self.entry(node if isinstance(node, str) else node.node)
        return self._tree.proof(slash_leaf_hash(self.task_id, self.round, entry))


def verify(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """What ``MerkleProof.verify`` computes on chain."""
    computed = leaf
    for sibling in proof:
        computed = _hash_pair(computed, sibling)
    return computed == root
