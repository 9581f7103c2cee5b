"""The ledger's history, rebuilt from its event logs.

Storage keeps digests and counts; CIDs live only in events. These readers give typed records
for one task, from the deployment block on, so any process with the deployment record can
follow (or audit) a task without trusting anyone's database.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from web3 import Web3

from chain.bindings import Finalization, Ledger, TaskParams, unpack_privacy
from chain.errors import ChainMoved
from loraledger.errors import ChainError, ServiceUnavailable


class BondSlashReason(IntEnum):
    """Why a bond was slashed, mirroring ``ILoRALedger.BondSlashReason``."""

    REWARD_CHALLENGED = 0
    """It proposed or signed a result paying an account that took no part in the round."""
    CONFLICTING_RESULT = 1
    """It proposed or signed a result that conflicts with the finalized one."""


@dataclass(frozen=True)
class TaskCreated:
    """A ``TaskCreated`` event: the task's sponsor and every parameter it chose."""

    task_id: int
    sponsor: str
    token: str
    base_model_hash: bytes
    initial_global_cid: str
    initial_global_digest: bytes
    block: int
    params: TaskParams

    @property
    def aggregator(self) -> str:
        return self.params.aggregator

    @property
    def validators(self) -> tuple[str, ...]:
        return self.params.validators

    @property
    def quorum(self) -> int:
        return self.params.quorum


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
    """A ``NodeSlashed`` event: a slash of a round's slash root, executed."""

    task_id: int
    round: int
    node: str
    amount: int
    reason: int
    evidence_cid: str
    block: int


@dataclass(frozen=True)
class NodeLeaving:
    """A ``NodeLeaving`` event: a node started leaving (its stake still slashable)."""

    task_id: int
    node: str
    stake: int
    last_commit_round: int
    block: int


@dataclass(frozen=True)
class NodeLeft:
    """A ``NodeLeft`` event: a leaving node took its stake back."""

    task_id: int
    node: str
    stake_returned: int
    block: int


@dataclass(frozen=True)
class ScoresPosted:
    """A ``ScoresPosted`` event: a validator's score sheet for a round."""

    task_id: int
    round: int
    validator: str
    digest: bytes
    cid: str
    block: int


@dataclass(frozen=True)
class ResultProposed:
    """A ``ResultProposed`` event: a result proposed for a round, in the round's ``epoch``."""

    task_id: int
    round: int
    result_hash: bytes
    proposer: str
    epoch: int
    result: Finalization
    block: int


@dataclass(frozen=True)
class Attested:
    """An ``Attested`` event: a validator's signature of a proposal, checked and counted on
    chain; ``signature`` lets an audit check it again (:func:`chain.attest.recover_signer`)."""

    task_id: int
    round: int
    result_hash: bytes
    validator: str
    signature: bytes
    attestations: int
    block: int


@dataclass(frozen=True, kw_only=True)
class RoundFinalized(Finalization):
    """A ``RoundFinalized`` event: the :class:`Finalization` that reached its quorum, its hash,
    proposer, signers (bit i: validators[i]) and epoch, and where it landed."""

    task_id: int
    round: int
    block: int
    result_hash: bytes
    proposer: str
    signers: int
    epoch: int


@dataclass(frozen=True)
class RoundVoided:
    """A ``RoundVoided`` event: a finalization voided by a challenge (``epoch``: the new one)."""

    task_id: int
    round: int
    result_hash: bytes
    challenger: str
    account: str
    amount: int
    epoch: int
    block: int


@dataclass(frozen=True)
class ProposalSlashed:
    """A ``ProposalSlashed`` event: a proposal conflicting with the finalized result."""

    task_id: int
    round: int
    result_hash: bytes
    finalized_hash: bytes
    slasher: str
    block: int


@dataclass(frozen=True)
class RoundAbandoned:
    task_id: int
    round: int
    epoch: int
    caller: str
    block: int


@dataclass(frozen=True)
class TaskCancelled:
    task_id: int
    sponsor: str
    rounds_opened: int
    available: int
    block: int


@dataclass(frozen=True)
class BondPosted:
    task_id: int
    account: str
    amount: int
    block: int


@dataclass(frozen=True)
class BondWithdrawn:
    task_id: int
    account: str
    amount: int
    block: int


@dataclass(frozen=True)
class BondSlashed:
    """A ``BondSlashed`` event: a bond taken into the task's pool, for a result of ``round``."""

    task_id: int
    round: int
    account: str
    amount: int
    reason: BondSlashReason
    block: int


@dataclass(frozen=True)
class RewardClaimed:
    task_id: int
    round: int
    node: str
    amount: int
    block: int


def _address(value: Any) -> str:
    return Web3.to_checksum_address(value)


class History:
    """Event readers for one deployed ledger, starting at ``from_block``."""

    def __init__(self, ledger: Ledger, from_block: int = 0) -> None:
        self.ledger = ledger
        self.from_block = from_block

    def _logs(self, name: str, **filters: Any) -> list[Any]:
        event = getattr(self.ledger.contract.events, name)
        try:
            logs = self.ledger.chain.logs(event, self.from_block, filters or None)
        except ServiceUnavailable:
            raise  # the chain does not answer: the loops wait for it
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
        p = a["params"]
        params = TaskParams(
            base_model_hash=bytes(p["baseModelHash"]),
            initial_global_cid=p["initialGlobalCid"],
            initial_global_digest=bytes(p["initialGlobalDigest"]),
            token=_address(p["token"]),
            reward_per_round=int(p["rewardPerRound"]),
            min_stake=int(p["minStake"]),
            submission_window=int(p["submissionWindow"]),
            max_rounds=int(p["maxRounds"]),
            aggregator=_address(p["aggregator"]),
            validators=tuple(_address(v) for v in p["validators"]),
            quorum=int(p["quorum"]),
            reveal_window=int(p["revealWindow"]),
            max_examples=int(p["maxExamples"]),
            aggregator_bond=int(p["aggregatorBond"]),
            validator_bond=int(p["validatorBond"]),
            validator_share_bps=int(p["validatorShareBps"]),
            challenge_window=int(p["challengeWindow"]),
            slash_window=int(p["slashWindow"]),
            grace_period=int(p["gracePeriod"]),
            privacy=unpack_privacy(int(p["privacy"])),
        )
        return TaskCreated(
            task_id,
            _address(a["sponsor"]),
            _address(a["token"]),
            params.base_model_hash,
            params.initial_global_cid,
            params.initial_global_digest,
            int(logs[0]["blockNumber"]),
            params,
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

    def opened_at(self, task_id: int, round_: int) -> int | None:
        """The block of the ``RoundOpened`` event of the round (None: not opened)."""
        logs = self._logs("RoundOpened", taskId=task_id, round=round_)
        return int(logs[-1]["blockNumber"]) if logs else None

    def newest_input(self, task_id: int, round_: int) -> int:
        """The block of the round's newest input event: its opening, a commitment, a reveal or
        a score sheet (what a result computed from the round's inputs must wait to confirm)."""
        blocks = [self.opened_at(task_id, round_) or 0]
        blocks += [e.block for e in self.commits(task_id, round_)]
        blocks += [e.block for e in self.reveals(task_id, round_)]
        blocks += [e.block for e in self.scores(task_id, round_)]
        return max(blocks)

    def submissions(self, task_id: int, round_: int | None = None) -> list[UpdateRevealed]:
        """The updates submitted to the task (or one round): its reveals. A commitment never
        revealed is no submission."""
        return self.reveals(task_id, round_)

    def slashes(self, task_id: int) -> list[NodeSlashed]:
        """Every ``NodeSlashed`` event of the task (slashes executed), in chain order."""
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

    def leaving(self, task_id: int) -> list[NodeLeaving]:
        """Every ``NodeLeaving`` event of the task, in chain order."""
        return [
            NodeLeaving(
                task_id,
                _address(log["args"]["node"]),
                int(log["args"]["stake"]),
                int(log["args"]["lastCommitRound"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("NodeLeaving", taskId=task_id)
        ]

    def left(self, task_id: int) -> list[NodeLeft]:
        """Every ``NodeLeft`` event of the task (stakes withdrawn), in chain order."""
        return [
            NodeLeft(
                task_id,
                _address(log["args"]["node"]),
                int(log["args"]["stakeReturned"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("NodeLeft", taskId=task_id)
        ]

    def scores(self, task_id: int, round_: int | None = None) -> list[ScoresPosted]:
        """``ScoresPosted`` events of the task (or one round), in chain order."""
        return [
            ScoresPosted(
                task_id,
                int(log["args"]["round"]),
                _address(log["args"]["validator"]),
                bytes(log["args"]["scoresDigest"]),
                log["args"]["scoresCid"],
                int(log["blockNumber"]),
            )
            for log in self._logs("ScoresPosted", **self._round_filters(task_id, round_))
        ]

    def proposals(self, task_id: int, round_: int | None = None) -> list[ResultProposed]:
        """``ResultProposed`` events of the task (or one round), every epoch, in chain order."""
        return [
            ResultProposed(
                task_id,
                int(log["args"]["round"]),
                bytes(log["args"]["resultHash"]),
                _address(log["args"]["proposer"]),
                int(log["args"]["epoch"]),
                Finalization.from_abi(log["args"]["result"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("ResultProposed", **self._round_filters(task_id, round_))
        ]

    def attestations(self, task_id: int, round_: int | None = None) -> list[Attested]:
        """``Attested`` events of the task (or one round), every proposal, in chain order."""
        return [
            Attested(
                task_id,
                int(log["args"]["round"]),
                bytes(log["args"]["resultHash"]),
                _address(log["args"]["validator"]),
                bytes(log["args"]["signature"]),
                int(log["args"]["attestations"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("Attested", **self._round_filters(task_id, round_))
        ]

    def finalized(self, task_id: int, *, include_voided: bool = False) -> list[RoundFinalized]:
        """The task's finalizations in chain order: those still standing (a challenge voids
        one), or every one with ``include_voided``. A standing finalization may still be in its
        challenge window (``Ledger.round_state`` says ``FINALIZED`` until it is ``SETTLED``)."""
        voided = set() if include_voided else {v.result_hash for v in self.voided(task_id)}
        out = []
        for log in self._logs("RoundFinalized", taskId=task_id):
            a = log["args"]
            result = Finalization.from_abi(a["result"])
            result_hash = bytes(a["resultHash"])
            if result_hash in voided:
                continue
            out.append(
                RoundFinalized(
                    global_cid=result.global_cid,
                    global_digest=result.global_digest,
                    report_cid=result.report_cid,
                    accepted=result.accepted,
                    rejected=result.rejected,
                    reward_root=result.reward_root,
                    reward_total=result.reward_total,
                    slash_root=result.slash_root,
                    scores_bitmap=result.scores_bitmap,
                    task_id=task_id,
                    round=int(a["round"]),
                    block=int(log["blockNumber"]),
                    result_hash=result_hash,
                    proposer=_address(a["proposer"]),
                    signers=int(a["signers"]),
                    epoch=int(a["epoch"]),
                )
            )
        return out

    def finalization(self, task_id: int, round_: int) -> RoundFinalized | None:
        """The standing finalization of ``round_`` (None when it has none)."""
        records = [r for r in self.finalized(task_id) if r.round == round_]
        return records[-1] if records else None

    def voided(self, task_id: int) -> list[RoundVoided]:
        """Every ``RoundVoided`` event of the task (finalizations voided by a challenge)."""
        return [
            RoundVoided(
                task_id,
                int(log["args"]["round"]),
                bytes(log["args"]["resultHash"]),
                _address(log["args"]["challenger"]),
                _address(log["args"]["account"]),
                int(log["args"]["amount"]),
                int(log["args"]["epoch"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("RoundVoided", taskId=task_id)
        ]

    def proposal_slashes(self, task_id: int) -> list[ProposalSlashed]:
        """Every ``ProposalSlashed`` event of the task (conflicting proposals punished)."""
        return [
            ProposalSlashed(
                task_id,
                int(log["args"]["round"]),
                bytes(log["args"]["resultHash"]),
                bytes(log["args"]["finalizedHash"]),
                _address(log["args"]["slasher"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("ProposalSlashed", taskId=task_id)
        ]

    def abandoned(self, task_id: int) -> list[RoundAbandoned]:
        """Every ``RoundAbandoned`` event of the task."""
        return [
            RoundAbandoned(
                task_id,
                int(log["args"]["round"]),
                int(log["args"]["epoch"]),
                _address(log["args"]["caller"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("RoundAbandoned", taskId=task_id)
        ]

    def cancelled(self, task_id: int) -> TaskCancelled | None:
        """The task's ``TaskCancelled`` event (None while it is not cancelled)."""
        logs = self._logs("TaskCancelled", taskId=task_id)
        if not logs:
            return None
        a = logs[0]["args"]
        return TaskCancelled(
            task_id,
            _address(a["sponsor"]),
            int(a["roundsOpened"]),
            int(a["available"]),
            int(logs[0]["blockNumber"]),
        )

    task_cancelled = cancelled

    def bonds(self, task_id: int) -> list[BondPosted]:
        """Every ``BondPosted`` event of the task, in chain order."""
        return [
            BondPosted(
                task_id,
                _address(log["args"]["account"]),
                int(log["args"]["amount"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("BondPosted", taskId=task_id)
        ]

    def bond_withdrawals(self, task_id: int) -> list[BondWithdrawn]:
        """Every ``BondWithdrawn`` event of the task, in chain order."""
        return [
            BondWithdrawn(
                task_id,
                _address(log["args"]["account"]),
                int(log["args"]["amount"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("BondWithdrawn", taskId=task_id)
        ]

    def bond_slashes(self, task_id: int) -> list[BondSlashed]:
        """Every ``BondSlashed`` event of the task, in chain order."""
        return [
            BondSlashed(
                task_id,
                int(log["args"]["round"]),
                _address(log["args"]["account"]),
                int(log["args"]["amount"]),
                BondSlashReason(log["args"]["reason"]),
                int(log["blockNumber"]),
            )
            for log in self._logs("BondSlashed", taskId=task_id)
        ]

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
        raise ChainMoved(
            f"task {task_id} never published a global adapter with digest {digest.hex()}",
            hint="a reorganisation may have removed the round that published it, or the RPC "
            "node lags behind; read the chain again",
        )
