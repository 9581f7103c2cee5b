"""The ledger's history, rebuilt from its event logs.

Storage keeps digests and counts; CIDs live only in events. These readers give typed records
for one task, from the deployment block on, so any process with the deployment record can
follow (or audit) a task without trusting anyone's database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from chain.bindings import Ledger
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
class UpdateSubmitted:
    task_id: int
    round: int
    node: str
    cid: str
    digest: bytes
    num_examples: int
    block: int


@dataclass(frozen=True)
class RoundFinalized:
    task_id: int
    round: int
    global_cid: str
    global_digest: bytes
    report_cid: str
    accepted: int
    rejected: int
    reward_root: bytes
    reward_total: int
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
        except Exception as exc:  # noqa: BLE001 - RPC errors of every provider
            raise ChainError(f"cannot read {name} events from {self.ledger.chain.network.name}: {exc}") from exc
        return sorted(logs, key=lambda log: (log["blockNumber"], log["logIndex"]))

    def task_created(self, task_id: int) -> TaskCreated:
        logs = self._logs("TaskCreated", taskId=task_id)
        if not logs:
            raise ChainError(f"no TaskCreated event for task {task_id} since block {self.from_block}")
        a = logs[0]["args"]
        return TaskCreated(task_id, a["sponsor"], a["token"], bytes(a["baseModelHash"]), a["initialGlobalCid"],
                           bytes(a["initialGlobalDigest"]), int(logs[0]["blockNumber"]))  # fmt: skip

    def submissions(self, task_id: int, round_: int | None = None) -> list[UpdateSubmitted]:
        filters: dict[str, Any] = {"taskId": task_id}
        if round_ is not None:
            filters["round"] = round_
        return [
            UpdateSubmitted(task_id, int(log["args"]["round"]), Web3.to_checksum_address(log["args"]["node"]),
                            log["args"]["cid"], bytes(log["args"]["digest"]), int(log["args"]["numExamples"]),
                            int(log["blockNumber"]))  # fmt: skip
            for log in self._logs("UpdateSubmitted", **filters)
        ]

    def finalized(self, task_id: int) -> list[RoundFinalized]:
        out = []
        for log in self._logs("RoundFinalized", taskId=task_id):
            a = log["args"]
            out.append(RoundFinalized(task_id, int(a["round"]), a["globalCid"], bytes(a["globalDigest"]),
                                      a["reportCid"], int(a["accepted"]), int(a["rejected"]), bytes(a["rewardRoot"]),
                                      int(a["rewardTotal"]), int(log["blockNumber"])))  # fmt: skip
        return out

    def global_adapter_at(self, task_id: int, digest: bytes) -> str:
        """The CID under which the global adapter with ``digest`` was published for this task."""
        for record in reversed(self.finalized(task_id)):
            if record.global_digest == digest:
                return record.global_cid
        created = self.task_created(task_id)
        if created.initial_global_digest == digest:
            return created.initial_global_cid
        raise ChainError(f"task {task_id} never published a global adapter with digest {digest.hex()}")
