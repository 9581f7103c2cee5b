"""The training node's protocol: join a task, train a round, pin, commit, claim.

A node trains from the round's global adapter (fetched by the CID published on chain and
checked against the round's start digest), pins its update, and commits the update's CID,
sha256 digest and example count. A journal under ``<home>/nodes/`` records each pinned update
before it is committed, so a node killed at any point resumes without training twice and never
submits twice (the chain refuses a second submission anyway). Rewards are claimed with the
Merkle proofs published in each round's report, checked locally against the on-chain root.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chain.bindings import ClaimRequest, Member, Token
from chain.merkle import leaf_hash, verify
from chain.round_state import RoundState
from chain.session import Session
from fl_node.data import NodeData
from fl_node.model import LoadedModel
from fl_node.train import NodeTrainConfig, ProgressCallback, TrainSettings, train_round
from loraledger.errors import ChainError, ConfigError, LoRALedgerError, StorageError
from loraledger.paths import write_json_atomic
from loraledger.report import RoundReport, fetch_report
from loraledger.update import PeftSpec, parse_update

logger = logging.getLogger(__name__)


class RoundUnavailable(ChainError):
    """There is no round this node can submit to now (none open, window closed, already done)."""


@dataclass(frozen=True)
class SubmittedUpdate:
    task_id: int
    round: int
    cid: str
    digest: str
    num_examples: int
    eval_loss_before: float | None
    eval_loss_after: float | None
    resumed: bool  # committed from the journal, without training again


@dataclass(frozen=True)
class RoundStatus:
    round: int
    finalized: bool
    submitted: bool
    verdict: str | None  # from the round report, once published
    reward: int
    claimed: bool


@dataclass(frozen=True)
class NodeStatus:
    task_id: int
    member: Member
    rounds: tuple[RoundStatus, ...]

    @property
    def claimable(self) -> int:
        return sum(r.reward for r in self.rounds if r.reward and not r.claimed)

    @property
    def claimed(self) -> int:
        return sum(r.reward for r in self.rounds if r.claimed)


# ------------------------------------------------------------------------- join


def join(session: Session, task_id: int) -> Member:
    """Stake the task's minimum and join it (approving the ledger for the stake first)."""
    task = session.ledger.task(task_id)
    if session.ledger.member(task_id, session.address).joined:
        raise ChainError(f"{session.address} has already joined task {task_id}")
    if task.min_stake:
        token = Token(session.ledger.chain, task.token)
        balance = token.balance_of(session.address)
        if balance < task.min_stake:
            raise ChainError(
                f"joining task {task_id} needs a stake of {task.min_stake} token units, "
                f"{session.address} holds {balance}"
            )
        token.approve(session.ledger.address, task.min_stake, session.signer)
    session.ledger.join(task_id, session.signer)
    return session.ledger.member(task_id, session.address)


# ------------------------------------------------------------------------- train


def submit_round(
    session: Session,
    task_id: int,
    model: LoadedModel,
    data: NodeData,
    *,
    peft: PeftSpec,
    settings: TrainSettings,
    progress: ProgressCallback | None = None,
) -> SubmittedUpdate:
    """Train on the open round of ``task_id`` and commit the update; one clear error otherwise."""
    ledger = session.ledger
    round_ = ledger.open_round(task_id)
    if round_ == 0:
        raise RoundUnavailable(
            f"no round of task {task_id} is open", hint="wait, or use `loraledger node run`"
        )
    if not ledger.member(task_id, session.address).joined:
        raise ChainError(
            f"{session.address} has not joined task {task_id}",
            hint=f"`loraledger node join --task {task_id}`",
        )
    if ledger.submission(task_id, round_, session.address).exists:
        raise RoundUnavailable(f"this node already submitted to round {round_} of task {task_id}")
    info = ledger.round(task_id, round_)
    _check_window(session, task_id, round_, info.deadline)

    journal = _read_journal(session, task_id, round_)
    if journal is not None:
        logger.info(
            "round %s: committing the update pinned before a restart (%s)", round_, journal["cid"]
        )
        data_bytes = session.store.get_bytes(journal["cid"])
        parsed = parse_update(data_bytes)
        if parsed.digest != journal["digest"]:
            raise StorageError(f"the journalled update {journal['cid']} does not match its digest")
        return _commit(
            session,
            task_id,
            round_,
            journal["cid"],
            parsed.digest,
            parsed.metadata.num_examples,
            parsed.metadata.metrics.eval_loss_before,
            parsed.metadata.metrics.eval_loss_after,
            info.deadline,
            resumed=True,
        )

    start_cid = session.history.global_adapter_at(task_id, info.start_digest)
    global_bytes = session.store.get_bytes(start_cid)
    config = NodeTrainConfig(
        task_id=task_id, round=round_, node=session.address, peft=peft, train=settings
    )
    result = train_round(config, model, data, global_bytes, info.start_digest.hex(), progress)
    cid = session.store.put_bytes(result.update)
    session.store.pin(cid)
    _write_journal(session, task_id, round_, {"cid": cid, "digest": result.digest})
    metrics = result.metadata.metrics
    return _commit(
        session,
        task_id,
        round_,
        cid,
        result.digest,
        result.metadata.num_examples,
        metrics.eval_loss_before,
        metrics.eval_loss_after,
        info.deadline,
        resumed=False,
    )


def _check_window(session: Session, task_id: int, round_: int, deadline: int) -> None:
    """Raise :class:`RoundUnavailable` unless ``round_`` accepts submissions now (``OPEN``).

    For a joined node that has not submitted, any other state means the window has passed."""
    state = session.ledger.round_state(task_id, round_)
    if state is not RoundState.OPEN:
        raise RoundUnavailable(
            f"the submission window of round {round_} of task {task_id} closed at {deadline} "
            f"(the round is {state.name.lower()})",
            hint="the node takes part in the next round",
        )


def _commit(
    session: Session,
    task_id: int,
    round_: int,
    cid: str,
    digest: str,
    num_examples: int,
    before: float | None,
    after: float | None,
    deadline: int,
    *,
    resumed: bool,
) -> SubmittedUpdate:
    _check_window(session, task_id, round_, deadline)
    session.ledger.submit_update(
        task_id, round_, cid, bytes.fromhex(digest), num_examples, session.signer
    )
    logger.info(
        "round %s: committed %s (digest %s, %s examples)", round_, cid, digest, num_examples
    )
    return SubmittedUpdate(task_id, round_, cid, digest, num_examples, before, after, resumed)


def _journal_path(session: Session, task_id: int, round_: int) -> Path:
    return session.state_dir("nodes", task_id) / f"round-{round_}.json"


def _read_journal(session: Session, task_id: int, round_: int) -> dict[str, str] | None:
    path = _journal_path(session, task_id, round_)
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"node journal {path} is unreadable: {exc}", hint="delete it to train the round again"
        ) from exc
    if not isinstance(body, dict) or not {"cid", "digest"} <= body.keys():
        raise ConfigError(
            f"node journal {path} is malformed", hint="delete it to train the round again"
        )
    return {"cid": str(body["cid"]), "digest": str(body["digest"])}


def _write_journal(session: Session, task_id: int, round_: int, body: dict[str, str]) -> None:
    write_json_atomic(_journal_path(session, task_id, round_), body)


def run(
    session: Session,
    task_id: int,
    train_one: Callable[[], SubmittedUpdate],
    *,
    poll_seconds: float = 2.0,
    max_rounds: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_submitted: Callable[[SubmittedUpdate], None] | None = None,
) -> list[SubmittedUpdate]:
    """Loop: wait for an open round this node has not submitted to, train, commit; until the
    task is complete (or ``max_rounds`` submissions). A missed window waits for the next round."""
    done: list[SubmittedUpdate] = []
    while not should_stop() and not session.ledger.is_complete(task_id):
        if max_rounds is not None and len(done) >= max_rounds:
            break
        round_ = session.ledger.open_round(task_id)
        if round_ and not session.ledger.submission(task_id, round_, session.address).exists:
            try:
                submitted = train_one()
            except RoundUnavailable as exc:
                logger.info("%s", exc)
            else:
                done.append(submitted)
                if on_submitted is not None:
                    on_submitted(submitted)
                continue
        time.sleep(poll_seconds)
    return done


# ------------------------------------------------------------------------- rewards


def _report(session: Session, task_id: int, round_: int, report_cid: str) -> RoundReport:
    report = fetch_report(session.store, report_cid)
    if (report.task_id, report.round) != (task_id, round_):
        raise StorageError(
            f"the report {report_cid} published for task {task_id} round {round_} "
            f"describes task {report.task_id} round {report.round}"
        )
    return report


def status(session: Session, task_id: int) -> NodeStatus:
    """Stake, submissions, verdicts and rewards (claimable and claimed) for this node."""
    ledger = session.ledger
    task = ledger.task(task_id)
    finalized = {f.round: f for f in session.history.finalized(task_id)}
    rows = []
    for round_ in range(1, task.rounds_opened + 1):
        submitted = ledger.submission(task_id, round_, session.address).exists
        verdict, reward = None, 0
        if round_ in finalized:
            try:
                report = _report(session, task_id, round_, finalized[round_].report_cid)
            except LoRALedgerError as exc:
                logger.warning("round %s: report unavailable (%s)", round_, exc)
            else:
                mine = next(
                    (s for s in report.submissions if s.node.lower() == session.address.lower()),
                    None,
                )
                verdict = mine.verdict if mine else None
                line = report.reward_for(session.address)
                reward = line.amount if line else 0
        rows.append(
            RoundStatus(
                round_,
                round_ in finalized,
                submitted,
                verdict,
                reward,
                ledger.has_claimed(task_id, round_, session.address),
            )
        )
    return NodeStatus(task_id, ledger.member(task_id, session.address), tuple(rows))


def claim(session: Session, task_id: int) -> list[ClaimRequest]:
    """Claim every finalized, unclaimed round that rewards this node, in one transaction.

    Each proof comes from the round's report and is checked against the on-chain root first,
    so a wrong or tampered report is reported as such and costs no gas.
    """
    ledger = session.ledger
    requests = []
    for record in session.history.finalized(task_id):
        if ledger.has_claimed(task_id, record.round, session.address):
            continue
        report = _report(session, task_id, record.round, record.report_cid)
        line = report.reward_for(session.address)
        if line is None:
            continue
        proof = tuple(bytes.fromhex(p) for p in line.proof)
        leaf = leaf_hash(task_id, record.round, session.address, line.amount)
        if not verify(record.reward_root, leaf, proof):
            raise StorageError(
                f"the proof in the report {record.report_cid} for round {record.round} "
                "does not match the reward root on chain",
                hint="the report was altered or belongs to another round; nothing was claimed",
            )
        requests.append(ClaimRequest(task_id, record.round, line.amount, proof))
    if requests:
        ledger.claim_batch(requests, session.signer)
    return requests
