"""Reward tables as Merkle trees in OpenZeppelin's standard format.

Leaves are ``keccak256(bytes.concat(keccak256(abi.encode(taskId, round, node, amount))))``
(double hashed, as ``@openzeppelin/merkle-tree``'s StandardMerkleTree), pairs are hashed in
sorted order (``MerkleProof``'s commutative hash), and the tree is laid out as the JS library
lays it out (leaves sorted by hash, stored from the end of an array), so roots and proofs match
that library byte for byte. Proof length grows with log2(number of entries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from loraledger.errors import ConfigError

LEAF_TYPES = ("uint256", "uint32", "address", "uint256")


@dataclass(frozen=True)
class RewardEntry:
    node: str
    amount: int


def leaf_hash(task_id: int, round_: int, node: str, amount: int) -> bytes:
    """The leaf the contract rebuilds in ``rewardLeaf``."""
    return keccak(keccak(encode(LEAF_TYPES, (task_id, round_, to_checksum_address(node), amount))))


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


class RewardTree:
    """The Merkle tree of one round's reward table."""

    def __init__(self, task_id: int, round_: int, entries: Sequence[RewardEntry]) -> None:
        if not entries:
            raise ConfigError("a reward tree needs at least one entry")
        nodes = [to_checksum_address(e.node) for e in entries]
        if len(set(nodes)) != len(nodes):
            raise ConfigError("a reward table lists each node once")
        for entry in entries:
            if entry.amount <= 0:
                raise ConfigError(
                    f"reward amounts must be positive, got {entry.amount} for {entry.node}"
                )
        self.task_id = task_id
        self.round = round_
        self.entries = tuple(
            RewardEntry(node, e.amount) for node, e in zip(nodes, entries, strict=True)
        )
        leaves = sorted(leaf_hash(task_id, round_, e.node, e.amount) for e in self.entries)
        n = len(leaves)
        tree: list[bytes] = [b""] * (2 * n - 1)
        for i, leaf in enumerate(leaves):
            tree[len(tree) - 1 - i] = leaf
        for i in range(len(tree) - 1 - n, -1, -1):
            tree[i] = _hash_pair(tree[2 * i + 1], tree[2 * i + 2])
        self._tree = tree
        self._index = {leaf: len(tree) - 1 - i for i, leaf in enumerate(leaves)}

    @property
    def root(self) -> bytes:
        return self._tree[0]

    @property
    def total(self) -> int:
        return sum(e.amount for e in self.entries)

    def proof(self, node: str) -> list[bytes]:
        """Sibling hashes from the node's leaf up to the root."""
        address = to_checksum_address(node)
        entry = next((e for e in self.entries if e.node == address), None)
        if entry is None:
            raise ConfigError(f"{address} has no entry in the reward table of round {self.round}")
        i = self._index[leaf_hash(self.task_id, self.round, address, entry.amount)]
        proof = []
        while i > 0:
            sibling = i - 1 if i % 2 == 0 else i + 1
            proof.append(self._tree[sibling])
            i = (i - 1) // 2
        return proof


def verify(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """What ``MerkleProof.verify`` computes on chain."""
    computed = leaf
    for sibling in proof:
        computed = _hash_pair(computed, sibling)
    return computed == root
