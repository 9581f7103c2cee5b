"""Independent audit of a task's rounds from the chain and content-addressed storage alone.

An auditor needs nothing the aggregator kept: the deployment record (ledger address and
deploy block), a chain RPC and a store that holds the pinned content. From these,
:class:`Auditor` rebuilds the history of a task (``tasks``, ``history``: what the dashboard
and ``loraledger audit tasks|rounds|round`` show) and re-checks every finalized round
(``verify``), each check an :class:`AuditCheck` naming the round, the check and what differs:

``report``
    the report's bytes fetch, hash to the CID the ``RoundFinalized`` event holds (CID
    recomputed here, not trusted to the store), parse, and name this task, round, start
    digest and the global adapter CID/digest that went on chain;
``submissions``
    the report lists exactly the round's ``UpdateSubmitted`` events (same nodes, CIDs,
    digests, examples; none dropped, added or listed twice) and its verdict counts equal the
    on-chain accepted/rejected counts;
``updates``
    every accepted update fetches, has the sha256 committed on chain, is a valid update of
    this task and round by the node that committed it, on the committed examples, of the
    task's shape, with the tensor digest the report records;
``aggregate``
    :func:`aggregator.combine.combine` re-run on the accepted updates (strategy from
    ``params.strategy``, compute dtype from ``params.compute``, start adapter from the round's
    on-chain start digest, optimizer state from ``params.server_state_cid_in``) reproduces
    the published global adapter, whose bytes hash to the on-chain global digest: each
    module's weight change within :data:`~aggregator.reproduce.TOLERANCE`, and the factors
    where they are unique (:func:`aggregator.reproduce.compare_adapters`); the weights and
    the optimizer state the report records are reproduced too;
``rewards``
    quality factors follow from the reported losses, the amounts follow the reward rule
    (:func:`aggregator.rewards.split_pool`) from the accepted submissions, the total stays
    within the pool and equals the on-chain total, the Merkle root rebuilt from the lines
    equals the report's and the on-chain root, and every proof verifies against it;
``claims``
    every ``RewardClaimed`` event of the round pays a node of the table its amount, once,
    and the round's on-chain claimed total is their sum;
``ledger`` (task-wide, when every round is audited)
    reserved = sum of the finalized rounds' totals, paid = sum of every claim, paid <=
    reserved, reserved + withdrawn <= funded.

A check that cannot run because an earlier one failed is reported as skipped.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import ValidationError
from web3 import Web3

from aggregator.client_update import ClientUpdate
from aggregator.combine import HETEROGENEOUS, StrategyConfig, combine
from aggregator.device import Compute
from aggregator.flexlora import RankTarget, truncation_excess
from aggregator.reproduce import (
    TOLERANCE,
    Comparison,
    Excess,
    Tolerance,
    compare_adapters,
    recorded_compute,
)
from aggregator.rewards import ZERO_ROOT, Share, quality_factor, split_pool
from aggregator.round import REPORT_MAX_BYTES
from aggregator.server_opt import ServerState, load_state
from aggregator.verify import spec_mismatch, tensor_digest
from chain.bindings import Ledger, Round, Task
from chain.events import History, RoundFinalized, UpdateSubmitted
from chain.merkle import RewardEntry, RewardTree, leaf_hash, verify
from ipfs import ContentStore, compute_cid
from loraledger.errors import ConfigError, LoRALedgerError, StorageError, UpdateRejected
from loraledger.report import RoundReport
from loraledger.update import (
    DEFAULT_MAX_BYTES,
    Expected,
    GlobalAdapter,
    parse_global_adapter,
    parse_update,
    sha256_hex,
)

logger = logging.getLogger(__name__)

Status = Literal["pass", "fail", "skip"]
CHECKS = ("report", "submissions", "updates", "aggregate", "rewards", "claims", "ledger")
_WEIGHT_TOLERANCE = 1e-6
_QUALITY_TOLERANCE = 1e-9




class RoundNotAuditable(ConfigError):
    """The round asked for does not exist or is not finalized yet."""


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AuditCheck:
    """One check of one round (``round`` is ``None`` for task-wide checks)."""

    round: int | None
    name: str
    status: Status
    detail: str

    @property
    def ok(self) -> bool:
        """Whether the check holds (a skipped check only follows a failed one)."""
        return self.status != "fail"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


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


# ---------------------------------------------------------------------------- events


@dataclass(frozen=True)
class RewardClaimed:
    task_id: int
    round: int
    node: str
    amount: int
    block: int


class AuditHistory(History):
    """:class:`History` plus the events only an audit needs (claims, joins)."""

    def claims(self, task_id: int) -> list[RewardClaimed]:
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


# ---------------------------------------------------------------------------- the auditor


@dataclass
class _RoundFacts:
    """What the chain says about one finalized round, read once for all checks."""

    task: Task
    info: Round
    record: RoundFinalized
    events: list[UpdateSubmitted]
    claims: list[RewardClaimed]


class Auditor:
    """Reads and re-checks the rounds of the ledger behind ``history`` against ``store``.

    Reports are cached by CID (content-addressed, so a cached copy is never stale).
    """

    def __init__(
        self,
        ledger: Ledger,
        history: AuditHistory,
        store: ContentStore,
        *,
        tolerance: Tolerance = TOLERANCE,
        compute: Compute | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.ledger = ledger
        self.history = history
        self.store = store
        self.tolerance = tolerance
        # re-aggregation: in ``compute`` when given, else in the dtype each report records
        # (params.compute) on ``device`` (the CPU by default)
        self.compute = compute
        self.device = device
        self._reports: dict[str, RoundReport] = {}

    # ------------------------------------------------------------------ reading

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
        events = _by_round(self.history.submissions(task_id))
        claims = _by_round(self.history.claims(task_id))
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
        """The report pinned under ``cid``, its bytes checked against the CID here."""
        cached = self._reports.get(cid)
        if cached is not None:
            return cached
        data = self.store.get_bytes(cid, max_size=REPORT_MAX_BYTES)
        found = compute_cid(data)
        if found != cid:
            raise StorageError(f"the store returned other bytes than {cid} (their CID is {found})")
        report = RoundReport.from_bytes(data)
        self._reports[cid] = report
        return report

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
                )
            )
        reasons = (
            Counter(s.reason or "unknown" for s in report.submissions if s.verdict == "rejected")
            if report
            else {}
        )
        metrics = report.metrics if report else {}
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
        )
        return RoundDetail(view, tuple(rows))

    # ------------------------------------------------------------------ verifying

    def verify(self, task_id: int, round_: int | None = None) -> list[AuditCheck]:
        """Every check of round ``round_``, or of every finalized round and the task's ledger."""
        task = self.ledger.task(task_id)
        finalized = {r.round: r for r in self.history.finalized(task_id)}
        if round_ is not None:
            if not 1 <= round_ <= task.rounds_opened:
                raise RoundNotAuditable(
                    f"task {task_id} has no round {round_} ({task.rounds_opened} opened)",
                    hint=f"`loraledger audit rounds {task_id}` lists them",
                )
            if round_ not in finalized:
                raise RoundNotAuditable(
                    f"round {round_} of task {task_id} is not finalized yet: nothing to verify",
                    hint="verify it once the aggregator has finalized it",
                )
        numbers = [round_] if round_ is not None else sorted(finalized)
        events = _by_round(self.history.submissions(task_id))
        claims_all = self.history.claims(task_id)
        claims = _by_round(claims_all)
        checks: list[AuditCheck] = []
        for n in numbers:
            facts = _RoundFacts(
                task,
                self.ledger.round(task_id, n),
                finalized[n],
                events.get(n, []),
                claims.get(n, []),
            )
            checks.extend(self._verify_round(facts))
        if round_ is None:
            checks.append(_ledger_check(task, list(finalized.values()), claims_all))
        return checks

    def _verify_round(self, facts: _RoundFacts) -> list[AuditCheck]:
        n = facts.record.round
        report, problems = self._check_report(facts)
        out = [_result(n, "report", problems, f"{facts.record.report_cid} is the report on chain")]
        if report is None:
            return out + [_skip(n, name, "the report cannot be read") for name in CHECKS[1:6]]
        out.append(
            _result(
                n,
                "submissions",
                _check_submissions(facts, report),
                f"{len(facts.events)} commitments, {facts.info.accepted} accepted, "
                f"{facts.info.rejected} rejected, as on chain",
            )
        )
        start, start_problem = self._start_adapter(facts)
        with tempfile.TemporaryDirectory(prefix="loraledger-audit-") as tmp:
            updates, problems = self._check_updates(facts, report, start, Path(tmp))
            out.append(
                _result(
                    n,
                    "updates",
                    problems,
                    f"{len(updates)} accepted updates fetched and match their commitments",
                )
            )
            if start is None:
                out.append(_result(n, "aggregate", [start_problem or "no start adapter"], ""))
            elif problems:
                out.append(_skip(n, "aggregate", "not every accepted update could be checked"))
            else:
                out.append(self._check_aggregate(facts, report, start, updates, Path(tmp)))
        out.append(_result(n, "rewards", _check_rewards(facts, report), _rewards_summary(report)))
        out.append(
            _result(n, "claims", _check_claims(facts, report), _claims_summary(facts, report))
        )
        return out

    def _check_report(self, facts: _RoundFacts) -> tuple[RoundReport | None, list[str]]:
        record, info = facts.record, facts.info
        try:
            report = self.report(record.report_cid)
        except UpdateRejected as exc:
            return None, [f"the report {record.report_cid} is not a valid report: {exc}"]
        except LoRALedgerError as exc:
            return None, [f"the report {record.report_cid} cannot be fetched: {exc}"]
        problems = []
        if (report.task_id, report.round) != (info.task_id, info.round):
            problems.append(f"the report is for task {report.task_id} round {report.round}")
        for what, said, chain in (
            ("start digest", report.start_digest, info.start_digest.hex()),
            ("global CID", report.global_cid, record.global_cid),
            ("global digest", report.global_digest, record.global_digest.hex()),
        ):
            if said != chain:
                problems.append(f"the report's {what} is {said}, the chain's {chain}")
        return report, problems

    def _start_adapter(self, facts: _RoundFacts) -> tuple[GlobalAdapter | None, str | None]:
        digest = facts.info.start_digest
        try:
            cid = self.history.global_adapter_at(facts.info.task_id, digest)
            data = self.store.get_bytes(cid, max_size=DEFAULT_MAX_BYTES)
            return parse_global_adapter(
                data, Expected(task_id=facts.info.task_id, digest=digest.hex())
            ), None
        except LoRALedgerError as exc:
            return None, f"the start adapter (digest {digest.hex()}) cannot be read: {exc}"

    def _check_updates(
        self, facts: _RoundFacts, report: RoundReport, start: GlobalAdapter | None, workdir: Path
    ) -> tuple[list[ClientUpdate], list[str]]:
        """Fetch and check every accepted update; the aggregation inputs in report order."""
        committed = {e.node.lower(): e for e in facts.events}
        max_rank = report.params.get("max_rank")
        updates, problems = [], []
        for s in report.submissions:
            if s.verdict != "accepted":
                continue
            event = committed.get(s.node.lower())
            if event is None:
                problems.append(f"{s.node}: accepted but never committed on chain")
                continue
            expected = Expected(
                task_id=facts.info.task_id,
                round=facts.info.round,
                base_model=report.base_model,
                max_rank=max_rank if isinstance(max_rank, int) else None,
                digest=event.digest.hex(),
            )
            try:
                data = self.store.get_bytes(event.cid, max_size=DEFAULT_MAX_BYTES)
                parsed = parse_update(data, expected)
            except UpdateRejected as exc:
                problems.append(f"{s.node}: accepted update {event.cid} is invalid: {exc}")
                continue
            except LoRALedgerError as exc:
                problems.append(f"{s.node}: accepted update {event.cid} cannot be fetched: {exc}")
                continue
            meta = parsed.metadata
            if meta.node.lower() != s.node.lower() or meta.num_examples != event.num_examples:
                problems.append(
                    f"{s.node}: the update names node {meta.node} and {meta.num_examples} "
                    "examples, "
                    f"the commitment {event.node} and {event.num_examples}"
                )
                continue
            mismatch = (
                spec_mismatch(parsed.tensors, meta.peft, start) if start is not None else None
            )
            if mismatch is not None:
                problems.append(f"{s.node}: accepted update does not fit the task: {mismatch}")
                continue
            if s.tensor_digest is not None and tensor_digest(parsed.tensors) != s.tensor_digest:
                problems.append(
                    f"{s.node}: tensor digest {tensor_digest(parsed.tensors)}, "
                    f"the report says {s.tensor_digest}"
                )
            path = workdir / f"{parsed.digest}.safetensors"
            path.write_bytes(data)
            spec = meta.peft
            rank, alpha = (spec.rank, spec.alpha) if spec.method == "lora" else (1, 1.0)
            updates.append(
                ClientUpdate.from_safetensors(
                    event.node, path, num_examples=event.num_examples, rank=rank, alpha=alpha
                )
            )
        return updates, problems

    def _check_aggregate(
        self,
        facts: _RoundFacts,
        report: RoundReport,
        start: GlobalAdapter,
        updates: list[ClientUpdate],
        workdir: Path,
    ) -> AuditCheck:
        n, record = facts.record.round, facts.record
        if not updates:
            if record.global_digest.hex() != start.digest:
                changed = (
                    f"nothing was accepted, yet the global digest changed from {start.digest} "
                    f"to {record.global_digest.hex()}"
                )
                return _result(n, "aggregate", [changed], "")
            return _result(n, "aggregate", [], "nothing accepted: the task kept its adapter")
        try:
            config = StrategyConfig.model_validate(report.params.get("strategy"))
        except ValidationError as exc:
            return _result(
                n,
                "aggregate",
                [f"the report's params.strategy is not a strategy: {exc.errors()[0]['msg']}"],
                "",
            )
        problems: list[str] = []
        try:
            compute = self.compute or recorded_compute(report.params, self.device)
            state = self._server_state(
                config, report.params.get("server_state_cid_in"), workdir / "state-in.safetensors"
            )
            combined = combine(
                config,
                updates,
                start.tensors,
                start.metadata.peft,
                server_state=state,
                compute=compute,
            )
            data = self.store.get_bytes(record.global_cid, max_size=DEFAULT_MAX_BYTES)
        except LoRALedgerError as exc:
            return _result(n, "aggregate", [f"cannot re-aggregate: {exc}"], "")
        if sha256_hex(data) != record.global_digest.hex():
            problems.append(
                f"the global adapter {record.global_cid} hashes to {sha256_hex(data)}, "
                f"the chain's digest is {record.global_digest.hex()}"
            )
        try:
            published = parse_global_adapter(data, Expected(task_id=facts.info.task_id, round=n))
        except UpdateRejected as exc:
            return _result(n, "aggregate", [*problems, f"the global adapter is invalid: {exc}"], "")
        spec = start.metadata.peft
        target = RankTarget(spec.rank, spec.alpha) if spec.method == "lora" else None

        excess: Excess | None = None
        if target is not None and combined.used == "flexlora":
            truncated = target

            def _excess(module: str, a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
                return truncation_excess(updates, module, a, b, truncated)

            excess = _excess

        comparison = compare_adapters(
            combined.tensors,
            published.tensors,
            target.scaling if target is not None else None,
            self.tolerance,
            unique_factors=combined.used not in HETEROGENEOUS or combined.used == "zero-pad",
            excess=excess,
        )
        problems += comparison.problems
        if combined.used != report.strategy:
            problems.append(
                f"the strategy that runs is {combined.used}, the report says {report.strategy}"
            )
        for s in report.submissions:
            if s.verdict == "accepted":
                weight = min(1.0, max(0.0, combined.weights.get(s.node, 0.0)))
                if abs(weight - s.weight) > _WEIGHT_TOLERANCE:
                    problems.append(
                        f"{s.node}: weight {weight:.6f} re-computed, {s.weight:.6f} reported"
                    )
        out_cid = report.params.get("server_state_cid")
        if combined.server_state is not None and isinstance(out_cid, str):
            try:
                saved = self._server_state(config, out_cid, workdir / "state-out.safetensors")
            except LoRALedgerError as exc:
                problems.append(f"the optimizer state {out_cid} cannot be read: {exc}")
            else:
                if saved is None or saved.step != combined.server_state.step:
                    problems.append(
                        f"the optimizer state {out_cid} is not the step that re-aggregation reaches"
                    )
                else:
                    problems += compare_adapters(
                        combined.server_state.tensors,
                        saved.tensors,
                        None,
                        self.tolerance,
                        what="the optimizer state",
                    ).problems
        summary = (
            f"{len(updates)} updates re-aggregated with {combined.used} in "
            f"{str(compute.dtype).removeprefix('torch.')}: {_agreement(comparison)} "
            f"(tolerance {self.tolerance}); sha256 of the adapter equals the chain's digest"
        )
        return _result(n, "aggregate", problems, summary)

    def _server_state(self, config: StrategyConfig, cid: object, path: Path) -> ServerState | None:
        optimizer = config.optimizer()
        if optimizer is None or not isinstance(cid, str):
            return None
        path.write_bytes(self.store.get_bytes(cid, max_size=DEFAULT_MAX_BYTES))
        return load_state(path, optimizer)


# ---------------------------------------------------------------------------- pure checks


def _check_submissions(facts: _RoundFacts, report: RoundReport) -> list[str]:
    problems = []
    chain = {e.node.lower(): e for e in facts.events}
    listed = Counter(s.node.lower() for s in report.submissions)
    problems += [f"{node} is listed {count} times" for node, count in listed.items() if count > 1]
    in_report = {s.node.lower(): s for s in report.submissions}
    for key, event in chain.items():
        s = in_report.get(key)
        if s is None:
            problems.append(
                f"dropped: {event.node} committed {event.cid} on chain, the report does not list it"
            )
            continue
        said = (s.cid, s.digest, s.num_examples)
        committed = (event.cid, event.digest.hex(), event.num_examples)
        if said != committed:
            problems.append(
                f"{event.node}: the report says (cid, digest, examples) = {said}, "
                f"the chain {committed}"
            )
    problems += [
        f"added: {s.node} is in the report but committed nothing on chain"
        for key, s in in_report.items()
        if key not in chain
    ]
    if facts.info.submissions != len(facts.events):
        problems.append(
            f"the contract counts {facts.info.submissions} submissions, "
            f"{len(facts.events)} events were found"
        )
    accepted = sum(1 for s in report.submissions if s.verdict == "accepted")
    rejected = len(report.submissions) - accepted
    if (accepted, rejected) != (facts.record.accepted, facts.record.rejected):
        problems.append(
            f"the report has {accepted} accepted / {rejected} rejected, the chain "
            f"{facts.record.accepted} / {facts.record.rejected}"
        )
    for s in report.submissions:
        if s.verdict == "rejected" and (s.reason is None or s.weight != 0):
            problems.append(f"{s.node}: rejected without a reason code or with weight {s.weight}")
        if s.verdict == "accepted" and s.reason is not None:
            problems.append(f"{s.node}: accepted with reason {s.reason}")
    return problems


def _check_rewards(facts: _RoundFacts, report: RoundReport) -> list[str]:
    table, record, task = report.rewards, facts.record, facts.task
    problems = []
    if table.pool != task.reward_per_round:
        problems.append(
            f"the table's pool is {table.pool}, the task's reward per round {task.reward_per_round}"
        )
    validation = bool(report.params.get("validation"))
    start_loss = report.metrics.get("start_eval_loss")
    committed = {e.node.lower(): e.num_examples for e in facts.events}
    shares = []
    for s in report.submissions:
        if s.verdict != "accepted":
            continue
        quality = quality_factor(start_loss, s.eval_loss) if validation else 1.0
        if not math.isclose(quality, s.quality, rel_tol=0, abs_tol=_QUALITY_TOLERANCE):
            problems.append(
                f"{s.node}: quality {s.quality} reported, the reported losses give {quality}"
            )
        shares.append(Share(s.node, committed.get(s.node.lower(), s.num_examples), s.quality))
    try:
        rule = {k.lower(): v for k, v in split_pool(task.reward_per_round, shares).items()}
    except LoRALedgerError as exc:
        return [*problems, f"the reward rule cannot be applied: {exc}"]
    lines = {line.node.lower(): line for line in table.lines}
    if len(lines) != len(table.lines):
        problems.append("a node has more than one line in the reward table")
    for key in sorted(set(rule) | set(lines)):
        want, got = rule.get(key, 0), lines[key].amount if key in lines else 0
        if want != got:
            name = lines[key].node if key in lines else key
            problems.append(f"{name}: the rule gives {want}, the table {got}")
    total = sum(line.amount for line in table.lines)
    if not total == table.total == record.reward_total == facts.info.reward_total:
        problems.append(
            f"totals disagree: lines sum to {total}, the table says {table.total}, "
            f"the chain {record.reward_total}"
        )
    if total > table.pool:
        problems.append(f"the table pays {total}, more than the pool of {table.pool}")
    if not table.lines:
        root = ZERO_ROOT
    else:
        try:
            root = RewardTree(
                facts.info.task_id,
                facts.info.round,
                [RewardEntry(line.node, line.amount) for line in table.lines],
            ).root.hex()
        except LoRALedgerError as exc:
            return [*problems, f"the table is not a reward tree: {exc}"]
    if not root == table.root == record.reward_root.hex():
        problems.append(
            f"Merkle roots disagree: rebuilt {root}, report {table.root}, "
            f"chain {record.reward_root.hex()}"
        )
    for line in table.lines:
        leaf = leaf_hash(facts.info.task_id, facts.info.round, line.node, line.amount)
        if not verify(record.reward_root, leaf, [bytes.fromhex(p) for p in line.proof]):
            problems.append(
                f"{line.node}: the proof of {line.amount} does not verify against the on-chain root"
            )
    return problems


def _check_claims(facts: _RoundFacts, report: RoundReport) -> list[str]:
    lines = {line.node.lower(): line.amount for line in report.rewards.lines}
    problems = []
    seen: Counter[str] = Counter()
    for claim in facts.claims:
        key = claim.node.lower()
        seen[key] += 1
        if key not in lines:
            problems.append(
                f"{claim.node} claimed {claim.amount} (block {claim.block}) "
                "but has no line in the table"
            )
        elif claim.amount != lines[key]:
            problems.append(f"{claim.node} claimed {claim.amount}, the table gives {lines[key]}")
    problems += [f"{node} claimed {count} times" for node, count in seen.items() if count > 1]
    paid = sum(c.amount for c in facts.claims)
    if paid != facts.info.claimed:
        problems.append(
            f"claim events sum to {paid}, the contract records {facts.info.claimed} claimed"
        )
    return problems


def _ledger_check(
    task: Task, finalized: Iterable[RoundFinalized], claims: Sequence[RewardClaimed]
) -> AuditCheck:
    reserved = sum(r.reward_total for r in finalized)
    paid = sum(c.amount for c in claims)
    problems = []
    if reserved != task.reserved:
        problems.append(f"finalized rounds reserve {reserved}, the task records {task.reserved}")
    if paid != task.paid:
        problems.append(f"claims pay {paid}, the task records {task.paid} paid")
    if task.paid > task.reserved:
        problems.append(f"paid {task.paid} exceeds reserved {task.reserved}")
    if task.reserved + task.withdrawn > task.funded:
        problems.append(
            f"reserved {task.reserved} + withdrawn {task.withdrawn} exceed funded {task.funded}"
        )
    return _result(
        None,
        "ledger",
        problems,
        f"funded {task.funded}, reserved {reserved}, paid {paid}, withdrawn {task.withdrawn}",
    )


def _agreement(comparison: Comparison) -> str:
    if comparison.exact:
        return "bit-identical"
    ties = (
        f"; {len(comparison.ties)} modules are equally good truncations (tied singular values)"
        if comparison.ties
        else ""
    )
    return f"largest difference {comparison.worst:.3g}{ties}"


def _rewards_summary(report: RoundReport) -> str:
    table = report.rewards
    return (
        f"{len(table.lines)} lines pay {table.total} of a pool of {table.pool} by the rule; "
        f"root {table.root[:16]}..."
    )


def _claims_summary(facts: _RoundFacts, report: RoundReport) -> str:
    return (
        f"{len(facts.claims)} of {len(report.rewards.lines)} rewards claimed ({facts.info.claimed})"
    )


def _result(round_: int | None, name: str, problems: list[str], summary: str) -> AuditCheck:
    if problems:
        return AuditCheck(round_, name, "fail", "; ".join(problems))
    return AuditCheck(round_, name, "pass", summary)


def _skip(round_: int, name: str, why: str) -> AuditCheck:
    return AuditCheck(round_, name, "skip", f"not checked: {why}")


def _by_round(items: Iterable[Any]) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = defaultdict(list)
    for item in items:
        grouped[item.round].append(item)
    return dict(grouped)
