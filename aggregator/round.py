"""The round loop: open, wait, collect score sheets, verify, aggregate, publish, propose,
see the validators' quorum sign, settle and slash.

State lives on chain and in content-addressed storage; the local folder only caches. Steps
of one round (each named by a :data:`STEPS` checkpoint, where tests inject crashes):

1. ``opened``: the task's aggregator opens the round on chain (``openRound``), started from
   the task's current global adapter;
2. nodes commit (hidden) until the window closes or every eligible node has committed, then
   reveal until every commitment is revealed or the reveal window closes;
3. the task's validators each score the revealed updates on their own private held-out data
   and post the sheet (``postScores``, :mod:`aggregator.validator`);
4. ``collected``: the revealed updates are read from the ``UpdateRevealed`` events, ordered by
   their ``UpdateCommitted`` events and cross-checked against contract storage;
5. ``verified``: every update is fetched and put through the checks that need no held-out data
   (:mod:`aggregator.verify`); the sheets' median decides the rest (:mod:`aggregator.consensus`);
6. ``aggregated``: the accepted ones are combined (:mod:`aggregator.combine`);
7. ``published``: the new global adapter, the optimizer state and the round report
   (verdicts, weights, metrics, the validators' sheets and pay, rewards with Merkle proofs)
   are pinned;
8. ``journaled``: what is about to be proposed is written to the journal;
9. ``proposed``: ``proposeResult`` posts the result; validators review it (the audit's own
   checks) and sign it (EIP-712, ``attest``);
10. ``finalized``: the quorum's signatures finalized it; after the challenge window it is
    settled, and the slashes it names are executed.

Killed anywhere and restarted, :meth:`RoundRunner.finalize` finds the round finalized (and
moves on) or not (and proposes it, from the journal when its reveals and sheets are
unchanged, else by recomputing): the contract finalizes one result per round, and
``accepted + rejected`` must equal the reveals it counted, so no update is dropped or counted
twice. Commitments never revealed are not counted, earn nothing and are slashed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field, InstanceOf

from aggregator.client_update import ClientUpdate
from aggregator.combine import Combined, StrategyConfig, combine, strategy_for
from aggregator.consensus import Consensus, decide, split_round_pool, validator_amounts
from aggregator.contribution import Scored, score_updates
from aggregator.device import Compute
from aggregator.errors import REASON_NO_CONTRIBUTION, REASON_UNREVEALED, SLASH_CODES
from aggregator.inputs import (
    PostedSheet,
    load_prior,
    load_server_state,
    load_sheets,
    load_start_adapter,
    previous_reports,
)
from aggregator.names import RewardRule
from aggregator.reproduce import compute_params
from aggregator.rewards import (
    Share,
    quality_factor,
    reward_table,
    slash_entries,
    slash_root,
)
from aggregator.screening import capped_examples
from aggregator.server_opt import ServerState, save_state
from aggregator.verify import (
    Checked,
    Commitment,
    Evaluator,
    Prior,
    Verification,
    VerifyPolicy,
    apply_consensus,
    structural_policy,
    verify_round,
)
from chain import errors
from chain.bindings import Finalization, Round, Task, base_model_hash
from chain.events import RoundFinalized
from chain.merkle import SlashTree
from chain.progress import awaiting
from chain.recovery import RECOVERABLE, Recovery
from chain.round_state import RoundState
from chain.session import Session
from loraledger.display import chain_time
from loraledger.errors import ChainError, ConfigError, LoRALedgerError
from loraledger.paths import write_json_atomic
from loraledger.privacy import publishes
from loraledger.report import (
    RoundReport,
    ScoreSheet,
    SheetEntry,
    Slash,
    SubmissionVerdict,
    ValidatorLine,
    fetch_report,
    node_round_privacy,
)
from loraledger.settings import Settings
from loraledger.update import GlobalAdapter, pack_next_global, sha256_hex
from loraledger.versions import software_versions

if TYPE_CHECKING:
    from aggregator.validator import Validator

logger = logging.getLogger(__name__)

STEPS = (
    "opened",
    "collected",
    "verified",
    "aggregated",
    "published",
    "journaled",
    "proposed",
    "finalized",
)
_COUNT_RETRIES = 3
_DECIDED = (RoundState.FINALIZED, RoundState.SETTLED, RoundState.ABANDONED)


class RoundSettings(Settings):
    """How the aggregator runs a round: the strategy, how strict verification is, and where
    the maths runs (``compute=None``: the CPU in float32)."""

    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    verify: VerifyPolicy = Field(default_factory=VerifyPolicy)
    compute: InstanceOf[Compute] | None = None
    # None: "contribution" with validation data, "examples" without (aggregator.rewards)
    reward_rule: RewardRule | None = None
    cap_examples: bool = True  # weigh claims capped at the round's median claim
    slash: bool = True  # slash proven cheating (aggregator.errors.SLASH_CODES) after finalizing

    @classmethod
    def legacy(cls, verify: VerifyPolicy | None = None, **overrides: Any) -> RoundSettings:
        """The rules before contribution scoring (to reproduce old rounds and compare): claimed
        examples times quality, no cap, no free-rider, copy or trusted-reference screening, no
        slashing; ``verify``'s other settings are kept."""
        old = (verify or VerifyPolicy()).model_copy(
            update={"free_rider_rtol": None, "copy_rtol": None, "trusted_gain": None}
        )
        values: dict[str, Any] = {
            "verify": old,
            "reward_rule": "claimed",
            "cap_examples": False,
            "slash": False,
        }
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class RoundOutcome:
    """A finalized round: its report and what went on chain."""

    task_id: int
    round: int
    report: RoundReport
    report_cid: str
    finalization: Finalization
    gas_used: int | None  # None when another run had finalized it
    resumed: bool  # finalized from the journal of an interrupted run


class RoundNotReady(ChainError):
    """The round's window is still open and not every joined node has submitted."""


class RoundNotOpened(ChainError):
    """The round has not been opened (or, in :meth:`RoundRunner.run`, which read it opened: its
    opening was reorganised away)."""


RUN_RECOVERABLE: tuple[type[Exception], ...] = (*RECOVERABLE, RoundNotOpened)
"""What :meth:`RoundRunner.run` rides out: besides :data:`RECOVERABLE`, a round it opened or
read opened that is not (its opening was reorganised away)."""


class QuorumNotReached(ChainError):
    """The round's result did not gather the signatures of the task's quorum of validators."""


@dataclass(frozen=True)
class RoundInputs:
    """A round's public inputs (:meth:`RoundRunner.inputs`)."""

    round: int
    start_cid: str
    start: GlobalAdapter
    commitments: tuple[Commitment, ...]
    previous: tuple[RoundReport, ...]
    seen: dict[str, str]
    prior: Prior


class RoundRunner:
    """Runs the rounds of one task. ``checkpoint(step)`` is called after each step."""

    def __init__(
        self,
        session: Session,
        task_id: int,
        settings: RoundSettings | None = None,
        *,
        validators: Sequence[Validator] = (),
        checkpoint: Callable[[str], None] | None = None,
        sheet_timeout: float = 60.0,
        quorum_timeout: float | None = 600.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.session = session
        # told what a wait waits for and until when (chain.progress.awaiting), at every poll
        self.on_wait = on_wait
        self.task_id = task_id
        self.settings = settings or RoundSettings()
        # one compute for every round, recorded in each report (params.compute) for re-runs
        self.compute = self.settings.compute or Compute()
        self._checkpoint = checkpoint or (lambda step: None)
        self.sheet_timeout = sheet_timeout
        self.quorum_timeout = quorum_timeout
        ledger = session.ledger
        task = ledger.task(task_id)  # raises LedgerUnknownTask for a wrong id
        self.task = task
        self._validators = ledger.validators(task_id)
        me = session.signer.address.lower()
        self.is_aggregator = task.aggregator.lower() == me
        if not self.is_aggregator and me not in {v.lower() for v in self._validators}:
            raise ChainError(
                f"{session.signer.address} is neither the aggregator nor a validator of task "
                f"{task_id} (aggregator {task.aggregator})",
                hint=f"run with the account the task names (`loraledger task show {task_id}`)",
            )
        self._base_model_hash = task.base_model_hash
        # the task's privacy policy (its TaskCreated event): what verification and the
        # aggregation must honour (docs/privacy.md)
        self.privacy = session.history.task_created(task_id).params.privacy
        self.settings = self.settings.model_copy(
            update={"strategy": strategy_for(self.privacy, self.settings.strategy)}
        )
        # validators run in this process (each with its own account and held-out data); the
        # others run `loraledger validator run` and act through the chain
        self.validators = list(validators)
        self.recovered = 0  # chain-changed errors the last run() rode out

    # ------------------------------------------------------------------ open and wait

    def open(self) -> int:
        """The open round, opening the next one if none is; 0 when the task is complete."""
        ledger = self.session.ledger
        current = ledger.open_round(self.task_id)
        if current:
            return current
        if ledger.is_complete(self.task_id):
            return 0
        round_, _ = ledger.open_next_round(self.task_id, self.session.signer)
        logger.info("task %s: opened round %s", self.task_id, round_)
        self._checkpoint("opened")
        return round_

    def ready(self, round_: int) -> bool:
        """Whether ``round_`` can be proposed now (``CLOSED``: the commit phase is over and every
        commitment is revealed or the reveal window is over) or already is finalized. Raises
        :class:`RoundNotOpened` for a round not opened (a wait for it would never end)."""
        state = self.session.ledger.round_state(self.task_id, round_)
        if state is RoundState.UNOPENED:
            raise RoundNotOpened(
                f"round {round_} of task {self.task_id} has not been opened",
                hint=f"see the task's rounds: `loraledger task show {self.task_id}`",
            )
        return state in (RoundState.CLOSED, RoundState.FINALIZED, RoundState.SETTLED)

    def wait(
        self,
        round_: int,
        *,
        poll_seconds: float = 2.0,
        timeout: float | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        until: Callable[[], bool] | None = None,
    ) -> bool:
        """Poll until ``round_`` is ready (or ``until()`` holds); ``False`` on timeout or stop.
        On a local dev chain an empty block is mined each poll, so that its clock (and the
        windows) move on."""
        began = time.monotonic()
        chain = self.session.ledger.chain
        done = until or (lambda: self.ready(round_))
        while not done():
            if should_stop() or (timeout is not None and time.monotonic() - began > timeout):
                return False
            self._tell_wait(round_)
            time.sleep(poll_seconds)
            chain.keep_clock()
        return True

    def _tell_wait(self, round_: int) -> None:
        if self.on_wait is None:
            return
        ledger = self.session.ledger
        self.on_wait(
            awaiting(
                ledger.round(self.task_id, round_),
                ledger.round_state(self.task_id, round_),
                ledger.chain.timestamp(),
                quorum=self.task.quorum,
                challenge_window=self.task.challenge_window,
            )
        )

    # ------------------------------------------------------------------ finalize

    def finalize(self, round_: int, *, poll_seconds: float = 1.0) -> RoundOutcome:
        """Propose ``round_``'s result and see it finalized by the validators' quorum.

        In-process validators post their score sheets first; the result is computed from every
        sheet posted (waiting up to ``sheet_timeout`` for the quorum's), proposed on chain, and
        reviewed and signed by the in-process validators; remote ones sign through the chain.
        Returns the outcome also when the round was already finalized (by an earlier run).
        Raises :class:`RoundNotReady` while nodes may still commit (``OPEN``) or reveal
        (``REVEALING``), :class:`QuorumNotReached` when the quorum does not sign in
        ``quorum_timeout`` seconds. The result counts the round's reveals; commitments never
        revealed count for nothing (:meth:`_unrevealed` names them).
        """
        ledger = self.session.ledger
        for _ in range(_COUNT_RETRIES):
            state = ledger.round_state(self.task_id, round_)
            if state in (RoundState.FINALIZED, RoundState.SETTLED):
                return self._finalized_outcome(round_)
            if state is RoundState.UNOPENED:
                raise RoundNotOpened(
                    f"round {round_} of task {self.task_id} has not been opened",
                    hint=f"see the task's rounds: `loraledger task show {self.task_id}`",
                )
            if state is RoundState.ABANDONED:
                raise ChainError(
                    f"round {round_} of task {self.task_id} was abandoned: nobody finalized it "
                    "within its grace period",
                    hint="open the next round",
                )
            info = ledger.round(self.task_id, round_)
            now = ledger.chain.timestamp()
            if state is RoundState.OPEN:
                raise RoundNotReady(
                    f"round {round_} of task {self.task_id} takes commitments until "
                    f"{chain_time(info.deadline, now)}: {info.commits} of {info.eligible} nodes "
                    "committed",
                    hint="wait for the window to close, or use `loraledger aggregator run`",
                )
            if state is RoundState.REVEALING:
                raise RoundNotReady(
                    f"round {round_} of task {self.task_id} takes reveals until "
                    f"{chain_time(info.reveal_deadline, now)}: {info.reveals} of {info.commits} "
                    "commitments revealed",
                    hint="wait for the reveal window to close, or use `loraledger aggregator run`",
                )
            for validator in self.validators:
                validator.post_sheet(round_)
            self._await_sheets(round_, poll_seconds)
            self._await_confirmations(round_, poll_seconds)
            info = ledger.round(self.task_id, round_)
            journal = self._read_journal(round_)
            resumed = False
            if journal is not None and self._journal_usable(journal, info):
                result, resumed = _finalization_from(journal), True
                logger.info("round %s: proposing from the journal of an interrupted run", round_)
            else:
                _, result = self._compute(round_, info.reveals)
            # checked after the result was computed (found by `loraledger chaos`: a sheet of
            # ours reorganised away while waiting, or just before the computation read the
            # sheets, and the round was paid without it): posted again, computed again. One
            # gone after this check makes the proposal revert (LedgerScoresMismatch): again.
            if [v for v in self.validators if v.post_sheet(round_) is not None]:
                logger.warning("round %s: a score sheet was gone; posted it again", round_)
                self._journal_path(round_).unlink(missing_ok=True)
                continue
            try:
                result_hash = self.propose(round_, result)
            except (errors.LedgerCountMismatch, errors.LedgerScoresMismatch) as exc:
                # collected from events that lagged behind the chain, or a sheet came in
                # meanwhile: collect again
                logger.info("round %s: %s; collecting the round again", round_, exc)
                self._journal_path(round_).unlink(missing_ok=True)
                continue
            except errors.LedgerUnexpectedRoundState as exc:
                if exc.current in (RoundState.FINALIZED, RoundState.SETTLED):
                    return self._finalized_outcome(round_)
                raise
            self._checkpoint("proposed")
            for validator in self.validators:
                validator.attest(round_, result)

            def decided() -> bool:
                # in-process validators keep working: one that cannot sign this result
                # proposes the one it derives when its patience runs out
                for validator in self.validators:
                    if ledger.round_state(self.task_id, round_) not in _DECIDED:
                        validator.step(round_)
                return ledger.round_state(self.task_id, round_) in _DECIDED

            if not self.wait(
                round_, poll_seconds=poll_seconds, timeout=self.quorum_timeout, until=decided
            ):
                proposal = ledger.proposal(self.task_id, round_, result_hash)
                raise QuorumNotReached(
                    f"round {round_}: the result {result_hash.hex()[:16]}... has "
                    f"{proposal.attestations} of the {self.task.quorum} signatures it needs",
                    hint="start the task's validators (`loraledger validator run`); the round "
                    "can be proposed again, or abandoned after its grace period",
                )
            if ledger.round_state(self.task_id, round_) is RoundState.ABANDONED:
                raise ChainError(f"round {round_} of task {self.task_id} was abandoned")
            self._checkpoint("finalized")
            for validator in self.validators:
                validator.hold_to_account(round_)  # conflicting proposals cost their bonds
            if ledger.round_state(self.task_id, round_) is RoundState.CLOSED:
                logger.warning("round %s: its result was challenged and voided; again", round_)
                self._journal_path(round_).unlink(missing_ok=True)
                continue
            outcome = self._finalized_outcome(round_)
            logger.info(
                "round %s finalized: %s accepted, %s rejected, %s paid, global %s",
                round_,
                result.accepted,
                result.rejected,
                result.reward_total,
                result.global_cid,
            )
            return replace(outcome, resumed=resumed)
        raise ChainError(f"round {round_}: submissions kept arriving while finalizing; try again")

    def _await_confirmations(self, round_: int, poll_seconds: float) -> None:
        """With ``--confirmations N``: wait until the round's newest input is N blocks deep
        before computing and proposing from the inputs (read again at every poll, so a
        reorganisation that brings newer ones waits for those too)."""
        chain = self.session.ledger.chain
        if chain.confirmations <= 0 or chain.confirmed(
            self.session.history.newest_input(self.task_id, round_)
        ):
            return
        logger.info(
            "round %s: waiting for %s confirmations of its inputs", round_, chain.confirmations
        )
        self.wait(
            round_,
            poll_seconds=poll_seconds,
            until=lambda: chain.confirmed(self.session.history.newest_input(self.task_id, round_)),
        )

    def propose(self, round_: int, result: Finalization) -> bytes:
        """Propose ``result`` on chain (once: an identical proposal is not sent again); returns
        its hash, what validators sign."""
        ledger = self.session.ledger
        result_hash = ledger.result_hash(self.task_id, round_, result)
        if ledger.proposal(self.task_id, round_, result_hash).exists:
            return result_hash
        ledger.propose_result(self.task_id, round_, result, self.session.signer)
        logger.info("round %s: proposed result %s", round_, result_hash.hex()[:16])
        return result_hash

    def _await_sheets(self, round_: int, poll_seconds: float) -> None:
        """Wait (up to ``sheet_timeout``) until every validator posted its sheet, or the quorum
        did and none came in the last poll."""
        ledger = self.session.ledger
        everyone = (1 << len(self._validators)) - 1

        def enough() -> bool:
            for validator in self.validators:  # ours again, if a reorganisation took it away
                validator.post_sheet(round_)
            bitmap = ledger.round(self.task_id, round_).scores_bitmap
            return bitmap == everyone or bitmap.bit_count() >= self.task.quorum

        if not self.wait(
            round_, poll_seconds=poll_seconds, timeout=self.sheet_timeout, until=enough
        ):
            logger.warning(
                "round %s: fewer than %s validators posted score sheets in %ss; proposing with "
                "those posted",
                round_,
                self.task.quorum,
                self.sheet_timeout,
            )

    def settle(
        self, round_: int, *, poll_seconds: float = 1.0, timeout: float | None = None
    ) -> bool:
        """Wait for ``round_``'s challenge window to pass (``SETTLED``), then execute the slashes
        its result names; ``False`` when it did not settle in time (or was voided)."""
        ledger = self.session.ledger
        if not self.wait(
            round_,
            poll_seconds=poll_seconds,
            timeout=timeout,
            until=lambda: ledger.round_state(self.task_id, round_) is not RoundState.FINALIZED,
        ):
            return False
        if ledger.round_state(self.task_id, round_) is not RoundState.SETTLED:
            return False
        record = self._record(round_)
        report = fetch_report(self.session.store, record.report_cid)
        self._slash_logged(round_, report, record.report_cid)
        return True

    def run(
        self,
        *,
        max_rounds: int | None = None,
        poll_seconds: float = 2.0,
        should_stop: Callable[[], bool] = lambda: False,
        on_round: Callable[[RoundOutcome], None] | None = None,
    ) -> list[RoundOutcome]:
        """Open, wait for, finalize and settle rounds until the task is complete (or
        ``max_rounds``). A chain that changes under it (a reorganisation) is read again, as a
        restart would (:class:`chain.recovery.Recovery`); every step is safe to repeat."""
        done: list[RoundOutcome] = []
        recovery = Recovery(f"aggregator of task {self.task_id}")
        while not should_stop() and (max_rounds is None or len(done) < max_rounds):
            try:
                self._settle_last(poll_seconds)
                round_ = self.open()
                if round_ == 0:
                    break
                if not self.wait(round_, poll_seconds=poll_seconds, should_stop=should_stop):
                    break
                outcome = self.finalize(round_, poll_seconds=poll_seconds)
                done = [d for d in done if d.round != outcome.round]  # once per round
                done.append(outcome)
                if on_round is not None:
                    on_round(outcome)
                if not self.settle(round_, poll_seconds=poll_seconds):
                    # not settled: voided by a challenge, or its finalization reorganised away
                    # (found by `loraledger chaos`: the run ended with the task incomplete);
                    # the round is proposed again
                    continue
            except RUN_RECOVERABLE as exc:
                time.sleep(recovery.failed(exc))
                continue
            recovery.succeeded()
        self.recovered = recovery.recovered
        return done

    def _settle_last(self, poll_seconds: float) -> None:
        """A round finalized before this run (a restart in its challenge window) settles
        first: the next one cannot open until it has (found by ``loraledger chaos``: a restarted
        aggregator tried to open the next round, was refused, and gave up)."""
        last = self.session.ledger.task(self.task_id).rounds_opened
        if last and self.session.ledger.round_state(self.task_id, last) is RoundState.FINALIZED:
            self.settle(last, poll_seconds=poll_seconds)

    # ------------------------------------------------------------------ the work

    def inputs(self, round_: int, submissions: int) -> RoundInputs:
        """The round's public inputs: its revealed updates in commitment order, the adapter it
        started from and what earlier rounds left (replays, free riders, copies)."""
        session, store = self.session, self.session.store
        info = session.ledger.round(self.task_id, round_)
        commitments = self._commitments(round_, submissions)
        start_cid, start = load_start_adapter(
            session.history,
            store,
            self.task_id,
            info.start_digest,
            max_bytes=self.settings.verify.max_bytes,
        )
        if base_model_hash(start.metadata.base_model) != self._base_model_hash:
            raise ChainError(
                f"the start adapter {start_cid} names base model {start.metadata.base_model!r}, "
                f"which is not the task's"
            )
        previous = previous_reports(session.history, store, self.task_id, round_)
        seen = {
            s.tensor_digest: f"of {s.node} in round {r.round}"
            for r in previous
            for s in r.submissions
            if s.tensor_digest and s.verdict == "accepted"
        }
        policy = self.settings.verify
        prior = load_prior(store, previous, lookback=policy.lookback, max_bytes=policy.max_bytes)
        return RoundInputs(
            round_, start_cid, start, tuple(commitments), tuple(previous), seen, prior
        )

    def _verify(
        self, inputs: RoundInputs, policy: VerifyPolicy, evaluator: Evaluator | None, label: str
    ) -> Verification:
        workdir = (
            self.session.state_dir("aggregator", self.task_id) / f"round-{inputs.round}" / label
        )
        return verify_round(
            self.session.store,
            inputs.commitments,
            task_id=self.task_id,
            round_=inputs.round,
            start=inputs.start,
            policy=policy,
            workdir=workdir,
            seen=inputs.seen,
            evaluator=evaluator,
            prior=inputs.prior,
            privacy=self.privacy,
        )

    def _aggregator_fn(
        self, inputs: RoundInputs, state: ServerState | None
    ) -> Callable[[Sequence[ClientUpdate]], Combined]:
        strategy, start = self.settings.strategy, inputs.start

        def aggregate(updates: Sequence[ClientUpdate]) -> Combined:
            return combine(
                strategy,
                updates,
                start.tensors,
                start.metadata.peft,
                server_state=state,
                compute=self.compute,
            )

        return aggregate

    def assess(
        self, inputs: RoundInputs, evaluator: Evaluator | None, rule: RewardRule
    ) -> ScoreSheet:
        """A validator's view of the round on its own held-out data (``evaluator``): every
        check, validation and norm screening against the updates its data says help, and with
        the contribution rule each accepted update's score (``None``: no held-out data, the
        verdicts alone). Not published by this method."""
        verification = self._verify(inputs, self.settings.verify, evaluator, "assess")
        scored: Scored | None = None
        if rule == "contribution" and evaluator is not None and verification.accepted:
            state_in = (
                inputs.previous[-1].params.get("server_state_cid") if inputs.previous else None
            )
            state = self._load_server_state(state_in)
            verification, scored = self._score(
                verification, self._aggregator_fn(inputs, state), inputs.start, evaluator
            )
        entries = []
        for item in verification.checked:
            node = item.commitment.node
            score = scored.scores.get(node) if scored is not None else None
            without = scored.without.get(node) if scored is not None else None
            entries.append(
                SheetEntry(
                    node=node,
                    verdict="accepted" if item.accepted else "rejected",
                    reason=item.reason,
                    eval_loss=_finite(item.eval_loss),
                    loss_without=_finite(without),
                    score=_finite(score) if item.accepted or score is not None else None,
                )
            )
        return ScoreSheet(
            task_id=self.task_id,
            round=inputs.round,
            validator=self.session.address,
            rule=rule,
            start_loss=_finite(verification.start_loss),
            all_loss=_finite(scored.all_loss) if scored is not None else None,
            entries=tuple(entries),
        )

    def sheets(self, round_: int, bitmap: int | None = None) -> list[PostedSheet]:
        """The score sheets posted for ``round_`` (:func:`aggregator.inputs.load_sheets`)."""
        return load_sheets(
            self.session.history,
            self.session.store,
            self.task_id,
            round_,
            self._validators,
            bitmap=bitmap,
        )

    def _compute(self, round_: int, submissions: int) -> tuple[RoundReport, Finalization]:
        session, store = self.session, self.session.store
        began = time.perf_counter()
        # the start and bitmap read before the inputs: a change in between makes the journal
        # stale, never wrong; the commitments are the very ones aggregated
        info = session.ledger.round(self.task_id, round_)
        inputs = self.inputs(round_, submissions)
        key = self._inputs_key(round_, info, inputs.commitments)
        start, start_cid = inputs.start, inputs.start_cid
        self._checkpoint("collected")

        bitmap = session.ledger.round(self.task_id, round_).scores_bitmap
        posted = self.sheets(round_, bitmap)
        sheets = [p.counted(self.task_id, round_) for p in posted]
        rule = self._rule(sheets)
        scored_rule = rule == "contribution"
        policy = structural_policy(self.settings.verify, scored_rule)
        verification = self._verify(inputs, policy, None, "updates")
        consensus = decide(
            [c.commitment.node for c in verification.accepted], sheets, scored=scored_rule
        )
        checked = apply_consensus(verification.checked, consensus)
        verification = Verification(tuple(checked), consensus.start_loss)
        verified_at = time.perf_counter()
        self._checkpoint("verified")

        strategy = self.settings.strategy
        state_in_cid = (
            inputs.previous[-1].params.get("server_state_cid") if inputs.previous else None
        )
        state = self._load_server_state(state_in_cid) if verification.accepted else None
        aggregate = self._aggregator_fn(inputs, state)

        scored: Scored | None = None
        if scored_rule:
            scored = Scored(
                all_loss=consensus.all_loss if consensus.all_loss is not None else math.nan,
                without={
                    c.node: c.loss_without
                    for c in consensus.nodes.values()
                    if c.loss_without is not None
                },
                scores={c.node: c.score for c in consensus.nodes.values() if c.score is not None},
            )
        scored_at = time.perf_counter()
        accepted = verification.accepted
        weighed = self._weighed(accepted)
        publish = bool(accepted) and publishes(self.privacy, len(accepted))
        combined = aggregate([weighed[c.commitment.node] for c in accepted]) if publish else None
        if accepted and not publish:
            logger.warning(
                "round %s: %s update(s) accepted, fewer than the %s whose noise shares the "
                "task's node-level DP needs: the task keeps its adapter",
                round_,
                len(accepted),
                self.privacy.min_nodes,
            )
        aggregated_at = time.perf_counter()
        self._checkpoint("aggregated")

        if combined is not None:
            global_bytes = pack_next_global(
                combined.tensors, start, round_=round_, num_updates=len(accepted)
            )
            global_cid = store.put_bytes(global_bytes)
            store.pin(global_cid)
            global_digest = sha256_hex(global_bytes)
        else:  # nothing accepted: the task keeps its adapter
            global_cid, global_digest = start_cid, start.digest
        state_cid = self._save_server_state(
            combined.server_state if combined else None, round_, state_in_cid
        )

        metrics = self._metrics(verification, consensus)
        metrics.update(
            verify_seconds=round(verified_at - began, 3),
            score_seconds=round(scored_at - verified_at, 3),
            aggregate_seconds=round(aggregated_at - scored_at, 3),
        )
        task = session.ledger.task(self.task_id)
        qualities = {
            c.commitment.node: quality_factor(verification.start_loss, c.eval_loss)
            for c in accepted
        }
        scores = scored.scores if scored is not None else {}
        shares = [
            Share(
                c.commitment.node,
                c.commitment.num_examples,
                qualities[c.commitment.node],
                scores.get(c.commitment.node),
            )
            for c in accepted
        ]
        agreement = {p.validator: consensus.agreement[p.validator] for p in posted}
        rewards = reward_table(
            self.task_id,
            round_,
            task.reward_per_round,
            shares,
            rule,
            share_bps=task.validator_share_bps,
            agreement=agreement,
        )
        _, validators_pool = split_round_pool(
            task.reward_per_round, task.validator_share_bps, bool(shares)
        )
        validator_pay = validator_amounts(validators_pool, agreement)
        validators = tuple(
            ValidatorLine(
                validator=p.validator,
                sheet_cid=p.cid,
                sheet_digest=p.digest.hex(),
                agreement=agreement[p.validator],
                reward=validator_pay.get(p.validator, 0),
            )
            for p in posted
        )
        unrevealed = tuple(self._unrevealed(round_))
        verdicts = tuple(
            self._verdict(c, combined, qualities, weighed, scored) for c in verification.checked
        )
        report = RoundReport(
            task_id=self.task_id,
            round=round_,
            base_model=start.metadata.base_model,
            start_digest=start.digest,
            start_cid=start_cid,
            global_cid=global_cid,
            global_digest=global_digest,
            strategy=combined.used if combined else strategy.name,
            params=self._params(state_in_cid, state_cid, rule, policy, task),
            submissions=verdicts,
            unrevealed=unrevealed,
            slashes=self._slashes(verdicts, unrevealed, task.min_stake),
            rewards=rewards,
            validators=validators,
            metrics=metrics,
            software=software_versions(),
            privacy=node_round_privacy(
                self.privacy, inputs.previous, len(accepted) if combined is not None else 0
            ),
        )
        report_cid = store.put_bytes(report.to_bytes())
        store.pin(report_cid)
        self._checkpoint("published")

        result = Finalization(
            global_cid=global_cid,
            global_digest=bytes.fromhex(global_digest),
            report_cid=report_cid,
            accepted=len(accepted),
            rejected=len(verification.checked) - len(accepted),
            reward_root=bytes.fromhex(rewards.root),
            reward_total=rewards.total,
            slash_root=slash_root(self.task_id, round_, report, report_cid),
            scores_bitmap=bitmap,
        )
        self._write_journal(round_, submissions, result, key)
        self._checkpoint("journaled")
        return report, result

    def _commitments(self, round_: int, reveals: int) -> list[Commitment]:
        """The round's revealed updates, in the order of their COMMITMENTS (block, transaction,
        log), each cross-checked against contract storage: so "who was first" is decided when
        contents were still hidden, not by who revealed first."""
        history, ledger = self.session.history, self.session.ledger
        revealed = {event.node: event for event in history.reveals(self.task_id, round_)}
        if len(revealed) != reveals:
            raise errors.ChainMoved(
                f"round {round_}: the chain counts {reveals} reveals but {len(revealed)} "
                "events were found",
                hint="the RPC node may lag behind; try again",
            )
        commits = {event.node: event for event in history.commits(self.task_id, round_)}
        commitments = []
        for node, commit in commits.items():  # in commit order (History sorts)
            event = revealed.pop(node, None)
            if event is None:
                continue  # never revealed: counts for nothing
            stored = ledger.submission(self.task_id, round_, node)
            if (
                stored.commitment != commit.commitment
                or stored.digest != event.digest
                or stored.num_examples != event.num_examples
            ):
                raise errors.ChainMoved(
                    f"round {round_}: the events of {node} disagree with contract storage"
                )
            commitments.append(
                Commitment(
                    node,
                    event.cid,
                    event.digest.hex(),
                    event.num_examples,
                    block=commit.block,
                    tx_index=commit.tx_index,
                )
            )
        if revealed:
            raise errors.ChainMoved(
                f"round {round_}: reveals without a commitment event from {sorted(revealed)}",
                hint="the RPC node may lag behind; try again",
            )
        return commitments

    def _unrevealed(self, round_: int) -> list[str]:
        """Nodes that committed in ``round_`` and never revealed (sorted): they earn nothing."""
        history = self.session.history
        revealed = {event.node for event in history.reveals(self.task_id, round_)}
        return sorted({event.node for event in history.commits(self.task_id, round_)} - revealed)

    def _rule(self, sheets: Sequence[ScoreSheet]) -> RewardRule:
        """The round's reward rule: the settings' when given, else ``contribution`` when most
        sheets score updates (validators with held-out data), else ``examples``."""
        rule = self.settings.reward_rule
        scoring = sum(1 for sheet in sheets if sheet.rule == "contribution")
        if rule is None:
            return "contribution" if sheets and 2 * scoring > len(sheets) else "examples"
        if rule == "contribution" and not scoring:
            raise ConfigError(
                "the contribution reward rule needs validators' score sheets made on their "
                "held-out data, and none was posted for this round",
                hint="run validators with validation data (`loraledger validator run "
                "--validation-data`), or choose the examples rule",
            )
        return rule

    def _weighed(self, accepted: Sequence[Checked]) -> dict[str, ClientUpdate]:
        """Each accepted update as aggregated: its claim capped at the median claim of
        ``accepted`` (:func:`aggregator.screening.capped_examples`) unless capping is off."""
        updates = {c.commitment.node: c.client_update() for c in accepted}
        if not self.settings.cap_examples:
            return updates
        caps = capped_examples({n: u.num_examples for n, u in updates.items()})
        return {n: replace(u, num_examples=caps[n]) for n, u in updates.items()}

    def _score(
        self,
        verification: Verification,
        aggregate: Callable[[Sequence[ClientUpdate]], Combined],
        start: GlobalAdapter,
        evaluator: Evaluator,
    ) -> tuple[Verification, Scored]:
        """Contribution scores of the accepted updates on ``evaluator``'s held-out data; those
        scoring <= 0 are rejected (``no_contribution``) and left out of the aggregate."""
        start_loss = verification.start_loss
        if start_loss is None:
            raise ConfigError("contribution scores need the validation loss of the start adapter")
        spec = start.metadata.peft

        def evaluate(tensors: Mapping[str, torch.Tensor]) -> float:
            loss = evaluator(tensors, spec)
            return math.inf if loss is None else float(loss)

        accepted = verification.accepted
        weighed = self._weighed(accepted)
        scored = score_updates(
            [weighed[c.commitment.node] for c in accepted],
            aggregate=lambda updates: aggregate(updates).tensors,
            evaluate=evaluate,
            start=start.tensors,
            start_loss=start_loss,
            alone={
                c.commitment.node: math.inf if c.eval_loss is None else c.eval_loss
                for c in accepted
            },
        )
        checked = []
        for item in verification.checked:
            score = scored.scores.get(item.commitment.node)
            if item.accepted and score is not None and not score > 0:
                item = item.reject(
                    REASON_NO_CONTRIBUTION,
                    f"contribution score {score:.4g} on the validation data: alone "
                    f"{item.eval_loss} vs start {start_loss:.4f}; the others without it "
                    f"{scored.without[item.commitment.node]:.4f} vs all {scored.all_loss:.4f}",
                )
            checked.append(item)
        return Verification(tuple(checked), start_loss), scored

    def _slashes(
        self, verdicts: Sequence[SubmissionVerdict], unrevealed: Sequence[str], stake: int
    ) -> tuple[Slash, ...]:
        """Proven cheating to slash (:data:`aggregator.errors.SLASH_CODES`): the task's minimum
        stake, at most what the node still holds."""
        if not self.settings.slash:
            return ()
        ledger = self.session.ledger
        cheats = [(v.node, v.reason) for v in verdicts if v.reason in SLASH_CODES]
        cheats += [(node, REASON_UNREVEALED) for node in unrevealed]
        slashes = []
        for node, reason in cheats:
            if reason is None:  # pragma: no cover - filtered above
                continue
            amount = min(stake, ledger.member(self.task_id, node).stake)
            if amount > 0:
                slashes.append(
                    Slash(node=node, reason=reason, code=SLASH_CODES[reason], amount=amount)
                )
        return tuple(slashes)

    def slash(self, round_: int, report: RoundReport, report_cid: str) -> list[Slash]:
        """Execute the slashes ``report`` names for the settled ``round_`` (each a leaf of the
        result's slash root, the report's CID as the evidence), skipping those already made (a
        resumed run) and nodes whose stake is gone; returns the slashes made now."""
        if not report.slashes:
            return []
        ledger = self.session.ledger
        done = {
            e.node.lower() for e in self.session.history.slashes(self.task_id) if e.round == round_
        }
        entries = slash_entries(report, report_cid)
        tree = SlashTree(self.task_id, round_, entries)
        made = []
        for item, entry in zip(report.slashes, entries, strict=True):
            if item.node.lower() in done or ledger.member(self.task_id, item.node).stake == 0:
                continue
            ledger.execute_slash(
                self.task_id, round_, entry, tree.proof(entry), self.session.signer
            )
            logger.info(
                "round %s: slashed %s of %s for %s (evidence %s)",
                round_,
                item.amount,
                item.node,
                item.reason,
                report_cid,
            )
            made.append(item)
        return made

    def _load_server_state(self, cid: str | None) -> ServerState | None:
        path = self.session.state_dir("aggregator", self.task_id) / "server-state-in.safetensors"
        return load_server_state(self.session.store, self.settings.strategy.optimizer(), cid, path)

    def _save_server_state(
        self, state: ServerState | None, round_: int, previous: str | None
    ) -> str | None:
        optimizer = self.settings.strategy.optimizer()
        if optimizer is None:
            return None
        if state is None:  # nothing aggregated this round: the state carries over
            return previous
        path = (
            self.session.state_dir("aggregator", self.task_id)
            / f"round-{round_}"
            / "server-state.safetensors"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        save_state(state, optimizer, path)
        cid = self.session.store.put_file(path)
        self.session.store.pin(cid)
        return cid

    def _params(
        self,
        state_in: str | None,
        state_out: str | None,
        rule: RewardRule,
        policy: VerifyPolicy,
        task: Task,
    ) -> dict[str, Any]:
        """The settings the round ran with (``policy``: the checks the round made itself; the
        validators' own settings are in their sheets' verdicts)."""
        params: dict[str, Any] = {
            "strategy": self.settings.strategy.model_dump(mode="json"),
            "reward_rule": rule,
            "cap_examples": self.settings.cap_examples,
            "free_rider_rtol": policy.free_rider_rtol,
            "min_change_rms": policy.min_change_rms,
            "copy_rtol": policy.copy_rtol,
            "lookback": policy.lookback,
            "trusted_gain": None,
            "compute": compute_params(self.compute),
            "max_rank": policy.max_rank,
            "outlier_threshold": policy.outliers.threshold if policy.outliers else None,
            "outlier_min_updates": policy.outliers.min_updates if policy.outliers else None,
            "outlier_min_spread": policy.outliers.min_spread if policy.outliers else None,
            "validation": False,  # held-out data is the validators' (their sheets, by median)
            "max_loss_increase": None,
            "consensus": True,
            "quorum": task.quorum,
            "validator_share_bps": task.validator_share_bps,
        }
        if self.settings.strategy.optimizer() is not None:
            params["server_state_cid_in"] = state_in
            params["server_state_cid"] = state_out
        return params

    @staticmethod
    def _metrics(verification: Verification, consensus: Consensus) -> dict[str, float]:
        accepted = verification.accepted
        metrics: dict[str, float] = {
            "submitted": float(len(verification.checked)),
            "accepted": float(len(accepted)),
            "accepted_examples": float(sum(c.commitment.num_examples for c in accepted)),
        }
        own = [
            (c.commitment.num_examples, c.metadata.metrics.eval_loss_after)
            for c in accepted
            if c.metadata
        ]
        if own and all(loss is not None for _, loss in own):
            total = sum(n for n, _ in own)
            metrics["nodes_eval_loss"] = (
                sum(n * float(loss) for n, loss in own if loss is not None) / total
            )
        # the validators' medians on their held-out data: the start adapter, and the aggregate
        # of the updates each of them kept
        if consensus.start_loss is not None:
            metrics["start_eval_loss"] = consensus.start_loss
        if consensus.all_loss is not None:
            metrics["scored_eval_loss"] = consensus.all_loss
        return metrics

    @staticmethod
    def _verdict(
        item: Checked,
        combined: Combined | None,
        qualities: dict[str, float],
        weighed: dict[str, ClientUpdate],
        scored: Scored | None,
    ) -> SubmissionVerdict:
        node = item.commitment.node
        kept = weighed.get(node) if item.accepted else None
        own = item.metadata.metrics.eval_loss_after if item.metadata else None
        return SubmissionVerdict(
            node=node,
            cid=item.commitment.cid,
            digest=item.commitment.digest,
            num_examples=item.commitment.num_examples,
            verdict="accepted" if item.accepted else "rejected",
            reason=item.reason,
            detail=item.detail,
            weight=combined.weight_of(node) if combined and item.accepted else 0.0,
            quality=qualities.get(node, 0.0) if item.accepted else 0.0,
            block=item.commitment.block,
            tensor_digest=item.tensor_digest,
            norm=item.norm,
            z_score=item.z_score,
            eval_loss=item.eval_loss,
            train_eval_loss=own,
            tx_index=item.commitment.tx_index,
            weight_examples=kept.num_examples if kept is not None else None,
            loss_without=scored.without.get(node) if scored is not None else None,
            score=scored.scores.get(node) if scored is not None else None,
            epsilon=item.metadata.epsilon if item.metadata else None,
        )

    def _record(self, round_: int) -> RoundFinalized:
        record = self.session.history.finalization(self.task_id, round_)
        if record is None:  # read as finalized a moment ago: reorganised away since (chaos)
            raise errors.ChainMoved(
                f"round {round_} of task {self.task_id} is finalized but its event was not found"
            )
        return record

    def _finalized_outcome(self, round_: int) -> RoundOutcome:
        record = self._record(round_)
        report = fetch_report(self.session.store, record.report_cid)
        return RoundOutcome(self.task_id, round_, report, record.report_cid, record, None, True)

    def _slash_logged(self, round_: int, report: RoundReport, report_cid: str) -> None:
        """:meth:`slash`, logging instead of raising: the round is settled either way, and the
        next run makes what is missing while the slash window lasts."""
        try:
            self.slash(round_, report, report_cid)
        except ChainError as exc:
            logger.warning("round %s: slashing failed (%s); the next run retries", round_, exc)

    # ------------------------------------------------------------------ journal

    def _journal_path(self, round_: int) -> Path:
        return (
            self.session.state_dir("aggregator", self.task_id)
            / f"round-{round_}"
            / "finalization.json"
        )

    def _read_journal(self, round_: int) -> dict[str, Any] | None:
        path = self._journal_path(round_)
        try:
            body = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            logger.warning(
                "ignoring the unreadable journal %s (%s); recomputing the round", path, exc
            )
            return None
        return body if isinstance(body, dict) else None

    def _inputs_key(self, round_: int, info: Round, commitments: Sequence[Commitment]) -> str:
        """What identifies the inputs a result was computed from, read from the chain as it is
        now: the adapter the round starts from, every revealed commitment (node, digest, CID,
        examples, in commitment order) and every counted score sheet (validator, CID, digest).
        Counts alone are not enough: a reorganisation can replace a commitment or a sheet with
        another one and leave every count as it was."""
        sheets = sorted(
            (e.validator.lower(), e.cid, e.digest.hex())
            for e in self.session.history.scores(self.task_id, round_)
        )
        body = {
            "start": info.start_digest.hex(),
            "commitments": [[c.node.lower(), c.digest, c.cid, c.num_examples] for c in commitments],
            "scores_bitmap": info.scores_bitmap,
            "sheets": [list(s) for s in sheets],
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def _journal_usable(self, journal: dict[str, Any], info: Round) -> bool:
        try:
            if int(journal["submissions"]) != info.reveals:
                return False
            if int(journal.get("scores_bitmap", -1)) != info.scores_bitmap:
                return False  # a score sheet came in since: the result changes
            round_ = int(journal["round"])
            now = self._inputs_key(round_, info, self._commitments(round_, info.reveals))
            if journal.get("inputs") != now:
                logger.warning(
                    "round %s: the journalled result was computed from other commitments or "
                    "sheets than the chain has now (a reorganisation?); recomputing",
                    journal["round"],
                )
                return False
            _finalization_from(journal)
            return all(self.session.store.has(journal[key]) for key in ("report_cid", "global_cid"))
        except (KeyError, TypeError, ValueError, LoRALedgerError) as exc:
            logger.warning(
                "ignoring a journal that cannot be used (%s); recomputing the round", exc
            )
            return False

    def _write_journal(
        self, round_: int, submissions: int, result: Finalization, inputs: str
    ) -> None:
        path = self._journal_path(round_)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "round": round_,
            "submissions": submissions,
            "inputs": inputs,
            "global_cid": result.global_cid,
            "global_digest": result.global_digest.hex(),
            "report_cid": result.report_cid,
            "accepted": result.accepted,
            "rejected": result.rejected,
            "reward_root": result.reward_root.hex(),
            "reward_total": str(result.reward_total),
            "slash_root": result.slash_root.hex(),
            "scores_bitmap": result.scores_bitmap,
        }
        write_json_atomic(path, body)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _finalization_from(journal: dict[str, Any]) -> Finalization:
    result = Finalization(
        global_cid=str(journal["global_cid"]),
        global_digest=bytes.fromhex(journal["global_digest"]),
        report_cid=str(journal["report_cid"]),
        accepted=int(journal["accepted"]),
        rejected=int(journal["rejected"]),
        reward_root=bytes.fromhex(journal["reward_root"]),
        reward_total=int(journal["reward_total"]),
        slash_root=bytes.fromhex(journal["slash_root"]),
        scores_bitmap=int(journal["scores_bitmap"]),
    )
    if len(result.global_digest) != 32 or len(result.reward_root) != 32:
        raise ConfigError("journal digests are not 32 bytes")
    return result
