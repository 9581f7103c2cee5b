"""What the audit, the CLI and the dashboard show of a ledger's history: typed views of tasks,
rounds and submissions rebuilt from the chain (events and views) and the pinned reports.

:class:`HistoryReader` only reads; :class:`aggregator.audit.Auditor` adds the checks.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chain.bindings import Ledger
from chain.events import History, RewardClaimed, RoundFinalized, UpdateSubmitted
from ipfs import ContentStore
from loraledger.errors import ConfigError, LoRALedgerError
from loraledger.report import RoundReport, fetch_report

__all__ = [
    "HistoryReader",
    "RoundDetail",
    "RoundNotAuditable",
    "RoundView",
    "SubmissionView",
    "TaskHistory",
    "TaskView",
    "to_json",
]


class RoundNotAuditable(ConfigError):
    """The round asked for does not exist or is not finalized yet."""


@dataclass(frozen=True)
class TaskView:
    """A task as its events and views record it (token amounts in base units)."""

    task_id: int
    sponsor: str
    token: str
    base_model_hash: str
    initial_global_cid: str
    initial_global_digest: str
    created_block: int
    reward_per_round: int
    rounds_opened: int
    rounds_finalized: int
    max_rounds: int
    active_nodes: int
    nodes_joined: int
    funded: int
    reserved: int
    paid: int
    withdrawn: int
    complete: bool


@dataclass(frozen=True)
class SubmissionView:
    """One commitment of a round with the aggregator's verdict and the node's reward."""

    node: str
    cid: str
    digest: str
    num_examples: int
    block: int
    verdict: str | None  # None until the round's report is readable
    reason: str | None
    detail: str | None
    weight: float | None
    quality: float | None
    eval_loss: float | None
    reward: int
    claimed: bool
    score: float | None = None  # contribution score (the contribution reward rule)
    weight_examples: int | None = None  # examples it weighed with (the claim capped)
    slashed: int = 0  # stake the report slashes for proven cheating


@dataclass(frozen=True)
class RoundView:
    """One round: chain counts, the report's verdict counts and metrics, rewards reserved and
    claimed."""

    task_id: int
    round: int
    finalized: bool
    deadline: int
    submitted: int
    accepted: int
    rejected: int
    reasons: dict[str, int]
    start_eval_loss: float | None
    global_eval_loss: float | None
    nodes_eval_loss: float | None
    reward_total: int
    claimed: int
    report_cid: str | None
    global_cid: str | None
    strategy: str | None
    report_error: str | None  # why the report could not be read, when it could not
    reveal_deadline: int = 0
    committed: int = 0  # commitments; ``submitted`` counts the reveals
    unrevealed: tuple[str, ...] = ()  # nodes that committed and never revealed (earn nothing)
    reward_rule: str | None = None  # the report's params.reward_rule
    slashed: int = 0  # stake slashed for proven cheating in this round (the report's slashes)


@dataclass(frozen=True)
class RoundDetail:
    round: RoundView
    submissions: tuple[SubmissionView, ...]


@dataclass(frozen=True)
class TaskHistory:
    task: TaskView
    rounds: tuple[RoundDetail, ...]


def to_json(value: Any) -> Any:
    """A view as JSON-ready data; token amounts (ints above 2**53) become decimal strings."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: to_json(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    raise TypeError(f"cannot serialize {type(value).__name__}")  # pragma: no cover


class HistoryReader:
    """The history of the ledger behind ``history``, with the reports from ``store``.

    Reports are cached by CID (content-addressed, so a cached copy is never stale).
    """

    def __init__(self, ledger: Ledger, history: History, store: ContentStore) -> None:
        self.ledger = ledger
        self.history = history
        self.store = store
        self._reports: dict[str, RoundReport] = {}

    def task_ids(self) -> list[int]:
        return list(range(1, self.ledger.task_count() + 1))

    def task(self, task_id: int) -> TaskView:
        """One task from its ``TaskCreated`` event and the contract's views."""
        info = self.ledger.task(task_id)  # raises LedgerUnknownTask for a wrong id
        created = self.history.task_created(task_id)
        finalized = sum(1 for _ in self.history.finalized(task_id))
        return TaskView(
            task_id=task_id,
            sponsor=info.sponsor,
            token=info.token,
            base_model_hash=info.base_model_hash.hex(),
            initial_global_cid=created.initial_global_cid,
            initial_global_digest=created.initial_global_digest.hex(),
            created_block=created.block,
            reward_per_round=info.reward_per_round,
            rounds_opened=info.rounds_opened,
            rounds_finalized=finalized,
            max_rounds=info.max_rounds,
            active_nodes=info.active_nodes,
            nodes_joined=len(self.history.joined(task_id)),
            funded=info.funded,
            reserved=info.reserved,
            paid=info.paid,
            withdrawn=info.withdrawn,
            complete=self.ledger.is_complete(task_id),
        )

    def tasks(self) -> list[TaskView]:
        return [self.task(task_id) for task_id in self.task_ids()]

    def history_of(self, task_id: int) -> TaskHistory:
        """The task and every round with its submissions, verdicts and rewards."""
        task = self.task(task_id)
        finalized = {r.round: r for r in self.history.finalized(task_id)}
        events = by_round(self.history.submissions(task_id))
        claims = by_round(self.history.claims(task_id))
        rounds = tuple(
            self._round_detail(task_id, n, finalized.get(n), events.get(n, []), claims.get(n, []))
            for n in range(1, task.rounds_opened + 1)
        )
        return TaskHistory(task, rounds)

    def rounds(self, task_id: int) -> list[RoundView]:
        return [detail.round for detail in self.history_of(task_id).rounds]

    def round_detail(self, task_id: int, round_: int) -> RoundDetail:
        opened = self.ledger.task(task_id).rounds_opened
        if not 1 <= round_ <= opened:
            raise RoundNotAuditable(
                f"task {task_id} has no round {round_} ({opened} opened)",
                hint=f"`loraledger audit rounds {task_id}` lists them",
            )
        record = next((r for r in self.history.finalized(task_id) if r.round == round_), None)
        events = self.history.submissions(task_id, round_)
        claims = [c for c in self.history.claims(task_id) if c.round == round_]
        return self._round_detail(task_id, round_, record, events, claims)

    def report(self, cid: str) -> RoundReport:
        """The report pinned under ``cid`` (the store checks its bytes against the CID)."""
        cached = self._reports.get(cid)
        if cached is None:
            cached = self._reports[cid] = fetch_report(self.store, cid)
        return cached

    def _round_detail(
        self,
        task_id: int,
        round_: int,
        record: RoundFinalized | None,
        events: Sequence[UpdateSubmitted],
        claims: Sequence[RewardClaimed],
    ) -> RoundDetail:
        info = self.ledger.round(task_id, round_)
        report: RoundReport | None = None
        error = None
        if record is not None:
            try:
                report = self.report(record.report_cid)
            except LoRALedgerError as exc:
                error = str(exc)
        verdicts = {s.node.lower(): s for s in report.submissions} if report else {}
        lines = {line.node.lower(): line.amount for line in report.rewards.lines} if report else {}
        claimed = {c.node.lower() for c in claims}
        slashed = {x.node.lower(): x.amount for x in report.slashes} if report else {}
        rows = []
        for event in events:
            key = event.node.lower()
            verdict = verdicts.get(key)
            rows.append(
                SubmissionView(
                    node=event.node,
                    cid=event.cid,
                    digest=event.digest.hex(),
                    num_examples=event.num_examples,
                    block=event.block,
                    verdict=verdict.verdict if verdict else None,
                    reason=verdict.reason if verdict else None,
                    detail=verdict.detail if verdict else None,
                    weight=verdict.weight if verdict else None,
                    quality=verdict.quality if verdict else None,
                    eval_loss=verdict.eval_loss if verdict else None,
                    reward=lines.get(key, 0),
                    claimed=key in claimed,
                    score=verdict.score if verdict else None,
                    weight_examples=verdict.weight_examples if verdict else None,
                    slashed=slashed.get(key, 0),
                )
            )
        reasons = (
            Counter(s.reason or "unknown" for s in report.submissions if s.verdict == "rejected")
            if report
            else {}
        )
        metrics = report.metrics if report else {}
        revealed = {e.node.lower() for e in events}
        unrevealed = sorted(
            c.node for c in self.history.commits(task_id, round_) if c.node.lower() not in revealed
        )
        view = RoundView(
            task_id=task_id,
            round=round_,
            finalized=info.finalized,
            deadline=info.deadline,
            submitted=info.submissions,
            accepted=info.accepted,
            rejected=info.rejected,
            reasons=dict(sorted(reasons.items())),
            start_eval_loss=metrics.get("start_eval_loss"),
            global_eval_loss=metrics.get("global_eval_loss"),
            nodes_eval_loss=metrics.get("nodes_eval_loss"),
            reward_total=info.reward_total,
            claimed=info.claimed,
            report_cid=record.report_cid if record else None,
            global_cid=record.global_cid if record else None,
            strategy=report.strategy if report else None,
            report_error=error,
            reveal_deadline=info.reveal_deadline,
            committed=info.commits,
            unrevealed=tuple(unrevealed),
            reward_rule=str(report.params.get("reward_rule", "claimed")) if report else None,
            slashed=sum(slashed.values()),
        )
        return RoundDetail(view, tuple(rows))

    # ------------------------------------------------------------------ verifying


def by_round(items: Iterable[Any]) -> dict[int, list[Any]]:
    """Events grouped by their ``round``."""
    grouped: dict[int, list[Any]] = defaultdict(list)
    for item in items:
        grouped[item.round].append(item)
    return dict(grouped)
