"""The aggregator's round loop: open, wait, verify, aggregate, publish, reward, finalize.

State lives on chain and in content-addressed storage; the local folder only caches. Steps
of one round (each named by a :data:`STEPS` checkpoint, where tests inject crashes):

1. ``opened``: the round is open on chain (``openRound``), started from the task's
   current global adapter;
2. the window closes or every joined node has submitted;
3. ``collected``: the commitments are read from the ``UpdateSubmitted`` events and
   cross-checked against contract storage;
4. ``verified``: every update is fetched and verified (:mod:`aggregator.verify`);
5. ``aggregated``: the accepted ones are combined (:mod:`aggregator.combine`);
6. ``published``: the new global adapter, the optimizer state and the round report
   (verdicts, weights, metrics, rewards with Merkle proofs) are pinned;
7. ``journaled``: what is about to be finalized is written to the journal;
8. ``finalized``: ``finalizeRound`` posts the global CID/digest, the report CID, the counts
   and the reward root.

Killed anywhere and restarted, :meth:`RoundRunner.finalize` finds the round finalized (and
moves on) or not (and finalizes it once, from the journal when its commitments are
unchanged, else by recomputing): the contract accepts one finalization per round, and
``accepted + rejected`` must equal the submissions it counted, so no update is dropped or
counted twice. A submission that lands between collecting and finalizing makes the count
disagree; the round is then collected again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, InstanceOf

from aggregator.combine import Combined, StrategyConfig, combine
from aggregator.device import Compute
from aggregator.inputs import load_server_state, load_start_adapter, previous_reports
from aggregator.reproduce import compute_params
from aggregator.rewards import Share, quality_factor, reward_table
from aggregator.server_opt import ServerState, save_state
from aggregator.verify import (
    Checked,
    Commitment,
    Evaluator,
    Verification,
    VerifyPolicy,
    verify_round,
)
from chain import errors
from chain.bindings import Finalization, Ledger, base_model_hash
from chain.round_state import RoundState
from chain.session import Session
from loraledger.errors import ChainError, ConfigError, LoRALedgerError
from loraledger.paths import write_json_atomic
from loraledger.report import RoundReport, SubmissionVerdict, fetch_report
from loraledger.settings import Settings
from loraledger.update import GlobalAdapter, pack_next_global, sha256_hex
from loraledger.versions import software_versions

logger = logging.getLogger(__name__)

STEPS = ("opened", "collected", "verified", "aggregated", "published", "journaled", "finalized")
_COUNT_RETRIES = 3


class RoundSettings(Settings):
    """How the aggregator runs a round: the strategy, how strict verification is, and where
    the maths runs (``compute=None``: the CPU in float32)."""

    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    verify: VerifyPolicy = Field(default_factory=VerifyPolicy)
    compute: InstanceOf[Compute] | None = None


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


class RoundRunner:
    """Runs the rounds of one task. ``checkpoint(step)`` is called after each step."""

    def __init__(
        self,
        session: Session,
        task_id: int,
        settings: RoundSettings | None = None,
        *,
        evaluator: Evaluator | None = None,
        checkpoint: Callable[[str], None] | None = None,
    ) -> None:
        self.session = session
        self.task_id = task_id
        self.settings = settings or RoundSettings()
        # one compute for every round, recorded in each report (params.compute) for re-runs
        self.compute = self.settings.compute or Compute()
        self.evaluator = evaluator
        self._checkpoint = checkpoint or (lambda step: None)
        task = session.ledger.task(task_id)  # raises LedgerUnknownTask for a wrong id
        if not session.ledger.has_role(Ledger.AGGREGATOR_ROLE, session.signer.address):
            raise ChainError(
                f"{session.signer.address} does not hold AGGREGATOR_ROLE on "
                f"{session.ledger.address}",
                hint="run the aggregator with the account the deployment named "
                "(dev:1 on local chains)",
            )
        self._base_model_hash = task.base_model_hash

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
        """Whether ``round_`` can be finalized now (``CLOSED``: window over or every joined node
        submitted) or already is (``FINALIZED``)."""
        state = self.session.ledger.round_state(self.task_id, round_)
        return state in (RoundState.CLOSED, RoundState.FINALIZED)

    def wait(
        self,
        round_: int,
        *,
        poll_seconds: float = 2.0,
        timeout: float | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Poll until ``round_`` is ready; ``False`` on timeout or stop. On a local dev chain an
        empty block is mined each poll, so that its clock (and the window) moves on."""
        began = time.monotonic()
        chain = self.session.ledger.chain
        while not self.ready(round_):
            if should_stop() or (timeout is not None and time.monotonic() - began > timeout):
                return False
            time.sleep(poll_seconds)
            chain.keep_clock()
        return True

    # ------------------------------------------------------------------ finalize

    def finalize(self, round_: int) -> RoundOutcome:
        """Verify, aggregate, publish and finalize ``round_`` exactly once.

        Returns the outcome also when the round was already finalized (by an earlier run).
        Raises :class:`RoundNotReady` while the window is open and nodes are missing.
        """
        ledger = self.session.ledger
        for _ in range(_COUNT_RETRIES):
            state = ledger.round_state(self.task_id, round_)
            if state is RoundState.FINALIZED:
                return self._finalized_outcome(round_)
            if state is RoundState.UNOPENED:
                raise ChainError(
                    f"round {round_} of task {self.task_id} has not been opened",
                    hint=f"see the task's rounds: `loraledger task show {self.task_id}`",
                )
            info = ledger.round(self.task_id, round_)
            if state is RoundState.OPEN:
                raise RoundNotReady(
                    f"round {round_} of task {self.task_id} is open until chain time "
                    f"{info.deadline} ({info.submissions} of "
                    f"{ledger.task(self.task_id).active_nodes} nodes submitted)",
                    hint="wait for the window to close, or use `loraledger aggregator run`",
                )
            journal = self._read_journal(round_)
            resumed = False
            if journal is not None and self._journal_usable(journal, info.submissions):
                report, result, resumed = (
                    fetch_report(self.session.store, journal["report_cid"]),
                    _finalization_from(journal),
                    True,
                )
                logger.info("round %s: finalizing from the journal of an interrupted run", round_)
            else:
                report, result = self._compute(round_, info.submissions)
            try:
                receipt = ledger.finalize_round(self.task_id, round_, result, self.session.signer)
            except errors.LedgerUnexpectedRoundState as exc:
                if exc.current is RoundState.FINALIZED:  # another run finalized it meanwhile
                    return self._finalized_outcome(round_)
                raise
            except (
                errors.LedgerCountMismatch
            ) as exc:  # a submission landed meanwhile: collect again
                logger.info("round %s: %s; collecting the round again", round_, exc)
                self._journal_path(round_).unlink(missing_ok=True)
                continue
            self._checkpoint("finalized")
            logger.info(
                "round %s finalized: %s accepted, %s rejected, %s paid, global %s",
                round_,
                result.accepted,
                result.rejected,
                result.reward_total,
                result.global_cid,
            )
            return RoundOutcome(
                self.task_id,
                round_,
                report,
                result.report_cid,
                result,
                int(receipt["gasUsed"]),
                resumed,
            )
        raise ChainError(f"round {round_}: submissions kept arriving while finalizing; try again")

    def run(
        self,
        *,
        max_rounds: int | None = None,
        poll_seconds: float = 2.0,
        should_stop: Callable[[], bool] = lambda: False,
        on_round: Callable[[RoundOutcome], None] | None = None,
    ) -> list[RoundOutcome]:
        """Open, wait for and finalize rounds until the task is complete (or ``max_rounds``)."""
        done: list[RoundOutcome] = []
        while not should_stop() and (max_rounds is None or len(done) < max_rounds):
            round_ = self.open()
            if round_ == 0:
                break
            if not self.wait(round_, poll_seconds=poll_seconds, should_stop=should_stop):
                break
            outcome = self.finalize(round_)
            done.append(outcome)
            if on_round is not None:
                on_round(outcome)
        return done

    # ------------------------------------------------------------------ the work

    def _compute(self, round_: int, submissions: int) -> tuple[RoundReport, Finalization]:
        session, store = self.session, self.session.store
        began = time.perf_counter()
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
        self._checkpoint("collected")

        previous = previous_reports(session.history, store, self.task_id, round_)
        seen = {
            s.tensor_digest: f"of {s.node} in round {r.round}"
            for r in previous
            for s in r.submissions
            if s.tensor_digest and s.verdict == "accepted"
        }
        workdir = session.state_dir("aggregator", self.task_id) / f"round-{round_}" / "updates"
        verification = verify_round(
            store,
            commitments,
            task_id=self.task_id,
            round_=round_,
            start=start,
            policy=self.settings.verify,
            workdir=workdir,
            seen=seen,
            evaluator=self.evaluator,
        )
        verified_at = time.perf_counter()
        self._checkpoint("verified")

        accepted = verification.accepted
        strategy = self.settings.strategy
        state_in_cid = previous[-1].params.get("server_state_cid") if previous else None
        combined: Combined | None = None
        if accepted:
            state = self._load_server_state(state_in_cid)
            combined = combine(
                strategy,
                [c.client_update() for c in accepted],
                start.tensors,
                start.metadata.peft,
                server_state=state,
                compute=self.compute,
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

        metrics = self._metrics(verification, combined, start, global_bytes if combined else None)
        metrics.update(
            verify_seconds=round(verified_at - began, 3),
            aggregate_seconds=round(aggregated_at - verified_at, 3),
        )
        pool = session.ledger.task(self.task_id).reward_per_round
        qualities = {
            c.commitment.node: quality_factor(verification.start_loss, c.eval_loss)
            for c in accepted
        }
        shares = [
            Share(c.commitment.node, c.commitment.num_examples, qualities[c.commitment.node])
            for c in accepted
        ]
        rewards = reward_table(self.task_id, round_, pool, shares)
        report = RoundReport(
            task_id=self.task_id,
            round=round_,
            base_model=start.metadata.base_model,
            start_digest=start.digest,
            start_cid=start_cid,
            global_cid=global_cid,
            global_digest=global_digest,
            strategy=combined.used if combined else strategy.name,
            params=self._params(state_in_cid, state_cid),
            submissions=tuple(self._verdict(c, combined, qualities) for c in verification.checked),
            rewards=rewards,
            metrics=metrics,
            software=software_versions(),
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
        )
        self._write_journal(round_, submissions, result)
        self._checkpoint("journaled")
        return report, result

    def _commitments(self, round_: int, submissions: int) -> list[Commitment]:
        events = self.session.history.submissions(self.task_id, round_)
        if len(events) != submissions:
            raise ChainError(
                f"round {round_}: the chain counts {submissions} submissions but {len(events)} "
                "events were found",
                hint="the RPC node may lag behind; try again",
            )
        commitments = []
        for event in events:
            stored = self.session.ledger.submission(self.task_id, round_, event.node)
            if stored.digest != event.digest or stored.num_examples != event.num_examples:
                raise ChainError(
                    f"round {round_}: the event of {event.node} disagrees with contract storage"
                )
            commitments.append(
                Commitment(
                    event.node, event.cid, event.digest.hex(), event.num_examples, event.block
                )
            )
        return commitments

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

    def _params(self, state_in: str | None, state_out: str | None) -> dict[str, Any]:
        policy = self.settings.verify
        params: dict[str, Any] = {
            "strategy": self.settings.strategy.model_dump(mode="json"),
            "compute": compute_params(self.compute),
            "max_rank": policy.max_rank,
            "outlier_threshold": policy.outliers.threshold if policy.outliers else None,
            "outlier_min_updates": policy.outliers.min_updates if policy.outliers else None,
            "outlier_min_spread": policy.outliers.min_spread if policy.outliers else None,
            "validation": self.evaluator is not None,
            "max_loss_increase": policy.max_loss_increase if self.evaluator is not None else None,
        }
        if self.settings.strategy.optimizer() is not None:
            params["server_state_cid_in"] = state_in
            params["server_state_cid"] = state_out
        return params

    def _metrics(
        self,
        verification: Verification,
        combined: Combined | None,
        start: GlobalAdapter,
        global_bytes: bytes | None,
    ) -> dict[str, float]:
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
        if self.evaluator is not None:
            if verification.start_loss is not None:
                metrics["start_eval_loss"] = verification.start_loss
            if combined is not None and global_bytes is not None:
                loss = self.evaluator(combined.tensors, start.metadata.peft)
                if loss is not None:
                    metrics["global_eval_loss"] = loss
            elif verification.start_loss is not None:
                metrics["global_eval_loss"] = verification.start_loss
        return metrics

    @staticmethod
    def _verdict(
        item: Checked, combined: Combined | None, qualities: dict[str, float]
    ) -> SubmissionVerdict:
        node = item.commitment.node
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
        )

    def _finalized_outcome(self, round_: int) -> RoundOutcome:
        record = next(
            (f for f in self.session.history.finalized(self.task_id) if f.round == round_), None
        )
        if record is None:
            raise ChainError(
                f"round {round_} of task {self.task_id} is finalized but its event was not found"
            )
        report = fetch_report(self.session.store, record.report_cid)
        return RoundOutcome(self.task_id, round_, report, record.report_cid, record, None, True)

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

    def _journal_usable(self, journal: dict[str, Any], submissions: int) -> bool:
        try:
            if int(journal["submissions"]) != submissions:
                return False
            _finalization_from(journal)
            return all(self.session.store.has(journal[key]) for key in ("report_cid", "global_cid"))
        except (KeyError, TypeError, ValueError, LoRALedgerError) as exc:
            logger.warning(
                "ignoring a journal that cannot be used (%s); recomputing the round", exc
            )
            return False

    def _write_journal(self, round_: int, submissions: int, result: Finalization) -> None:
        path = self._journal_path(round_)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "submissions": submissions,
            "global_cid": result.global_cid,
            "global_digest": result.global_digest.hex(),
            "report_cid": result.report_cid,
            "accepted": result.accepted,
            "rejected": result.rejected,
            "reward_root": result.reward_root.hex(),
            "reward_total": str(result.reward_total),
        }
        write_json_atomic(path, body)


def _finalization_from(journal: dict[str, Any]) -> Finalization:
    result = Finalization(
        global_cid=str(journal["global_cid"]),
        global_digest=bytes.fromhex(journal["global_digest"]),
        report_cid=str(journal["report_cid"]),
        accepted=int(journal["accepted"]),
        rejected=int(journal["rejected"]),
        reward_root=bytes.fromhex(journal["reward_root"]),
        reward_total=int(journal["reward_total"]),
    )
    if len(result.global_digest) != 32 or len(result.reward_root) != 32:
        raise ConfigError("journal digests are not 32 bytes")
    return result
