"""What the audit, the CLI and the dashboard show of a ledger's history: typed views of tasks,
rounds and submissions rebuilt from the chain (events and views) and the pinned reports.

A task shows its roles (aggregator, validators, quorum) and their bonds and its privacy policy;
a round its state (as the contract decides it), its epoch and the challenges that voided it, the
validators whose score sheets its result used (agreement and pay, from the report) and who
signed it, the bonds slashed for its results and the epsilon its report states.
:class:`HistoryReader` only reads; :class:`aggregator.audit.Auditor` adds the checks.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chain.bindings import Ledger, Round
from chain.events import (
    BondSlashed,
    History,
    ProposalSlashed,
    ResultProposed,
    RewardClaimed,
    RoundAbandoned,
    RoundFinalized,
    RoundVoided,
    UpdateCommitted,
    UpdateSubmitted,
)
from chain.round_state import RoundState
from ipfs import ContentStore
from loraledger.errors import ConfigError, LoRALedgerError
from loraledger.privacy import NO_PRIVACY, TaskPrivacy
from loraledger.report import RoundReport, fetch_report

__all__ = [
    "BondSlashView",
    "BondView",
    "HistoryReader",
    "ProposalSlashView",
    "RoundDetail",
    "RoundNotAuditable",
    "RoundView",
    "SubmissionView",
    "TaskHistory",
    "TaskView",
    "ValidatorView",
    "VoidView",
    "to_json",
]


class RoundNotAuditable(ConfigError):
    """The round asked for does not exist or is not finalized yet."""


@dataclass(frozen=True)
class BondView:
    """The bond of a task's aggregator or of one of its validators."""

    account: str
    role: str  # "aggregator" or "validator"
    required: int  # what the task asks of the role
    posted: bool
    held: int  # held now (zero once slashed or withdrawn)
    slashed: int  # taken into the task's pool (its BondSlashed events)
    withdrawn: int  # returned once the task was over (its BondWithdrawn events)


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
    aggregator: str = ""
    validators: tuple[str, ...] = ()  # in their on-chain order (bit i of round bitmaps)
    quorum: int = 0  # validator signatures a result needs
    validator_share_bps: int = 0
    challenge_window: int = 0  # seconds
    slash_window: int = 0
    grace_period: int = 0
    bonds: tuple[BondView, ...] = ()  # the aggregator's, then each validator's
    cancelled: bool = False
    rounds_abandoned: int = 0
    privacy: TaskPrivacy = NO_PRIVACY  # the DP it requires (its TaskCreated event)


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
    epsilon: float | None = None  # DP-SGD epsilon its update states (None: trained without DP)


@dataclass(frozen=True)
class ValidatorView:
    """A validator whose score sheet the round's result used (the report's ``validators``)."""

    validator: str
    sheet_cid: str
    sheet_digest: str
    agreement: float  # how close its sheet is to the consensus, in [0, 1]
    reward: int  # its pay for the round
    signed: bool  # it signed the standing result
    claimed: bool


@dataclass(frozen=True)
class VoidView:
    """A challenge that voided a finalization of the round (a ``RoundVoided`` event)."""

    result_hash: str  # of the voided result
    challenger: str
    account: str  # paid by the voided result without taking part
    amount: int
    epoch: int  # the round's epoch after it
    block: int


@dataclass(frozen=True)
class ProposalSlashView:
    """A proposal of the round that conflicted with its finalized result (``ProposalSlashed``)."""

    result_hash: str
    finalized_hash: str
    proposer: str | None  # from its ResultProposed event (None when not found)
    slasher: str
    block: int


@dataclass(frozen=True)
class BondSlashView:
    """A bond taken into the pool for a result of the round (``BondSlashed``)."""

    account: str
    amount: int
    reason: str  # "reward_challenged" or "conflicting_result"
    block: int


@dataclass(frozen=True)
class RoundView:
    """One round: its state, chain counts, the report's verdict counts and metrics, the
    validators' sheets and signatures, rewards reserved and claimed, and what was voided or
    slashed."""

    task_id: int
    round: int
    finalized: bool  # a result stands (finalized or settled)
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
    # the contract's RoundState, lowercase: open, revealing, closed, finalized (its challenge
    # window runs), settled or abandoned
    state: str = ""
    epoch: int = 0  # finalizations voided so far
    finalized_at: int = 0  # chain time of the standing finalization (0: none)
    challenge_ends: int = 0  # last chain time a challenge can void it (0: not finalized)
    slash_window_ends: int = 0  # last chain time its slashes can be executed
    result_hash: str | None = None  # of the standing result
    proposer: str | None = None  # of the standing result
    sheets: tuple[str, ...] = ()  # validators that posted a score sheet (scoresBitmap)
    signers: tuple[str, ...] = ()  # validators that signed the standing result
    validators: tuple[ValidatorView, ...] = ()  # the report's: sheets used, agreement, pay
    voids: tuple[VoidView, ...] = ()
    proposal_slashes: tuple[ProposalSlashView, ...] = ()
    bond_slashes: tuple[BondSlashView, ...] = ()
    abandoned_by: str | None = None
    # the validators' median loss, on their own held-out data, of the aggregate of the updates
    # each kept (the report's metrics.scored_eval_loss; rounds decided by validators publish
    # this, not global_eval_loss)
    scored_eval_loss: float | None = None
    # node-level DP: what the task's global adapters spent through this round (the report's
    # privacy.total; None without it)
    epsilon_total: float | None = None
    # the largest epsilon an update the report accepted states it spent (None: none states one)
    epsilon_max_update: float | None = None


@dataclass(frozen=True)
class RoundDetail:
    round: RoundView
    submissions: tuple[SubmissionView, ...]


@dataclass(frozen=True)
class TaskHistory:
    task: TaskView
    rounds: tuple[RoundDetail, ...]

    @property
    def epsilon_shown(self) -> str | None:
        """What a round's epsilon column shows: ``"total"`` under node-level DP (what the
        task's global adapters spent through the round), ``"largest update"`` otherwise (the
        most an accepted update of the round states it spent); ``None``, no column, for a task
        without a privacy policy none of whose updates states an epsilon."""
        if self.task.privacy.mode == "node":
            return "total"
        stated = any(s.epsilon is not None for d in self.rounds for s in d.submissions)
        return "largest update" if self.task.privacy.required or stated else None

    def epsilon(self, r: RoundView) -> float | None:
        """The epsilon ``r``'s row shows (see :attr:`epsilon_shown`)."""
        return r.epsilon_total if self.task.privacy.mode == "node" else r.epsilon_max_update


@dataclass(frozen=True)
class _RoundEvents:
    """The events of one round, read once per task."""

    record: RoundFinalized | None = None
    submissions: list[UpdateSubmitted] = field(default_factory=list)
    claims: list[RewardClaimed] = field(default_factory=list)
    commits: list[UpdateCommitted] = field(default_factory=list)
    voids: list[RoundVoided] = field(default_factory=list)
    proposal_slashes: list[ProposalSlashed] = field(default_factory=list)
    bond_slashes: list[BondSlashed] = field(default_factory=list)
    abandoned: list[RoundAbandoned] = field(default_factory=list)
    proposals: list[ResultProposed] = field(default_factory=list)


def to_json(value: Any) -> Any:
    """A view (or decoded ABI values) as JSON-ready data; token amounts (ints above 2**53)
    become decimal strings, bytes 0x-hex."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: to_json(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, Mapping):
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
        """One task from its ``TaskCreated`` event, the contract's views and its bond events."""
        info = self.ledger.task(task_id)  # raises LedgerUnknownTask for a wrong id
        created = self.history.task_created(task_id)
        params = created.params
        finalized = sum(1 for _ in self.history.finalized(task_id))
        slashed: Counter[str] = Counter()
        for s in self.history.bond_slashes(task_id):
            slashed[s.account.lower()] += s.amount
        withdrawn: Counter[str] = Counter()
        for w in self.history.bond_withdrawals(task_id):
            withdrawn[w.account.lower()] += w.amount
        bonds = []
        for account, role, required in (
            (params.aggregator, "aggregator", info.aggregator_bond),
            *((v, "validator", info.validator_bond) for v in params.validators),
        ):
            bond = self.ledger.bond_of(task_id, account)
            bonds.append(
                BondView(
                    account=account,
                    role=role,
                    required=required,
                    posted=bond.posted,
                    held=bond.amount,
                    slashed=slashed[account.lower()],
                    withdrawn=withdrawn[account.lower()],
                )
            )
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
            aggregator=info.aggregator,
            validators=params.validators,
            quorum=info.quorum,
            validator_share_bps=info.validator_share_bps,
            challenge_window=info.challenge_window,
            slash_window=info.slash_window,
            grace_period=info.grace_period,
            bonds=tuple(bonds),
            cancelled=info.cancelled,
            rounds_abandoned=len({a.round for a in self.history.abandoned(task_id)}),
            privacy=params.privacy,
        )

    def tasks(self) -> list[TaskView]:
        return [self.task(task_id) for task_id in self.task_ids()]

    def history_of(self, task_id: int) -> TaskHistory:
        """The task and every round with its submissions, verdicts and rewards."""
        task = self.task(task_id)
        events = self._events(task_id)
        rounds = tuple(
            self._round_detail(task, n, events.get(n, _RoundEvents()))
            for n in range(1, task.rounds_opened + 1)
        )
        return TaskHistory(task, rounds)

    def rounds(self, task_id: int) -> list[RoundView]:
        return [detail.round for detail in self.history_of(task_id).rounds]

    def round_detail(self, task_id: int, round_: int) -> RoundDetail:
        task = self.task(task_id)
        opened = task.rounds_opened
        if not 1 <= round_ <= opened:
            raise RoundNotAuditable(
                f"task {task_id} has no round {round_} ({opened} opened)",
                hint=f"`loraledger audit rounds {task_id}` lists them",
            )
        events = self._events(task_id, round_)
        return self._round_detail(task, round_, events.get(round_, _RoundEvents()))

    def report(self, cid: str) -> RoundReport:
        """The report pinned under ``cid`` (the store checks its bytes against the CID)."""
        cached = self._reports.get(cid)
        if cached is None:
            cached = self._reports[cid] = fetch_report(self.store, cid)
        return cached

    def _events(self, task_id: int, round_: int | None = None) -> dict[int, _RoundEvents]:
        """The task's round events (one round's when ``round_`` is given), by round."""
        history = self.history

        def pick(items: Iterable[Any]) -> dict[int, list[Any]]:
            grouped = by_round(items)
            return grouped if round_ is None else {round_: grouped.get(round_, [])}

        finalized = {r.round: r for r in history.finalized(task_id)}
        submissions = pick(history.submissions(task_id, round_))
        claims = pick(history.claims(task_id))
        commits = pick(history.commits(task_id, round_))
        voids = pick(history.voided(task_id))
        proposal_slashes = pick(history.proposal_slashes(task_id))
        bond_slashes = pick(history.bond_slashes(task_id))
        abandoned = pick(history.abandoned(task_id))
        # proposals are read only to name the authors of slashed ones
        proposals = (
            pick(history.proposals(task_id, round_)) if any(proposal_slashes.values()) else {}
        )
        numbers = {round_} if round_ is not None else set(finalized)
        for grouped in (submissions, claims, commits, voids, proposal_slashes, bond_slashes):
            numbers |= set(grouped)
        numbers |= set(abandoned)
        return {
            n: _RoundEvents(
                record=finalized.get(n),
                submissions=submissions.get(n, []),
                claims=claims.get(n, []),
                commits=commits.get(n, []),
                voids=voids.get(n, []),
                proposal_slashes=proposal_slashes.get(n, []),
                bond_slashes=bond_slashes.get(n, []),
                abandoned=abandoned.get(n, []),
                proposals=proposals.get(n, []),
            )
            for n in numbers
        }

    def _round_detail(self, task: TaskView, round_: int, events: _RoundEvents) -> RoundDetail:
        task_id = task.task_id
        info = self.ledger.round(task_id, round_)
        state = self.ledger.round_state(task_id, round_)
        record = events.record
        report: RoundReport | None = None
        error = None
        if record is not None:
            try:
                report = self.report(record.report_cid)
            except LoRALedgerError as exc:
                error = str(exc)
        verdicts = {s.node.lower(): s for s in report.submissions} if report else {}
        lines = {line.node.lower(): line.amount for line in report.rewards.lines} if report else {}
        claimed = {c.node.lower() for c in events.claims}
        slashed = {x.node.lower(): x.amount for x in report.slashes} if report else {}
        rows = []
        for event in events.submissions:
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
                    epsilon=verdict.epsilon if verdict else None,
                )
            )
        reasons = (
            Counter(s.reason or "unknown" for s in report.submissions if s.verdict == "rejected")
            if report
            else {}
        )
        metrics = report.metrics if report else {}
        stated = [
            s.epsilon
            for s in (report.submissions if report else ())
            if s.verdict == "accepted" and s.epsilon is not None
        ]
        revealed = {e.node.lower() for e in events.submissions}
        unrevealed = sorted(c.node for c in events.commits if c.node.lower() not in revealed)
        signers = _members(task.validators, info.signers)
        signed = {v.lower() for v in signers}
        validators = tuple(
            ValidatorView(
                validator=line.validator,
                sheet_cid=line.sheet_cid,
                sheet_digest=line.sheet_digest,
                agreement=line.agreement,
                reward=line.reward,
                signed=line.validator.lower() in signed,
                claimed=line.validator.lower() in claimed,
            )
            for line in (report.validators if report else ())
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
            state=state.name.lower(),
            epoch=info.epoch,
            finalized_at=info.finalized_at,
            challenge_ends=_challenge_ends(info, task),
            slash_window_ends=(
                _challenge_ends(info, task) + task.slash_window if info.finalized else 0
            ),
            result_hash=record.result_hash.hex() if record else None,
            proposer=record.proposer if record else None,
            sheets=_members(task.validators, info.scores_bitmap),
            signers=signers,
            validators=validators,
            voids=tuple(
                VoidView(
                    result_hash=v.result_hash.hex(),
                    challenger=v.challenger,
                    account=v.account,
                    amount=v.amount,
                    epoch=v.epoch,
                    block=v.block,
                )
                for v in events.voids
            ),
            proposal_slashes=_proposal_slashes(events),
            bond_slashes=tuple(
                BondSlashView(
                    account=s.account, amount=s.amount, reason=s.reason.name.lower(), block=s.block
                )
                for s in events.bond_slashes
            ),
            abandoned_by=(
                events.abandoned[-1].caller
                if state is RoundState.ABANDONED and events.abandoned
                else None
            ),
            scored_eval_loss=metrics.get("scored_eval_loss"),
            epsilon_total=report.privacy.total if report and report.privacy else None,
            epsilon_max_update=max(stated, default=None),
        )
        return RoundDetail(view, tuple(rows))


def _members(validators: Sequence[str], bitmap: int) -> tuple[str, ...]:
    """The validators whose bit is set in ``bitmap`` (bit i: ``validators[i]``)."""
    return tuple(v for i, v in enumerate(validators) if bitmap >> i & 1)


def _challenge_ends(info: Round, task: TaskView) -> int:
    return info.finalized_at + task.challenge_window if info.finalized else 0


def _proposal_slashes(events: _RoundEvents) -> tuple[ProposalSlashView, ...]:
    authors = {p.result_hash: p.proposer for p in events.proposals}
    return tuple(
        ProposalSlashView(
            result_hash=s.result_hash.hex(),
            finalized_hash=s.finalized_hash.hex(),
            proposer=authors.get(s.result_hash),
            slasher=s.slasher,
            block=s.block,
        )
        for s in events.proposal_slashes
    )


def by_round(items: Iterable[Any]) -> dict[int, list[Any]]:
    """Events grouped by their ``round``."""
    grouped: dict[int, list[Any]] = defaultdict(list)
    for item in items:
        grouped[item.round].append(item)
    return dict(grouped)
