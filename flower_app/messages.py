"""What the ServerApp and the ClientApps say to each other: records of scalars, never tensors.

- ``query`` (join): the server names the ledger, chain id and task; the node joins the task on
  chain with its own account (staking) if it has not, and replies with its address and rank.
- ``train``: the server names the task and the round it opened; the node trains from the
  round's global adapter (fetched from the store by the CID on chain), pins its update, commits
  CID + digest on chain, and replies with them and its metrics.

The replies are only hints for logs and progress: the server aggregates the commitments it reads
on chain, and :func:`confirm` tells which replies the chain bears out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flwr.app import ConfigRecord, MetricRecord, RecordDict

from loraledger.errors import ConfigError

INSTRUCTION = "loraledger"
REPLY = "loraledger-reply"
METRICS = "metrics"


@dataclass(frozen=True)
class Instruction:
    """The server's side of a message: which ledger, chain, task and round."""

    ledger: str
    chain_id: int
    task_id: int
    round: int = 0  # 0 for join

    def to_record(self) -> RecordDict:
        return RecordDict(
            {
                INSTRUCTION: ConfigRecord(
                    {
                        "ledger": self.ledger,
                        "chain-id": self.chain_id,
                        "task-id": self.task_id,
                        "round": self.round,
                    }
                )
            }
        )

    @classmethod
    def from_record(cls, content: RecordDict) -> Instruction:
        record = _config(content, INSTRUCTION)
        try:
            return cls(
                str(record["ledger"]),
                _int(record["chain-id"]),
                _int(record["task-id"]),
                _int(record["round"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed LoRA Ledger instruction: {exc}") from None

    def check_against(self, ledger: str, chain_id: int, task_id: int) -> None:
        """A node only follows instructions for the ledger, chain and task it is configured for."""
        if (self.ledger.lower(), self.chain_id, self.task_id) != (
            ledger.lower(),
            chain_id,
            task_id,
        ):
            raise ConfigError(
                f"the server names task {self.task_id} of ledger {self.ledger} "
                f"on chain {self.chain_id}; "
                f"this node is configured for task {task_id} of ledger {ledger} "
                f"on chain {chain_id}",
                hint="give the SuperNode the same network, ledger and task-id as the run",
            )


@dataclass(frozen=True)
class JoinReply:
    node: str
    rank: int
    joined_now: bool

    def to_record(self) -> RecordDict:
        return RecordDict(
            {
                REPLY: ConfigRecord(
                    {"node": self.node, "rank": self.rank, "joined-now": self.joined_now}
                )
            }
        )

    @classmethod
    def from_record(cls, content: RecordDict) -> JoinReply:
        record = _config(content, REPLY)
        try:
            return cls(str(record["node"]), _int(record["rank"]), bool(record["joined-now"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed join reply: {exc}") from None


@dataclass(frozen=True)
class TrainReply:
    node: str
    round: int
    cid: str
    digest: str
    num_examples: int
    rank: int
    resumed: bool
    train_seconds: float
    eval_loss_before: float | None = None
    eval_loss_after: float | None = None

    def to_record(self) -> RecordDict:
        metrics: dict[str, int | float | list[int] | list[float]] = {
            "num-examples": self.num_examples,
            "train-seconds": self.train_seconds,
        }
        if self.eval_loss_before is not None:
            metrics["eval-loss-before"] = self.eval_loss_before
        if self.eval_loss_after is not None:
            metrics["eval-loss-after"] = self.eval_loss_after
        return RecordDict(
            {
                REPLY: ConfigRecord(
                    {
                        "node": self.node,
                        "round": self.round,
                        "cid": self.cid,
                        "digest": self.digest,
                        "rank": self.rank,
                        "resumed": self.resumed,
                    }
                ),
                METRICS: MetricRecord(metrics),
            }
        )

    @classmethod
    def from_record(cls, content: RecordDict) -> TrainReply:
        record = _config(content, REPLY)
        metrics = content.metric_records.get(METRICS) or MetricRecord()
        try:
            return cls(
                node=str(record["node"]),
                round=_int(record["round"]),
                cid=str(record["cid"]),
                digest=str(record["digest"]),
                num_examples=_int(metrics["num-examples"]),
                rank=_int(record["rank"]),
                resumed=bool(record["resumed"]),
                train_seconds=_float(metrics["train-seconds"]),
                eval_loss_before=_optional(metrics, "eval-loss-before"),
                eval_loss_after=_optional(metrics, "eval-loss-after"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed train reply: {exc}") from None


def confirm(
    replies: list[TrainReply], on_chain: Mapping[str, str]
) -> tuple[list[TrainReply], list[TrainReply]]:
    """Split replies into those whose (node, digest) matches a commitment on chain and the rest.

    ``on_chain`` maps lower-cased node addresses to the committed sha256 hex digest.
    """
    confirmed: list[TrainReply] = []
    unconfirmed: list[TrainReply] = []
    for reply in replies:
        digest = on_chain.get(reply.node.lower())
        (
            confirmed if digest is not None and digest == reply.digest.lower() else unconfirmed
        ).append(reply)
    return confirmed, unconfirmed


def _config(content: RecordDict, key: str) -> ConfigRecord:
    record = content.config_records.get(key)
    if record is None:
        raise ConfigError(f"the message carries no {key!r} record")
    return record


def _optional(metrics: MetricRecord, key: str) -> float | None:
    return _float(metrics[key]) if key in metrics else None


def _int(value: object) -> int:
    """A record value as an int (Flower's record values are unions of scalars and lists)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return int(value)


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)
