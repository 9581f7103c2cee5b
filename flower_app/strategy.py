"""The aggregator as a Flower strategy: :class:`LedgerStrategy` drives
:class:`aggregator.round.RoundRunner` (the same verification, aggregation, publishing, rewards
and on-chain finalize as ``loraledger aggregator run``) from Flower's round loop.

- ``configure_train`` opens the round on chain and sends each sampled, joined node a train
  instruction (task, round): no arrays.
- ``aggregate_train`` reads the replies (each node committed to a hidden update) and waits
  until the commit phase is over (every joined node committed, or the window closed: a node
  that dropped out never blocks a round).
- ``configure_evaluate`` asks each node that committed to reveal its update (Flower's evaluate
  message carries the reveal instruction); ``aggregate_evaluate`` waits until the round is
  ready (every commitment revealed, or the reveal window closed), then finalizes it from the
  reveals on chain. A reply the chain does not bear out counts for nothing; a reveal made
  without a reply counts like any other; a commitment never revealed earns nothing.

Local dev chains (Ganache, anvil) mine only on transactions, so their clock stops when nobody
submits; while waiting for a window to close the strategy mines empty blocks on them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from aggregator.round import RoundOutcome, RoundRunner
from chain.round_state import RoundState
from flower_app.messages import Instruction, JoinReply, TrainReply, confirm
from loraledger.errors import ChainError, LoRALedgerError

logger = logging.getLogger(__name__)


@dataclass
class RoundLog:
    """What one Flower round did: instructions sent, replies, errors, and the chain's outcome."""

    round: int
    sent: int
    replies: list[TrainReply] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)  # Flower node id -> reason
    unconfirmed: list[TrainReply] = field(default_factory=list)
    committed: list[int] = field(default_factory=list)  # Flower node ids that replied
    revealed: list[TrainReply] = field(default_factory=list)
    outcome: RoundOutcome | None = None
    wait_seconds: float = 0.0
    seconds: float = 0.0


class LedgerStrategy(Strategy):
    """Flower's round loop over the ledger's rounds; ``members`` maps joined Flower node ids
    to their on-chain addresses (see :func:`join_nodes`)."""

    def __init__(
        self,
        runner: RoundRunner,
        members: dict[int, str],
        *,
        fraction_train: float = 1.0,
        poll_seconds: float = 1.0,
        window_timeout: float | None = None,
        seed: int = 0,
    ) -> None:
        self.runner = runner
        self.members = dict(members)
        self.fraction_train = fraction_train
        self.poll_seconds = poll_seconds
        self.window_timeout = window_timeout
        self.rounds: list[RoundLog] = []
        self._rng = random.Random(seed)
        self._began = 0.0

    def summary(self) -> None:
        ledger = self.runner.session.ledger
        logger.info(
            "LedgerStrategy: task %s on ledger %s (chain %s), %s joined nodes, fraction %.2f, "
            "strategy %s",
            self.runner.task_id,
            ledger.address,
            ledger.chain.chain_id,
            len(self.members),
            self.fraction_train,
            self.runner.settings.strategy.name,
        )

    # ------------------------------------------------------------------ train

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self._began = time.perf_counter()
        round_ = self.runner.open()
        if round_ == 0:
            raise ChainError(
                f"task {self.runner.task_id} is complete: no round left to open",
                hint="create a new task, or run fewer rounds",
            )
        connected = set(grid.get_node_ids())
        candidates = sorted(n for n in self.members if n in connected)
        size = max(1, round(len(candidates) * self.fraction_train)) if candidates else 0
        sampled = (
            sorted(self._rng.sample(candidates, size)) if size < len(candidates) else candidates
        )
        ledger = self.runner.session.ledger
        instruction = Instruction(
            ledger.address, ledger.chain.chain_id, self.runner.task_id, round_
        )
        self.rounds.append(RoundLog(round=round_, sent=len(sampled)))
        logger.info(
            "flower round %s -> ledger round %s: %s of %s joined nodes sampled",
            server_round,
            round_,
            len(sampled),
            len(self.members),
        )
        return [
            Message(instruction.to_record(), dst_node_id=n, message_type=MessageType.TRAIN)
            for n in sampled
        ]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        log = self.rounds[-1]
        for source, reply in _read_replies(log, replies, "replied with an error"):
            log.replies.append(reply)
            log.committed.append(source)
        waited = time.perf_counter()
        if not self.wait_for_reveals(log.round):
            raise ChainError(
                f"the commit phase of round {log.round} did not end within {self.window_timeout} s"
            )
        log.wait_seconds = time.perf_counter() - waited
        ledger = self.runner.session.ledger
        info = ledger.round(self.runner.task_id, log.round)
        metrics = MetricRecord(
            {"ledger-round": log.round, "replies": len(log.replies), "commits": info.commits}
        )
        return None, metrics

    def wait_for_reveals(self, round_: int) -> bool:
        """Wait until the commit phase of ``round_`` is over (``REVEALING`` or later), at most
        ``window_timeout`` seconds, keeping a local dev chain's clock moving."""
        ledger = self.runner.session.ledger
        began = time.monotonic()
        while ledger.round_state(self.runner.task_id, round_) is RoundState.OPEN:
            if self.window_timeout is not None and time.monotonic() - began > self.window_timeout:
                return False
            time.sleep(self.poll_seconds)
            ledger.chain.keep_clock()
        return True

    # ------------------------------------------------------------------ evaluate: the reveals

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The reveal instruction, to every node that committed this round."""
        if not self.rounds:
            return []
        log = self.rounds[-1]
        ledger = self.runner.session.ledger
        instruction = Instruction(
            ledger.address, ledger.chain.chain_id, self.runner.task_id, log.round
        )
        return [
            Message(instruction.to_record(), dst_node_id=n, message_type=MessageType.EVALUATE)
            for n in log.committed
        ]

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        log = self.rounds[-1]
        for _, reply in _read_replies(log, replies, "could not reveal"):
            log.revealed.append(reply)
        waited = time.perf_counter()
        if not self.wait_until_ready(log.round):
            raise ChainError(f"round {log.round} was not ready within {self.window_timeout} s")
        log.wait_seconds += time.perf_counter() - waited
        ledger, task_id = self.runner.session.ledger, self.runner.task_id
        on_chain = {
            e.node.lower(): e.digest.hex()
            for e in self.runner.session.history.submissions(task_id, log.round)
        }
        _, log.unconfirmed = confirm(log.revealed or log.replies, on_chain)
        for reply in log.unconfirmed:
            logger.warning(
                "round %s: %s replied %s but the chain has no such commitment",
                log.round,
                reply.node,
                reply.cid,
            )
        outcome = self.runner.finalize(log.round)
        # the next round opens once this one settles (its challenge window passed)
        self.runner.settle(log.round, poll_seconds=self.poll_seconds, timeout=self.window_timeout)
        log.outcome = outcome
        log.seconds = time.perf_counter() - self._began
        info = ledger.round(task_id, log.round)
        metrics = MetricRecord(
            {
                "ledger-round": log.round,
                "replies": len(log.replies),
                "errors": len(log.errors),
                "committed": info.commits,
                "revealed": len(on_chain),
                "accepted": info.accepted,
                "rejected": info.rejected,
                "reward-total": float(info.reward_total),
                "round-seconds": log.seconds,
                "wait-seconds": log.wait_seconds,
            }
        )
        return metrics

    def wait_until_ready(self, round_: int) -> bool:
        """Wait for ``RoundRunner.ready`` (every commitment revealed, or the reveal window
        over), at most ``window_timeout`` seconds (the runner keeps a local dev chain's clock
        moving)."""
        return self.runner.wait(round_, poll_seconds=self.poll_seconds, timeout=self.window_timeout)


def short_reason(reason: str | None) -> str:
    """The message of a ClientApp's exception, without the traceback Flower wraps around it."""
    if not reason:
        return "no reason given"
    marker = "Message: "
    text = reason[reason.rfind(marker) + len(marker) :] if marker in reason else reason
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0].rstrip("'>") if lines else reason.strip()


def join_nodes(
    grid: Grid,
    instruction: Instruction,
    *,
    min_nodes: int,
    timeout: float,
    poll_seconds: float = 1.0,
) -> dict[int, JoinReply]:
    """Wait for ``min_nodes`` SuperNodes, ask every connected one to join the task on chain
    (each stakes with its own account) and return the ones that did, by Flower node id."""
    deadline = time.monotonic() + timeout
    while len(nodes := sorted(grid.get_node_ids())) < min_nodes:
        if time.monotonic() > deadline:
            raise ChainError(
                f"only {len(nodes)} of the {min_nodes} nodes needed connected "
                f"within {timeout:.0f} s",
                hint="start more SuperNodes, or lower min-nodes",
            )
        time.sleep(poll_seconds)
    messages = [
        Message(instruction.to_record(), dst_node_id=n, message_type=MessageType.QUERY)
        for n in nodes
    ]
    members: dict[int, JoinReply] = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        node_id = reply.metadata.src_node_id
        if reply.has_error():
            logger.warning("node %s could not join: %s", node_id, short_reason(reply.error.reason))
            continue
        members[node_id] = JoinReply.from_record(reply.content)
    if len(members) < min_nodes:
        raise ChainError(
            f"only {len(members)} of the {min_nodes} nodes needed joined task {instruction.task_id}"
        )
    logger.info("%s nodes joined task %s", len(members), instruction.task_id)
    return members


def _read_replies(
    log: RoundLog, replies: Iterable[Message], failed: str
) -> list[tuple[int, TrainReply]]:
    """The well-formed replies as ``(source node id, reply)``; an error reply or a malformed
    one counts for nothing and is recorded in ``log.errors`` (``failed`` says what it means)."""
    read = []
    for message in replies:
        source = message.metadata.src_node_id
        if message.has_error():
            log.errors[source] = short_reason(message.error.reason)
            logger.warning(
                "round %s: node %s %s: %s", log.round, source, failed, log.errors[source]
            )
            continue
        try:
            read.append((source, TrainReply.from_record(message.content)))
        except LoRALedgerError as exc:  # a malformed reply counts for nothing
            log.errors[source] = str(exc)
    return read
