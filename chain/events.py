"""The ledger's history, rebuilt from its event logs.

Storage keeps digests and counts; CIDs live only in events. These readers give typed records
for one task, from the deployment block on, so any process with the deployment record can
follow (or audit) a task without trusting anyone's database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from chain.bindings import Finalization, Ledger
from loraledger.errors import ChainError


@dataclass(frozen=True)
class TaskCreated:
    task_id: int
    sponsor: str
    token: str
    base_model_hash: bytes
    initial_global_cid: str
    initial_global_digest: bytes
    block: int


@dataclass(frozen=True)
class UpdateCommitted:
    """An ``UpdateCommitted`` event: a node's hidden commitment, and where it landed (chain
    order: ``block``, ``tx_index``, ``log_index``)."""

    task_id: int
    round: int
    node: str
    commitment: bytes
    block: int
    tx_index: int
    log_index: int


@dataclass(frozen=True)
class UpdateRevealed:
    """An ``UpdateRevealed`` event: the update a node committed to, now public."""

    task_id: int
    round: int
    node: str
    cid: str
    digest: bytes
    num_examples: int
    block: int


UpdateSubmitted = UpdateRevealed
"""A round's submitted update is its reveal (the name the audit package reads)."""


@dataclass(frozen=True)
class NodeSlashed:
    task_id: int
    round: int
    node: str
    amount: int
    reason: int
    evidence_cid: str
    block: int


@dataclass(frozen=True, kw_only=True)
class RoundFinalized(Finalization):
    """A ``RoundFinalized`` event: the :class:`Finalization` that went on chain, where."""

    task_id: int
    round: int
    block: int


@dataclass(frozen=True)
class RewardClaimed:
    task_id: int
    round: int
    node: str
    amount: int
    block: int


class History:
    """Event readers for one deployed ledger, starting at ``from_block``."""

    def __init__(self, ledger: Ledger, from_block: int = 0) -> None:
        self.ledger = ledger
        self.from_block = from_block

    def _logs(self, name: str, **filters: Any) -> list[Any]:
        event = getattr(self.ledger.contract.events, name)
        try:
            logs = event.get_logs(from_block=self.from_block, argument_filters=filters or None)
        except Exception as exc:
            raise ChainError(
                f"cannot read {name} events from {self.ledger.chain.network.name}: {exc}"
            ) from exc
        return sorted(
            logs,
            key=lambda log: (log["blockNumber"], log["transactionIndex"], log["logIndex"]),
        )

    def task_created(self, task_id: int) -> TaskCreated:
        logs = self._logs("TaskCreated", taskId=task_id)
        if not logs:
            raise ChainError(
                f"no TaskCreated event for task {task_id} since block {self.from_block}"
            )
        a = logs[0]["args"]
        return TaskCreated(
            task_id,
            a["sponsor"],
            a["token"],
            bytes(a["baseModelHash"]),
            a["initialGlobalCid"],
            bytes(a["initialGlobalDigest"]),
            int(logs[0]["blockNumber"]),
        )

    @staticmethod
    def _round_filters(task_id: int, round_: int | None) -> dict[str, Any]:
        filters: dict[str, Any] = {"taskId": task_id}
        if round_ is not None:
            filters["round"] = round_
        return filters

    def commits(self, task_id: int, round_: int | None = None) -> list[UpdateCommitted]:
        """``UpdateCommitted`` events of the task (or one round), in chain order."""
        return [
            UpdateCommitted(
                task_id,
                int(log["args"]["round"]),
                Web3.to_checksum_address(log["args"]["node"]),
                bytes(log["args"]["commitment"]),
                int(log["blockNumber"]),
                int(log["transactionIndex"]),
                int(log["logIndex"]),
            )
            for log in self._logs("UpdateCommitted", **self._round_filters(task_id, round_))
        ]

    def reveals(self, task_id: int, round_: int | None = None) -> list[UpdateRevealed]:
        """``UpdateRevealed`` events of the task (or one round), in chain order (the order of
        the reveals, not of the commitments)."""
        return [
            UpdateRevealed(
                task_id,
                int(log["args"]["round"]),
                Web3.to_checksum_address(log["args"]["node"]),
                log["args"]["cid"],
                bytes(log["args"]["digest"]),
                int(log["args"]["numExamples"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("UpdateRevealed", **self._round_filters(task_id, round_))
        ]

    def submissions(self, task_id: int, round_: int | None = None) -> list[UpdateRevealed]:
        """The updates submitted to the task (or one round): its reveals. A commitment never
        revealed is no submission."""
        return self.reveals(task_id, round_)

    def slashes(self, task_id: int) -> list[NodeSlashed]:
        """Every ``NodeSlashed`` event of the task, in chain order."""
        return [
            NodeSlashed(
                task_id,
                int(log["args"]["round"]),
                Web3.to_checksum_address(log["args"]["node"]),
                int(log["args"]["amount"]),
                int(log["args"]["reason"]),
                log["args"]["evidenceCid"],
                int(log["blockNumber"]),
            )
            for log in self._logs("NodeSlashed", taskId=task_id)
        ]

    def finalized(self, task_id: int) -> list[RoundFinalized]:
        out = []
        for log in self._logs("RoundFinalized", taskId=task_id):
            a = log["args"]
            out.append(
                RoundFinalized(
                    global_cid=a["globalCid"],
                    global_digest=bytes(a["globalDigest"]),
                    report_cid=a["reportCid"],
                    accepted=int(a["accepted"]),
                    rejected=int(a["rejected"]),
                    reward_root=bytes(a["rewardRoot"]),
                    reward_total=int(a["rewardTotal"]),
                    task_id=task_id,
                    round=int(a["round"]),
                    block=int(log["blockNumber"]),
                )
            )
        return out

    def claims(self, task_id: int) -> list[RewardClaimed]:
        """Every ``RewardClaimed`` event of the task, in chain order."""
        return [
            RewardClaimed(
                task_id,
                int(log["args"]["round"]),
                Web3.to_checksum_address(log["args"]["node"]),
                int(log["args"]["amount"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("RewardClaimed", taskId=task_id)
        ]

    def joined(self, task_id: int) -> list[str]:
        """Every node that ever joined the task (in order, once each)."""
        nodes = [
            Web3.to_checksum_address(log["args"]["node"])
            for log in self._logs("NodeJoined", taskId=task_id)
        ]
        return list(dict.fromkeys(nodes))

    def global_adapter_at(self, task_id: int, digest: bytes) -> str:
        """The CID under which the global adapter with ``digest`` was published for this task."""
        for record in reversed(self.finalized(task_id)):
            if record.global_digest == digest:
                return record.global_cid
        created = self.task_created(task_id)
        if created.initial_global_digest == digest:
            return created.initial_global_cid
        raise ChainError(
            f"task {task_id} never published a global adapter with digest {digest.hex()}"
        )
