"""The training node's protocol: join a task, train a round, commit, reveal, claim.

A node trains from the round's global adapter (fetched by the CID published on chain and
checked against the round's start digest) and commits to its update in two steps, so nobody
can copy it before the round's commit phase is over:

1. :func:`submit_round` (round ``OPEN``): train, write the update's bytes and a journal
   (digest, example count, a random 32-byte salt, the bytes' path) under
   ``<home>/nodes/``, THEN commit ``commitment_hash(task, round, node, digest, examples,
   salt)``. Nothing is pinned or announced.
2. :func:`reveal_round` (round ``REVEALING``): pin the journalled bytes and reveal the CID,
   digest, example count and salt.

Killed at any point, a node resumes from its journal: it never trains twice, commits at most
once (the chain refuses a second commitment) and still reveals after a restart between its
commitment and its reveal. Rewards are claimed with the Merkle proofs published in each round's
report, checked locally against the on-chain root.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chain import errors
from chain.bindings import ClaimRequest, Member, Submission, Token, commitment_hash
from chain.merkle import leaf_hash, verify
from chain.progress import awaiting
from chain.recovery import RECOVERABLE, Recovery
from chain.round_state import RoundState
from chain.session import Session
from fl_node.data import NodeData
from fl_node.model import LoadedModel
from fl_node.train import (
    ExampleDP,
    NodeShare,
    NodeTrainConfig,
    ProgressCallback,
    TrainSettings,
    train_round,
)
from loraledger.display import chain_time
from loraledger.errors import ChainError, ConfigError, LoRALedgerError, StorageError
from loraledger.paths import write_bytes_atomic, write_json_atomic
from loraledger.privacy import Stretch, TaskPrivacy, epsilon
from loraledger.report import RoundReport, fetch_report
from loraledger.update import PeftSpec, PrivacyRecord, sha256_hex

logger = logging.getLogger(__name__)

#: Version of the node journal's format (``round-N.json``).
JOURNAL_FORMAT = 2


class RoundUnavailable(ChainError):
    """There is no round this node can commit to or reveal in now (none open, window closed,
    already done)."""


@dataclass(frozen=True)
class SubmittedUpdate:
    """An update this node committed to; ``cid`` is set once it is revealed (pinned)."""

    task_id: int
    round: int
    cid: str | None
    digest: str
    num_examples: int
    eval_loss_before: float | None
    eval_loss_after: float | None
    resumed: bool  # from the journal, without training again
    revealed: bool = False
    epsilon: float | None = None  # what this update's DP-SGD spent (None: trained without DP)


@dataclass(frozen=True)
class RoundStatus:
    round: int
    finalized: bool
    submitted: bool
    verdict: str | None  # from the round report, once published
    reward: int
    claimed: bool
    settled: bool = False  # the challenge window passed: the reward can be claimed


@dataclass(frozen=True)
class SpentRound:
    """A round whose update this node trained and went on to commit, keyed by the update's
    digest: what its DP-SGD spent (:class:`~loraledger.update.PrivacyRecord`), or ``None`` for
    an update trained without differential privacy (it spent without bound)."""

    round: int
    digest: str
    record: PrivacyRecord | None


@dataclass(frozen=True)
class NodeStatus:
    task_id: int
    member: Member
    rounds: tuple[RoundStatus, ...]
    privacy: tuple[SpentRound, ...] = ()

    @property
    def epsilon(self) -> float | None:
        """The epsilon this node's committed updates of the task spent together (at the latest
        one's delta, by its accountant): ``inf`` when one of them was trained without DP-SGD;
        ``None`` when none was trained with it."""
        return privacy_total(self.privacy)

    @property
    def claimable(self) -> int:
        """Rewards of settled rounds not claimed yet."""
        return sum(r.reward for r in self.rounds if r.reward and r.settled and not r.claimed)

    @property
    def pending(self) -> int:
        """Rewards of finalized rounds still in their challenge window."""
        return sum(r.reward for r in self.rounds if r.reward and not r.settled)

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


def leave(session: Session, task_id: int) -> Member:
    """Leave the task: stop taking part now (``leave``) and take the stake back as soon as the
    last round this node committed in can no longer slash it (``withdrawStake``; at once when
    nothing is pending). Returns the membership afterwards: ``leaving`` with the stake still
    held while it is locked (:func:`withdraw_stake` takes it later)."""
    ledger = session.ledger
    member = ledger.member(task_id, session.address)
    if not member.joined:
        raise ChainError(f"{session.address} is not a member of task {task_id}")
    if not member.leaving:
        ledger.leave(task_id, session.signer)
    try:
        return withdraw_stake(session, task_id)
    except errors.LedgerStakeLocked as exc:
        logger.info("%s", exc)
        return ledger.member(task_id, session.address)


def withdraw_stake(session: Session, task_id: int) -> Member:
    """Take back the stake of a node that left, once it is unlocked: the last round it
    committed in is settled and past its slash window, or abandoned. Raises
    ``LedgerStakeLocked`` (with the time it unlocks) before."""
    session.ledger.withdraw_stake(task_id, session.signer)
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
    """Train on the open round of ``task_id`` and commit to the update (hidden: nothing is
    pinned or announced until :func:`reveal_round`); one clear error otherwise."""
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
    if ledger.submission(task_id, round_, session.address).committed:
        raise RoundUnavailable(f"this node already committed in round {round_} of task {task_id}")
    info = ledger.round(task_id, round_)
    _check_window(session, task_id, round_, info.deadline)
    _check_confirmed(session, task_id, round_)

    journal = _read_journal(session, task_id, round_)
    start = info.start_digest.hex()
    if journal is not None and journal.get("start_digest", start) != start:
        # the round this update was trained for is not the round on chain any more (a
        # reorganisation replaced the previous round's result, or the task itself): its update
        # starts from another adapter and would be rejected, so it is set aside, not committed
        aside = _set_aside(session, task_id, round_, journal)
        logger.warning(
            "round %s: the journalled update was trained from global adapter %s, the round "
            "now starts from %s; kept as %s, training again",
            round_,
            str(journal["start_digest"])[:16],
            start[:16],
            aside,
        )
        journal = None
    if journal is not None:
        logger.info("round %s: committing the update journalled before a restart", round_)
        _load_update(journal)  # the bytes are still there and match the digest
        _record_spent(session, task_id, round_, journal)  # killed before it was recorded
        return _commit(session, task_id, round_, journal, info.deadline, resumed=True)

    settings = as_policy_requires(settings, session.history.task_created(task_id).params.privacy)
    if settings.privacy is not None:
        _check_budget(session, task_id, settings.privacy)
    start_cid = session.history.global_adapter_at(task_id, info.start_digest)
    global_bytes = session.store.get_bytes(start_cid)
    config = NodeTrainConfig(
        task_id=task_id, round=round_, node=session.address, peft=peft, train=settings
    )
    result = train_round(config, model, data, global_bytes, info.start_digest.hex(), progress)
    record = result.metadata.metrics.privacy
    _check_spend(session, task_id, round_, result.digest, record, settings.privacy)
    path = _journal_path(session, task_id, round_).with_suffix(".safetensors")
    write_bytes_atomic(path, result.update)
    metrics = result.metadata.metrics
    journal = {
        "format": JOURNAL_FORMAT,
        "digest": result.digest,
        "num_examples": result.metadata.num_examples,
        "salt": secrets.token_bytes(32).hex(),
        "path": str(path),
        "start_digest": start,  # what it was trained from: a journal for another start is stale
        "eval_loss_before": metrics.eval_loss_before,
        "eval_loss_after": metrics.eval_loss_after,
        "epsilon": None if record is None else record.epsilon,
        "privacy": None if record is None else record.model_dump(mode="json"),
    }
    _write_journal(session, task_id, round_, journal)  # before committing: the salt survives
    _record_spent(session, task_id, round_, journal)  # once journalled: it will be committed
    return _commit(session, task_id, round_, journal, info.deadline, resumed=False)


def reveal_round(session: Session, task_id: int, round_: int | None = None) -> SubmittedUpdate:
    """Pin and reveal the update this node committed to in ``round_`` (default: the open
    round) once the round is ``REVEALING``; works after a restart (the journal keeps the bytes
    and the salt). :class:`RoundUnavailable` when there is nothing to reveal now."""
    ledger = session.ledger
    round_ = round_ or ledger.open_round(task_id)
    if round_ == 0:
        raise RoundUnavailable(f"no round of task {task_id} is open")
    stored = ledger.submission(task_id, round_, session.address)
    if not stored.committed:
        raise RoundUnavailable(f"this node did not commit in round {round_} of task {task_id}")
    if stored.revealed:
        raise RoundUnavailable(f"this node already revealed in round {round_} of task {task_id}")
    state = ledger.round_state(task_id, round_)
    if state is not RoundState.REVEALING:
        info = ledger.round(task_id, round_)
        when = (
            f"opens after {chain_time(info.deadline, ledger.chain.timestamp())}"
            if state is RoundState.OPEN
            else f"closed at {chain_time(info.reveal_deadline, ledger.chain.timestamp())}"
        )
        raise RoundUnavailable(
            f"the reveal window of round {round_} of task {task_id} {when} "
            f"(the round is {state.name.lower()})",
            hint="reveal while the round is revealing (`loraledger node reveal`)",
        )
    journal = _read_journal(session, task_id, round_)
    if journal is None:
        raise ConfigError(
            f"this node committed in round {round_} of task {task_id} but its journal "
            f"{_journal_path(session, task_id, round_)} is gone: the salt cannot be recovered",
            hint="the commitment cannot be revealed; it earns nothing",
        )
    update = _load_update(journal)
    digest, salt = bytes.fromhex(str(journal["digest"])), bytes.fromhex(str(journal["salt"]))
    num_examples = int(journal["num_examples"])
    expected = commitment_hash(task_id, round_, session.address, digest, num_examples, salt)
    if expected != stored.commitment:
        raise ConfigError(
            f"the journal of round {round_} does not match this node's commitment on chain",
            hint="the journal was replaced after committing; the commitment earns nothing",
        )
    cid = session.store.put_bytes(update)
    session.store.pin(cid)
    write_json_atomic(_journal_path(session, task_id, round_), {**journal, "cid": cid})
    ledger.reveal_update(task_id, round_, cid, digest, num_examples, salt, session.signer)
    logger.info(
        "round %s: revealed %s (digest %s, %s examples)", round_, cid, digest.hex(), num_examples
    )
    return replace(_submitted(task_id, round_, journal, resumed=False), cid=cid, revealed=True)


def _check_confirmed(session: Session, task_id: int, round_: int) -> None:
    """With ``--confirmations N``: the round's opening (and so the result it starts from) must
    be N blocks deep before this node trains for it or commits; :class:`RoundUnavailable`
    (wait) until then."""
    chain = session.ledger.chain
    if chain.confirmations <= 0:
        return
    opened = session.history.opened_at(task_id, round_)
    if opened is None or not chain.confirmed(opened):
        depth = "not seen yet" if opened is None else f"{chain.depth(opened)} deep"
        raise RoundUnavailable(
            f"round {round_} of task {task_id}: waiting for its opening to have "
            f"{chain.confirmations} confirmations (block {opened}: {depth})"
        )


def _check_window(session: Session, task_id: int, round_: int, deadline: int) -> None:
    """Raise :class:`RoundUnavailable` unless ``round_`` accepts commitments now (``OPEN``).

    For a joined node that has not committed, any other state means the window has passed."""
    state = session.ledger.round_state(task_id, round_)
    closed = chain_time(deadline)
    if state is not RoundState.OPEN:
        raise RoundUnavailable(
            f"the submission window of round {round_} of task {task_id} closed at {closed} "
            f"(the round is {state.name.lower()})",
            hint="the node takes part in the next round",
        )
    # the view answers at the last block's time, which stands still on an idle dev chain; the
    # commitment lands in the next block, at about the wall clock's time (never earlier)
    next_block = max(session.ledger.chain.timestamp(), int(time.time()))
    if next_block > deadline:
        raise RoundUnavailable(
            f"the submission window of round {round_} of task {task_id} closed at {closed}: "
            f"the next block comes {next_block - deadline} s after it",
            hint="the node takes part in the next round",
        )


def _submitted(
    task_id: int, round_: int, journal: dict[str, Any], *, resumed: bool
) -> SubmittedUpdate:
    def loss(key: str) -> float | None:
        value = journal.get(key)
        return None if value is None else float(value)

    return SubmittedUpdate(
        task_id,
        round_,
        journal.get("cid"),
        str(journal["digest"]),
        int(journal["num_examples"]),
        loss("eval_loss_before"),
        loss("eval_loss_after"),
        resumed,
        epsilon=loss("epsilon"),
    )


def _commit(
    session: Session,
    task_id: int,
    round_: int,
    journal: dict[str, Any],
    deadline: int,
    *,
    resumed: bool,
) -> SubmittedUpdate:
    _check_window(session, task_id, round_, deadline)
    digest, num_examples = str(journal["digest"]), int(journal["num_examples"])
    commitment = commitment_hash(
        task_id,
        round_,
        session.address,
        bytes.fromhex(digest),
        num_examples,
        bytes.fromhex(str(journal["salt"])),
    )
    session.ledger.commit_update(task_id, round_, commitment, session.signer)
    logger.info(
        "round %s: committed to an update (digest %s, %s examples)", round_, digest, num_examples
    )
    return _submitted(task_id, round_, journal, resumed=resumed)


class PrivacyPolicyUnmet(ConfigError):
    """The node's privacy settings do not meet what its task requires (refused before training)."""


def as_policy_requires(settings: TrainSettings, policy: TaskPrivacy) -> TrainSettings:
    """``settings`` as the task's privacy ``policy`` requires them, checked before training.

    - example-level: DP-SGD at the task's noise multiplier, clipping bound, delta and
      accountant, with the task's target epsilon as the node's budget, unless the node set its
      own DP-SGD: then it must add at least the task's noise at the task's delta and
      accountant, and its budget is the smaller of the two;
    - node-level: the task's noise share (:class:`~fl_node.train.NodeShare`), and no DP-SGD;
    - none: the settings as they are, but a noise share for another policy is refused.

    :class:`PrivacyPolicyUnmet` names what differs.
    """
    dp, share = settings.privacy, settings.node_share
    if policy.mode == "example":
        if dp is None:
            dp = ExampleDP(
                noise_multiplier=policy.noise_multiplier,
                clip_norm=policy.clip_norm,
                delta=policy.delta,
                accountant=policy.accountant,
            )
        elif dp.noise_multiplier < policy.noise_multiplier:
            raise PrivacyPolicyUnmet(
                f"--dp-noise-multiplier {dp.noise_multiplier:g} is below the task's "
                f"{policy.noise_multiplier:g}",
                hint="leave the --dp-* options out to train as the task requires",
            )
        elif (dp.delta, dp.accountant) != (policy.delta, policy.accountant):
            raise PrivacyPolicyUnmet(
                f"the task states epsilon at delta {policy.delta:g} by the "
                f"{policy.accountant} accountant; this node at {dp.delta:g} by {dp.accountant}",
                hint="leave --dp-delta and --dp-accountant out",
            )
        budget = min(dp.epsilon_budget or math.inf, policy.target_epsilon)
        return settings.replace(privacy=dp.replace(epsilon_budget=budget))
    if policy.mode == "node":
        if dp is not None:
            raise PrivacyPolicyUnmet(
                "the task requires node-level DP (noise shares of the clipped update); "
                "example-level DP-SGD is not combined with it",
                hint="leave the --dp-* options out",
            )
        if share is None:
            return settings.replace(node_share=NodeShare(policy=policy))
        if share.policy != policy:
            raise PrivacyPolicyUnmet("the node's noise share follows another task's policy")
        return settings
    if share is not None:
        raise PrivacyPolicyUnmet("the task requires no node-level DP: a noise share would be lost")
    return settings


class PrivacyBudgetExceeded(ConfigError):
    """Committing this update would take the node's epsilon on the task past its budget."""


def privacy_total(spent: Sequence[SpentRound], extra: PrivacyRecord | None = None) -> float | None:
    """The epsilon of ``spent`` (and ``extra``) composed, at the last DP-SGD record's delta and
    by its accountant: ``None`` without any DP-SGD record, ``inf`` when a round was trained
    without DP (its update was released with no guarantee)."""
    records = [s.record for s in spent if s.record is not None]
    records += [extra] if extra is not None else []
    if not records:
        return None
    if any(s.record is None for s in spent):
        return math.inf
    last = records[-1]
    stretches = [Stretch(r.noise_multiplier, r.sample_rate, r.steps) for r in records]
    return epsilon(stretches, last.delta, last.accountant)


def _privacy_path(session: Session, task_id: int) -> Path:
    return session.state_dir("nodes", task_id) / "privacy.json"


def privacy_spent(session: Session, task_id: int) -> tuple[SpentRound, ...]:
    """What this node's committed DP-SGD updates of ``task_id`` spent, round by round (kept in
    its state folder: the chain does not know how an update was trained)."""
    path = _privacy_path(session, task_id)
    try:
        body = json.loads(path.read_text())
        return tuple(
            SpentRound(
                int(e["round"]),
                str(e["digest"]),
                None if e["record"] is None else PrivacyRecord.model_validate(e["record"]),
            )
            for e in body["rounds"]
        )
    except FileNotFoundError:
        return ()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the node's privacy ledger {path} is unreadable: {exc}",
            hint="it records the epsilon spent; restore it rather than delete it",
        ) from exc


def _check_budget(session: Session, task_id: int, dp: ExampleDP) -> None:
    """Refuse to train when the updates already committed spent the whole budget (or one of
    them was trained without DP: nothing bounds what it released)."""
    if dp.epsilon_budget is None:
        return
    spent = privacy_spent(session, task_id)
    clear = [s.round for s in spent if s.record is None]
    if clear:
        raise PrivacyBudgetExceeded(
            f"this node committed round(s) {', '.join(map(str, clear))} of task {task_id} "
            "without DP-SGD: those updates carry no guarantee, so no epsilon budget holds",
            hint="a budget means something only for a node that trains every round with DP",
        )
    total = privacy_total(spent) or 0.0
    if total >= dp.epsilon_budget:
        raise PrivacyBudgetExceeded(
            f"this node already spent epsilon {total:.3f} of its budget {dp.epsilon_budget:g} "
            f"on task {task_id}: it trains no more rounds",
            hint="leave the task, or raise --dp-budget knowing what it means",
        )


def _check_spend(
    session: Session,
    task_id: int,
    round_: int,
    digest: str,
    record: PrivacyRecord | None,
    dp: ExampleDP | None,
) -> None:
    """Raise :class:`PrivacyBudgetExceeded` when committing this update would take the node past
    its budget (before anything is journalled: a refused update is never released)."""
    spent = privacy_spent(session, task_id)
    budget = dp.epsilon_budget if dp is not None else None
    if record is None or budget is None or any(s.digest == digest for s in spent):
        return
    total = privacy_total(spent, record)
    if total is not None and total > budget:
        raise PrivacyBudgetExceeded(
            f"round {round_}'s update would bring this node's epsilon on task {task_id} to "
            f"{total:.3f}, over its budget {budget:g} (delta {record.delta:g}); it was not "
            "committed",
            hint="more noise (--dp-noise-multiplier), fewer --steps or a smaller --batch-size",
        )


def _record_spent(session: Session, task_id: int, round_: int, journal: dict[str, Any]) -> None:
    """Add a journalled update (which the node commits next) to the privacy ledger, once per
    digest: a clear one too (``privacy`` null), so that turning DP on later reads as
    unbounded."""
    spent = privacy_spent(session, task_id)
    digest = str(journal["digest"])
    if any(s.digest == digest for s in spent):
        return  # recorded before a restart: spent once
    raw = journal.get("privacy")
    try:
        record = None if raw is None else PrivacyRecord.model_validate(raw)
    except ValueError as exc:
        raise ConfigError(
            f"the journal of round {round_} has an unreadable privacy record: {exc}",
            hint="delete the round's journal to train the round again (before committing)",
        ) from exc
    entries = [
        {
            "round": s.round,
            "digest": s.digest,
            "record": None if s.record is None else s.record.model_dump(mode="json"),
        }
        for s in (*spent, SpentRound(round_, digest, record))
    ]
    write_json_atomic(_privacy_path(session, task_id), {"rounds": entries})


def _journal_path(session: Session, task_id: int, round_: int) -> Path:
    return session.state_dir("nodes", task_id) / f"round-{round_}.json"


def _set_aside(session: Session, task_id: int, round_: int, journal: dict[str, Any]) -> Path:
    """Rename a stale journal and its update out of the way (``round-N.stale-<start>.json``),
    kept for a person to look at; returns the journal's new path."""
    path = _journal_path(session, task_id, round_)
    suffix = f".stale-{str(journal.get('start_digest', 'unknown'))[:16]}"
    update = Path(str(journal["path"]))
    if update.exists():
        update.replace(update.with_name(update.stem + suffix + update.suffix))
    aside = path.with_name(path.stem + suffix + path.suffix)
    path.replace(aside)
    return aside


def _load_update(journal: dict[str, Any]) -> bytes:
    """The journalled update's bytes, checked against the journalled digest."""
    path = Path(str(journal["path"]))
    try:
        update = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"the journalled update {path} is unreadable: {exc}",
            hint="delete the round's journal to train the round again (before committing)",
        ) from exc
    if sha256_hex(update) != journal["digest"]:
        raise StorageError(f"the journalled update {path} does not match its digest")
    return update


def _read_journal(session: Session, task_id: int, round_: int) -> dict[str, Any] | None:
    path = _journal_path(session, task_id, round_)
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"node journal {path} is unreadable: {exc}", hint="delete it to train the round again"
        ) from exc
    keys = {"format", "digest", "num_examples", "salt", "path"}
    if not isinstance(body, dict) or not keys <= body.keys():
        raise ConfigError(
            f"node journal {path} is malformed", hint="delete it to train the round again"
        )
    if body["format"] != JOURNAL_FORMAT:
        raise ConfigError(
            f"node journal {path} has format {body['format']!r}, this node writes {JOURNAL_FORMAT}",
            hint="delete it to train the round again",
        )
    return body


def _write_journal(session: Session, task_id: int, round_: int, body: dict[str, Any]) -> None:
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
    on_revealed: Callable[[SubmittedUpdate], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> list[SubmittedUpdate]:
    """Loop until the task is complete (or ``max_rounds`` commitments, each revealed or past
    its reveal window): commit (``train_one``) in an ``OPEN`` round this node has not committed
    to; reveal in a ``REVEALING`` round it committed to and has not revealed. A missed window
    waits for the next round. Returns the updates, revealed ones with their CID.

    ``on_wait`` is told, at every poll that waits, what the node waits for and until when."""
    done: list[SubmittedUpdate] = []
    recovery = Recovery(f"node {session.address} in task {task_id}")
    while True:
        try:
            stop = _run_step(
                session,
                task_id,
                train_one,
                done,
                recovery,
                max_rounds=max_rounds,
                should_stop=should_stop,
                on_submitted=on_submitted,
                on_revealed=on_revealed,
                on_wait=on_wait,
                poll_seconds=poll_seconds,
            )
        except RECOVERABLE as exc:  # a reorganisation, a restarting service: as a restart
            time.sleep(recovery.failed(exc))
            continue
        if stop:
            return done


def _run_step(
    session: Session,
    task_id: int,
    train_one: Callable[[], SubmittedUpdate],
    done: list[SubmittedUpdate],
    recovery: Recovery,
    *,
    max_rounds: int | None,
    should_stop: Callable[[], bool],
    on_submitted: Callable[[SubmittedUpdate], None] | None,
    on_revealed: Callable[[SubmittedUpdate], None] | None,
    on_wait: Callable[[str], None] | None,
    poll_seconds: float,
) -> bool:
    """One look at the chain by :func:`run`: commit, reveal or wait; ``True`` when done."""
    ledger = session.ledger
    while (
        not should_stop() and not ledger.is_complete(task_id) and not ledger.task(task_id).cancelled
    ):
        round_ = ledger.open_round(task_id)
        stored = ledger.submission(task_id, round_, session.address) if round_ else None
        awaiting_reveal = stored is not None and stored.committed and not stored.revealed
        if max_rounds is not None and len(done) >= max_rounds and not awaiting_reveal:
            break
        state = ledger.round_state(task_id, round_) if round_ else RoundState.UNOPENED
        # a node takes part in rounds opened after it joined (it joined during this one: wait)
        eligible = ledger.member(task_id, session.address).joined_round < round_
        if stored is not None and state is RoundState.OPEN and not stored.committed and eligible:
            try:
                submitted = train_one()
            except RoundUnavailable as exc:
                logger.info("%s", exc)
            else:
                done.append(submitted)
                recovery.succeeded()
                if on_submitted is not None:
                    on_submitted(submitted)
                continue
        elif state is RoundState.REVEALING and awaiting_reveal:
            try:
                revealed = reveal_round(session, task_id, round_)
            except RoundUnavailable as exc:
                logger.info("%s", exc)
            else:
                done[:] = [revealed if d.round == revealed.round else d for d in done]
                if revealed.round not in {d.round for d in done}:
                    done.append(revealed)  # committed before a restart
                recovery.succeeded()
                if on_revealed is not None:
                    on_revealed(revealed)
                continue
        elif (
            awaiting_reveal
            and state is not RoundState.OPEN
            and max_rounds is not None
            and len(done) >= max_rounds
        ):
            break  # the reveal window is over: nothing left to do for this round
        if on_wait is not None:
            on_wait(_node_waits(session, task_id, round_, stored, eligible))
        recovery.succeeded()  # a whole look at the chain held together
        time.sleep(poll_seconds)
    return True


def _node_waits(
    session: Session, task_id: int, round_: int, stored: Submission | None, eligible: bool
) -> str:
    """What a node polling in :func:`run` waits for (:func:`chain.progress.awaiting`), with
    where it stands itself."""
    ledger = session.ledger
    task = ledger.task(task_id)
    number = round_ or task.rounds_opened + 1
    state = ledger.round_state(task_id, number) if round_ else RoundState.UNOPENED
    said = awaiting(
        ledger.round(task_id, number),
        state,
        ledger.chain.timestamp(),
        quorum=task.quorum,
        challenge_window=task.challenge_window,
    )
    if stored is not None and stored.revealed:
        return f"revealed; {said}"
    if stored is not None and stored.committed:
        return f"committed; {said}"
    if round_ and not eligible:
        return f"joined during round {round_}, takes part from the next; {said}"
    return said


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
        settled = ledger.round_state(task_id, round_) is RoundState.SETTLED
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
                settled,
            )
        )
    member = ledger.member(task_id, session.address)
    return NodeStatus(task_id, member, tuple(rows), privacy_spent(session, task_id))


def claim(session: Session, task_id: int) -> list[ClaimRequest]:
    """Claim every settled, unclaimed round that rewards this account (a node, or a validator
    for its share), in one transaction. Rounds still in their challenge window wait.

    Each proof comes from the round's report and is checked against the on-chain root first,
    so a wrong or tampered report is reported as such and costs no gas. With ``--confirmations
    N`` a round whose finalization is not N blocks deep waits too (a reorganisation could still
    replace its reward root).
    """
    ledger = session.ledger
    chain = ledger.chain
    requests = []
    for record in session.history.finalized(task_id):
        if ledger.round_state(task_id, record.round) is not RoundState.SETTLED:
            continue  # challenge window still running
        if chain.confirmations > 0 and not chain.confirmed(record.block):
            logger.info(
                "round %s: its finalization is not %s blocks deep yet; claimed later",
                record.round,
                chain.confirmations,
            )
            continue
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
