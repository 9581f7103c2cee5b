"""A round's public inputs, fetched one way by the aggregator and by every audit.

The aggregation of a round depends on its accepted updates, the start adapter (whose digest
the chain records when the round opens), the earlier rounds' reports (replay history, the
optimizer state carried in) and the report's recorded settings. The round loop
(:mod:`aggregator.round`) and the audit (:mod:`aggregator.audit`) both read them through the
functions here, so an audit re-runs the aggregator's own code on public inputs instead of a
copy of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aggregator.screening import Candidate, Change
from aggregator.server_opt import ServerOptimizer, ServerState, load_state
from aggregator.verify import Prior
from chain.bindings import Ledger
from chain.events import History
from chain.round_state import RoundState
from ipfs import ContentStore
from loraledger.errors import ConfigError, ServiceUnavailable, StorageError, UpdateRejected
from loraledger.report import RoundReport, ScoreSheet, fetch_report, fetch_sheet
from loraledger.update import (
    DEFAULT_MAX_BYTES,
    Expected,
    GlobalAdapter,
    parse_global_adapter,
    parse_update,
)

__all__ = [
    "PostedSheet",
    "PublishedAdapter",
    "load_prior",
    "load_published_adapter",
    "load_server_state",
    "load_sheets",
    "load_start_adapter",
    "previous_reports",
]

logger = logging.getLogger(__name__)


def load_start_adapter(
    history: History,
    store: ContentStore,
    task_id: int,
    digest: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> tuple[str, GlobalAdapter]:
    """The adapter a round started from, by the start digest the chain recorded: its CID (the
    task's initial adapter or an earlier round's global one) and its parsed content.

    Raises :class:`~loraledger.errors.ChainError` when the task never published that digest,
    ``StorageError`` when it cannot be fetched, ``UpdateRejected`` when it is not a valid
    global adapter of the task with that digest.
    """
    cid = history.global_adapter_at(task_id, digest)
    adapter = parse_global_adapter(
        store.get_bytes(cid, max_size=max_bytes), Expected(task_id=task_id, digest=digest.hex())
    )
    return cid, adapter


@dataclass(frozen=True)
class PublishedAdapter:
    """A task's global adapter as published: after ``round`` (0: the task's initial one), at
    ``cid``, checked against the digest the chain recorded (``data``: its exact bytes).
    ``settled`` is False while the round's challenge window runs (a challenge may still void
    it)."""

    task_id: int
    round: int
    cid: str
    adapter: GlobalAdapter
    settled: bool
    data: bytes


def load_published_adapter(
    ledger: Ledger,
    history: History,
    store: ContentStore,
    task_id: int,
    round_: int | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> PublishedAdapter:
    """The global adapter a finalized round published (``None``: the latest standing one, or
    the initial adapter when no round stands), fetched and checked against the chain's digest.

    Raises :class:`~loraledger.errors.ConfigError` for a round that never opened or has no
    standing result, ``ChainError`` for an unknown task, ``StorageError`` when the content
    cannot be fetched and ``UpdateRejected`` when it is not that adapter.
    """
    task = ledger.task(task_id)  # reverts (LedgerUnknownTask) for a task that does not exist
    if round_ is None:
        standing = history.finalized(task_id)
        round_ = max((record.round for record in standing), default=0)
    if round_ < 0 or round_ > task.rounds_opened:
        raise ConfigError(
            f"task {task_id} has no round {round_}: it opened {task.rounds_opened} round(s)",
            hint="round 0 is the task's initial adapter; leave the round out for the latest",
        )
    settled = True
    if round_ == 0:
        digest = history.task_created(task_id).initial_global_digest
    else:
        state = ledger.round_state(task_id, round_)
        if state not in (RoundState.FINALIZED, RoundState.SETTLED):
            raise ConfigError(
                f"round {round_} of task {task_id} published no global adapter: it is "
                f"{state.name.lower()}",
                hint="only a finalized round publishes one; leave the round out for the latest",
            )
        digest = ledger.round(task_id, round_).result_digest
        settled = state is RoundState.SETTLED
    cid = history.global_adapter_at(task_id, digest)
    data = store.get_bytes(cid, max_size=max_bytes)
    adapter = parse_global_adapter(
        data, Expected(task_id=task_id, round=round_, digest=digest.hex())
    )
    return PublishedAdapter(task_id, round_, cid, adapter, settled, data)


def previous_reports(
    history: History, store: ContentStore, task_id: int, round_: int
) -> list[RoundReport]:
    """The reports of the task's finalized rounds before ``round_``, in round order."""
    reports = []
    for record in history.finalized(task_id):
        if record.round >= round_:
            continue
        try:
            reports.append(fetch_report(store, record.report_cid))
        except StorageError as exc:
            raise StorageError(
                f"the report of round {record.round} ({record.report_cid}) cannot be fetched: "
                f"{exc}",
                hint="earlier reports carry the replay history and the optimizer state; "
                "start the IPFS node that holds them",
            ) from None
    return sorted(reports, key=lambda r: r.round)


@dataclass(frozen=True)
class PostedSheet:
    """A validator's score sheet as posted on chain for a round: its bit in the round's
    ``scoresBitmap`` (the validator's index in the task), and the sheet when it could be read
    (``problem`` says why not: a sheet that cannot be read counts as an empty one, so a
    validator that withholds or garbles its sheet only loses its own say and pay)."""

    index: int
    validator: str
    cid: str
    digest: bytes
    sheet: ScoreSheet | None
    problem: str | None = None

    def counted(self, task_id: int, round_: int) -> ScoreSheet:
        """The sheet as the consensus counts it: an empty one when it could not be read."""
        if self.sheet is not None:
            return self.sheet
        return ScoreSheet(
            task_id=task_id, round=round_, validator=self.validator, rule="", entries=()
        )


def load_sheets(
    history: History,
    store: ContentStore,
    task_id: int,
    round_: int,
    validators: Sequence[str],
    *,
    bitmap: int | None = None,
) -> list[PostedSheet]:
    """The score sheets posted for ``round_`` (those whose bit is in ``bitmap`` when given), in
    the task's validator order, each fetched, checked against the digest posted on chain and
    against the round and validator it claims. The one way the aggregator, validators and
    audits read sheets."""
    index = {v.lower(): i for i, v in enumerate(validators)}
    posted: dict[int, PostedSheet] = {}
    for event in history.scores(task_id, round_):
        i = index.get(event.validator.lower())
        if i is None or i in posted or (bitmap is not None and not bitmap >> i & 1):
            continue
        sheet: ScoreSheet | None = None
        problem: str | None = None
        try:
            sheet = fetch_sheet(store, event.cid, event.digest)
        except ServiceUnavailable:
            raise  # our own IPFS node does not answer: the sheet is not empty, wait for it
        except (StorageError, UpdateRejected) as exc:
            problem = f"the sheet {event.cid} cannot be read: {exc}"
        if sheet is not None and (
            (sheet.task_id, sheet.round) != (task_id, round_)
            or sheet.validator.lower() != event.validator.lower()
        ):
            problem = (
                f"the sheet {event.cid} is for task {sheet.task_id} round {sheet.round} by "
                f"{sheet.validator}"
            )
            sheet = None
        if problem is not None:
            logger.warning("round %s: %s; it counts as an empty sheet", round_, problem)
        posted[i] = PostedSheet(i, event.validator, event.cid, event.digest, sheet, problem)
    return [posted[i] for i in sorted(posted)]


def load_server_state(
    store: ContentStore, optimizer: ServerOptimizer | None, cid: str | None, path: Path
) -> ServerState | None:
    """The server optimizer state pinned under ``cid`` (``None`` without an optimizer or a
    state: the first round of a server-optimizer task), copied to ``path`` and loaded."""
    if optimizer is None or cid is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    store.get_file(cid, path, max_size=DEFAULT_MAX_BYTES)
    return load_state(path, optimizer)


def load_prior(
    store: ContentStore,
    previous: Sequence[RoundReport],
    *,
    lookback: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Prior:
    """The global adapters and accepted updates of the last ``lookback`` reports, which a
    round's updates are screened against (free riders, copies). The adapters are held (at
    most ``lookback``); the updates are read from the store when screening needs them.

    An earlier update that can no longer be fetched is skipped with a warning (its node may
    have unpinned it); its exact bytes stay covered by the replay check's tensor digests.
    """
    recent = sorted(previous, key=lambda r: r.round)[-lookback:] if lookback else []
    globals_: list[tuple[str, Change]] = []
    updates: list[Candidate] = []
    for report in recent:
        try:
            adapter = parse_global_adapter(store.get_bytes(report.global_cid, max_size=max_bytes))
        except ServiceUnavailable:
            raise
        except (StorageError, UpdateRejected) as exc:
            logger.warning("round %s: global adapter unavailable (%s)", report.round, exc)
        else:
            label = f"the global adapter of round {report.round}"
            globals_.append((label, Change(adapter.tensors, adapter.metadata.peft.delta_scaling)))
        for s in report.submissions:
            if s.verdict != "accepted":
                continue
            load = _stored_change(store, s.cid, s.digest, max_bytes)
            try:
                load()  # available now; read again when screening needs it
            except ServiceUnavailable:
                raise  # our own IPFS node does not answer: skipping would change verdicts
            except (StorageError, UpdateRejected) as exc:
                logger.warning(
                    "round %s: the update of %s is unavailable (%s)", report.round, s.node, exc
                )
                continue
            updates.append(
                Candidate(
                    node=s.node,
                    order=(report.round, s.block or 0, s.tx_index or 0),
                    change=load,
                    step=s.norm or 0.0,
                    label=f"of {s.node} in round {report.round}",
                    current=False,
                )
            )
    return Prior(tuple(globals_), tuple(updates))


def _stored_change(
    store: ContentStore, cid: str, digest: str, max_bytes: int
) -> Callable[[], Change]:
    """How to read an earlier round's update from the store (checked against its digest each
    time), so that a round's screening never holds every earlier update at once."""

    def load() -> Change:
        parsed = parse_update(store.get_bytes(cid, max_size=max_bytes), Expected(digest=digest))
        return Change(parsed.tensors, parsed.metadata.peft.delta_scaling)

    return load
