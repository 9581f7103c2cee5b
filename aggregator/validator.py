"""A task's validator: scores each round on its own held-out data, reviews and signs results.

No single account decides a round (docs/accountability.md). Each validator the task's sponsor
named, every round:

1. once the round is ``CLOSED``, runs every check on the revealed updates itself, evaluates them
   on its *own private* held-out data (validation, the trusted norm screen, contribution
   scores) and posts the score sheet (:class:`loraledger.report.ScoreSheet`): pinned, its
   digest on chain (``postScores``), before any result is proposed;
2. reviews every proposed result with the audit's own checks
   (:meth:`aggregator.audit.Auditor.review`): the verdicts, the consensus of the posted sheets,
   the aggregate, the rewards and the slashes must all re-derive, and the settings must be the
   ones it runs with. It signs (EIP-712) only a result that passes, and relays its signature
   (``attest``); a quorum of signatures finalizes the round;
3. if no result it can sign is proposed in time (a vanished or lying aggregator), proposes the
   result it derives itself, for the other validators to review;
4. once a round is finalized, challenges what the contract can check (a reward for an account
   that submitted nothing) and reports conflicting proposals (``slashConflicting``), so lies
   cost their authors' bonds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aggregator.audit import Auditor, reward_challenges
from aggregator.round import RoundRunner, RoundSettings
from aggregator.verify import Evaluator
from chain import errors
from chain.attest import sign_result
from chain.bindings import ZERO_DIGEST, Finalization, Token
from chain.progress import awaiting
from chain.recovery import RECOVERABLE, Recovery
from chain.round_state import RoundState
from chain.session import Session
from loraledger.errors import ChainError, LoRALedgerError, ServiceUnavailable
from loraledger.report import ScoreSheet, fetch_report

__all__ = ["Validator", "post_bond"]

logger = logging.getLogger(__name__)


class Validator:
    """The validator ``session.signer`` of task ``task_id``, scoring with ``evaluator`` (its own
    held-out data; ``None``: a validator without data, whose sheet has verdicts but no scores).

    ``settings`` are the round settings it expects results to be made with (strategy, caps,
    verification); a result made otherwise is not signed."""

    def __init__(
        self,
        session: Session,
        task_id: int,
        evaluator: Evaluator | None = None,
        settings: RoundSettings | None = None,
        *,
        propose_after: float = 30.0,
    ) -> None:
        self.session = session
        self.task_id = task_id
        self.evaluator = evaluator
        self.runner = RoundRunner(session, task_id, settings)
        self.settings = self.runner.settings
        self.address = session.signer.address
        self.propose_after = propose_after
        self._closed_since: dict[int, float] = {}
        if self.address.lower() not in {v.lower() for v in self.runner._validators}:
            raise ChainError(
                f"{self.address} is not a validator of task {task_id}",
                hint=f"`loraledger task show {task_id}` lists its validators",
            )

    # ------------------------------------------------------------------ scores

    def sheet(self, round_: int) -> ScoreSheet:
        """This validator's sheet for ``round_`` (computed, not posted)."""
        info = self.session.ledger.round(self.task_id, round_)
        inputs = self.runner.inputs(round_, info.reveals)
        rule = self.settings.reward_rule or ("contribution" if self.evaluator else "examples")
        if rule == "contribution" and self.evaluator is None:
            rule = "examples"
        return self.runner.assess(inputs, self.evaluator, rule)

    def post_sheet(self, round_: int) -> ScoreSheet | None:
        """Compute, pin and post the sheet for ``round_`` unless already posted; returns it."""
        ledger = self.session.ledger
        if ledger.scores_of(self.task_id, round_, self.address) != ZERO_DIGEST:
            return None
        sheet = self.sheet(round_)
        data = sheet.to_bytes()
        cid = self.session.store.put_bytes(data)
        self.session.store.pin(cid)
        ledger.post_scores(self.task_id, round_, sheet.digest, cid, self.session.signer)
        logger.info("round %s: %s posted its score sheet %s", round_, self.address, cid)
        return sheet

    # ------------------------------------------------------------------ results

    def review(self, round_: int, result: Finalization) -> list[str]:
        """What is wrong with ``result`` as the result of ``round_`` (empty: sign it)."""
        session = self.session
        auditor = Auditor(
            session.ledger,
            session.history,
            session.store,
            fetch_workers=self.settings.verify.fetch_workers,
        )
        problems = [
            f"{c.name}: {c.detail}"
            for c in auditor.review(self.task_id, round_, result)
            if c.status == "fail"
        ]
        try:
            report = fetch_report(session.store, result.report_cid)
        except ServiceUnavailable:
            raise  # our own IPFS node does not answer: no judgement on the result yet
        except LoRALedgerError as exc:
            return [*problems, f"the report cannot be read: {exc}"]
        params = report.params
        expected = {
            "strategy": self.settings.strategy.model_dump(mode="json"),
            "cap_examples": self.settings.cap_examples,
        }
        if self.settings.reward_rule is not None:
            expected["reward_rule"] = self.settings.reward_rule
        problems += [
            f"the result was made with {key} = {params.get(key)!r}, this validator expects {want!r}"
            for key, want in expected.items()
            if params.get(key) != want
        ]
        return problems

    def attest(self, round_: int, result: Finalization) -> bool:
        """Review ``result`` and, when it holds, sign it and relay the signature; ``True`` when
        this validator's signature is on it (now or before)."""
        ledger = self.session.ledger
        result_hash = ledger.result_hash(self.task_id, round_, result)
        proposal = ledger.proposal(self.task_id, round_, result_hash)
        if proposal.attested_by(self._index):
            return True
        problems = self.review(round_, result)
        if problems:
            logger.warning(
                "round %s: %s refuses to sign %s: %s",
                round_,
                self.address,
                result_hash.hex()[:16],
                "; ".join(problems),
            )
            return False
        attestation = sign_result(
            self.session.signer,
            chain_id=ledger.chain.w3.eth.chain_id,
            verifying_contract=ledger.address,
            task_id=self.task_id,
            round_=round_,
            epoch=ledger.round(self.task_id, round_).epoch,
            result=result,
            scores_digest=ledger.scores_of(self.task_id, round_, self.address),
        )
        try:
            ledger.attest(self.task_id, round_, result_hash, attestation, self.session.signer)
        except errors.LedgerUnexpectedRoundState:
            return False  # finalized by the others meanwhile
        logger.info("round %s: %s signed %s", round_, self.address, result_hash.hex()[:16])
        return True

    @property
    def _index(self) -> int:
        lowered = [v.lower() for v in self.runner._validators]
        return lowered.index(self.address.lower())

    # ------------------------------------------------------------------ the loop

    def step(self, round_: int) -> RoundState:
        """One pass over ``round_``: post the sheet, sign what holds, propose when nothing
        does in time, challenge and report lies once it is finalized. Returns its state."""
        ledger = self.session.ledger
        state = ledger.round_state(self.task_id, round_)
        if state is RoundState.CLOSED:
            # with --confirmations: score and propose only from inputs N blocks deep
            newest = self.session.history.newest_input(self.task_id, round_)
            ready = ledger.chain.confirmed(newest)
            if ready:
                self.post_sheet(round_)
            signed = False
            epoch = ledger.round(self.task_id, round_).epoch
            for proposal in self.session.history.proposals(self.task_id, round_):
                if proposal.epoch != epoch:
                    continue
                signed = self.attest(round_, proposal.result) or signed
            since = self._closed_since.setdefault(round_, time.monotonic())
            if not signed and ready and time.monotonic() - since > self.propose_after:
                logger.info("round %s: no result to sign yet; proposing its own", round_)
                try:
                    reveals = ledger.round(self.task_id, round_).reveals
                    _, result = self.runner._compute(round_, reveals)
                    self.runner.propose(round_, result)
                    self.attest(round_, result)
                except (errors.LedgerScoresMismatch, errors.LedgerCountMismatch) as exc:
                    logger.info("round %s: %s; trying again next pass", round_, exc)
        elif state in (RoundState.FINALIZED, RoundState.SETTLED):
            self.hold_to_account(round_)
        return ledger.round_state(self.task_id, round_)

    def hold_to_account(self, round_: int) -> None:
        """Challenge the finalized ``round_`` if it pays an account that submitted nothing, and
        report every proposal of its epoch that conflicts with it (its author's bond and its
        signers' are slashed)."""
        session = self.session
        ledger = session.ledger
        challenges = []
        if ledger.round_state(self.task_id, round_) is RoundState.FINALIZED:  # the window runs
            challenges = reward_challenges(
                ledger, session.history, session.store, self.task_id, round_
            )
        for challenge in challenges:
            try:
                challenge.send(ledger, self.session.signer)
                logger.warning("round %s: challenged: %s", round_, challenge.why)
            except errors.ContractRevert as exc:
                logger.info("round %s: challenge refused: %s", round_, exc)
        info = ledger.round(self.task_id, round_)
        for proposal in self.session.history.proposals(self.task_id, round_):
            if proposal.epoch != info.epoch or proposal.result_hash == info.result_hash:
                continue
            if ledger.proposal(self.task_id, round_, proposal.result_hash).slashed:
                continue
            try:
                ledger.slash_conflicting(
                    self.task_id, round_, proposal.result_hash, self.session.signer
                )
                logger.warning(
                    "round %s: reported the conflicting proposal %s of %s",
                    round_,
                    proposal.result_hash.hex()[:16],
                    proposal.proposer,
                )
            except errors.ContractRevert as exc:
                logger.info("round %s: not slashable: %s", round_, exc)

    def run(
        self,
        *,
        poll_seconds: float = 2.0,
        should_stop: Callable[[], bool] = lambda: False,
        max_rounds: int | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> int:
        """Validate rounds as they come until the task is over (or ``max_rounds`` finalized);
        returns the rounds seen finalized. ``on_wait`` is told, at every poll, what the round
        waits for and until when (:func:`chain.progress.awaiting`)."""
        ledger = self.session.ledger
        done: set[int] = set()
        recovery = Recovery(f"validator {self.session.address} of task {self.task_id}")
        while not should_stop() and (max_rounds is None or len(done) < max_rounds):
            try:
                task = ledger.task(self.task_id)
                last = task.rounds_opened
                if last:
                    state = self.step(last)
                    if state in (RoundState.FINALIZED, RoundState.SETTLED):
                        done.add(last)
            except RECOVERABLE as exc:  # a reorganisation, a restarting service: again
                time.sleep(recovery.failed(exc))
                continue
            recovery.succeeded()
            if task.cancelled or (ledger.is_complete(self.task_id) and last in done):
                break
            if on_wait is not None:
                number = last if last and last not in done else last + 1
                on_wait(
                    awaiting(
                        ledger.round(self.task_id, number),
                        ledger.round_state(self.task_id, number),
                        ledger.chain.timestamp(),
                        quorum=task.quorum,
                        challenge_window=task.challenge_window,
                    )
                )
            time.sleep(poll_seconds)
            ledger.chain.keep_clock()
        return len(done)


def post_bond(session: Session, task_id: int) -> int:
    """Lock this account's bond for ``task_id`` as its aggregator or one of its validators
    (approving the ledger for it first); returns the bond, 0 when already posted or none is
    asked."""
    ledger = session.ledger
    task = ledger.task(task_id)
    if ledger.bond_of(task_id, session.address).posted:
        return 0
    is_aggregator = task.aggregator.lower() == session.address.lower()
    amount = task.aggregator_bond if is_aggregator else task.validator_bond
    if amount:
        Token(ledger.chain, task.token).approve(ledger.address, amount, session.signer)
    ledger.post_bond(task_id, session.signer)
    logger.info("task %s: %s posted a bond of %s", task_id, session.address, amount)
    return amount
