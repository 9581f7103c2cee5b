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

from eth_account.signers.local import LocalAccount

from chain.bindings import ClaimRequest, Ledger, Member, TaskParams, Token, base_model_hash
from chain.events import History
from chain.merkle import leaf_hash, verify
from fl_node.data import NodeData
from fl_node.model import LoadedModel
from fl_node.train import (
    NodeTrainConfig,
    ProgressCallback,
    TrainSettings,
    adapter_tensors,
    attach_adapter,
    detach_adapter,
    software_versions,
    train_round,
)
from ipfs import ContentStore
from loraledger.errors import ChainError, ConfigError, LoRALedgerError, StorageError
from loraledger.paths import home, write_json_atomic
from loraledger.report import RoundReport
from loraledger.update import (
    FORMAT_VERSION,
    GlobalAdapterMetadata,
    PeftSpec,
    build_global_adapter,
    parse_update,
    peft_adapter_config,
    sha256_hex,
)

logger = logging.getLogger(__name__)


class RoundUnavailable(ChainError):
    """There is no round this node can submit to now (none open, window closed, already done)."""


@dataclass(frozen=True)
class NodeSession:
    """Everything a node needs: the ledger, the store and its signing account."""

    ledger: Ledger
    history: History
    store: ContentStore
    account: LocalAccount
    journal_root: Path | None = None

    @property
    def address(self) -> str:
        return self.account.address

    def journal_dir(self, task_id: int) -> Path:
        root = self.journal_root or home() / "nodes"
        return (
            root
            / str(self.ledger.chain.chain_id)
            / self.ledger.address
            / self.address
            / f"task-{task_id}"
        )


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


# ------------------------------------------------------------------------- the initial adapter


def initial_global_adapter(
    model: LoadedModel, spec: PeftSpec, task_id: int, *, seed: int = 0
) -> bytes:
    """A freshly initialised adapter for ``model`` (LoRA: B = 0, so it starts as the base model),
    packed as a global adapter for ``task_id``: what a sponsor publishes when creating a task."""
    import torch

    torch.manual_seed(seed)
    peft_model = attach_adapter(model, spec)
    try:
        tensors = adapter_tensors(peft_model)
    finally:
        detach_adapter(peft_model, model)
    metadata = GlobalAdapterMetadata(
        format_version=FORMAT_VERSION,
        task_id=task_id,
        round=0,
        base_model=model.model_id,
        peft=spec,
        software=software_versions(),
        adapter_config=peft_adapter_config(spec, model.model_id),
    )
    return build_global_adapter(tensors, metadata)


def create_funded_task(
    ledger: Ledger, token: Token, params: TaskParams, sponsor: LocalAccount, *, fund: int,
    expected_id: int | None = None,
) -> int:  # fmt: skip
    """Create a task (``sponsor`` becomes its sponsor) and deposit ``fund`` tokens into its pool.

    ``expected_id``: the id the initial adapter was built for (it is written into the adapter);
    a task created by someone else in between is refused rather than left mismatched.
    """
    task_id, _ = ledger.create_task(params, sponsor)
    if expected_id is not None and task_id != expected_id:
        raise ChainError(
            f"another task was created meanwhile: the adapter was built for task {expected_id}, got {task_id}",
            hint="create the task again",
        )
    if fund:
        token.approve(ledger.address, fund, sponsor)
        ledger.fund_task(task_id, fund, sponsor)
    return task_id


def publish_task(
    ledger: Ledger, token: Token, store: ContentStore, model: LoadedModel, spec: PeftSpec,
    sponsor: LocalAccount, *, reward_per_round: int, min_stake: int, window: int, max_rounds: int,
    fund: int, seed: int = 0,
) -> tuple[int, str]:  # fmt: skip
    """The sponsor's side: build and pin the initial adapter for the next task id, create the
    task with its CID and digest, and fund its pool with ``fund`` tokens. Returns the task id
    and the initial adapter's CID."""
    task_id = ledger.task_count() + 1
    adapter = initial_global_adapter(model, spec, task_id, seed=seed)
    cid = store.put_bytes(adapter)
    store.pin(cid)
    params = TaskParams(
        base_model_hash=base_model_hash(model.model_id), initial_global_cid=cid,
        initial_global_digest=bytes.fromhex(sha256_hex(adapter)), token=token.address,
        reward_per_round=reward_per_round, min_stake=min_stake, submission_window=window, max_rounds=max_rounds,
    )  # fmt: skip
    create_funded_task(ledger, token, params, sponsor, fund=fund, expected_id=task_id)
    return task_id, cid


# ------------------------------------------------------------------------- join


def join(session: NodeSession, task_id: int) -> Member:
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
        token.approve(session.ledger.address, task.min_stake, session.account)
    session.ledger.join(task_id, session.account)
    return session.ledger.member(task_id, session.address)


# ------------------------------------------------------------------------- train


def submit_round(
    session: NodeSession,
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
        return _commit(session, task_id, round_, journal["cid"], parsed.digest, parsed.metadata.num_examples,
                       parsed.metadata.metrics.eval_loss_before, parsed.metadata.metrics.eval_loss_after,
                       info.deadline, resumed=True)  # fmt: skip

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
    return _commit(session, task_id, round_, cid, result.digest, result.metadata.num_examples,
                   metrics.eval_loss_before, metrics.eval_loss_after, info.deadline, resumed=False)  # fmt: skip


def _check_window(session: NodeSession, task_id: int, round_: int, deadline: int) -> None:
    now = session.ledger.chain.timestamp()
    if now > deadline:
        raise RoundUnavailable(
            f"the submission window of round {round_} of task {task_id} closed at {deadline} (chain time {now})",
            hint="the node takes part in the next round",
        )


def _commit(
    session: NodeSession, task_id: int, round_: int, cid: str, digest: str, num_examples: int,
    before: float | None, after: float | None, deadline: int, *, resumed: bool,
) -> SubmittedUpdate:  # fmt: skip
    _check_window(session, task_id, round_, deadline)
    session.ledger.submit_update(
        task_id, round_, cid, bytes.fromhex(digest), num_examples, session.account
    )
    logger.info(
        "round %s: committed %s (digest %s, %s examples)", round_, cid, digest, num_examples
    )
    return SubmittedUpdate(task_id, round_, cid, digest, num_examples, before, after, resumed)


def _journal_path(session: NodeSession, task_id: int, round_: int) -> Path:
    return session.journal_dir(task_id) / f"round-{round_}.json"


def _read_journal(session: NodeSession, task_id: int, round_: int) -> dict[str, str] | None:
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


def _write_journal(session: NodeSession, task_id: int, round_: int, body: dict[str, str]) -> None:
    write_json_atomic(_journal_path(session, task_id, round_), body)


def run(
    session: NodeSession,
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


def _report(session: NodeSession, task_id: int, round_: int, report_cid: str) -> RoundReport:
    report = RoundReport.from_bytes(session.store.get_bytes(report_cid, max_size=64 * 1024**2))
    if (report.task_id, report.round) != (task_id, round_):
        raise StorageError(
            f"the report {report_cid} published for task {task_id} round {round_} "
            f"describes task {report.task_id} round {report.round}"
        )
    return report


def status(session: NodeSession, task_id: int) -> NodeStatus:
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
        rows.append(RoundStatus(round_, round_ in finalized, submitted, verdict, reward,
                                ledger.has_claimed(task_id, round_, session.address)))  # fmt: skip
    return NodeStatus(task_id, ledger.member(task_id, session.address), tuple(rows))


def claim(session: NodeSession, task_id: int) -> list[ClaimRequest]:
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
                f"the proof in the report {record.report_cid} for round {record.round} does not match "
                "the reward root on chain",
                hint="the report was altered or belongs to another round; nothing was claimed",
            )
        requests.append(ClaimRequest(task_id, record.round, line.amount, proof))
    if requests:
        ledger.claim_batch(requests, session.account)
    return requests
