"""Independent audit of a task's rounds from the chain and content-addressed storage alone.

An auditor needs nothing the aggregator kept: the deployment record (ledger address and
deploy block), a chain RPC and a store that holds the pinned content. From these,
:class:`Auditor` rebuilds the history of a task (``tasks``, ``history``: what the dashboard
and ``loraledger audit tasks|rounds|round`` show) and re-checks every finalized round
(``verify``), each check an :class:`AuditCheck` naming the round, the check and what differs:

``report``
    the report's bytes fetch and hash to the CID the ``RoundFinalized`` event holds (every
    :class:`~ipfs.ContentStore` get recomputes the CID in this process, trusting no node),
    parse, and name this task, round, start digest and the global adapter CID/digest that
    went on chain;
``submissions``
    the report lists exactly the round's ``UpdateSubmitted`` events (same nodes, CIDs,
    digests, examples; none dropped, added or listed twice) and its verdict counts equal the
    on-chain accepted/rejected counts;
``updates``
    every verdict is re-derived with the aggregator's own code: each revealed update checked on
    its own (:func:`aggregator.verify.check_one`), then judged in commitment order against the
    others and the earlier rounds (:func:`aggregator.verify.judge`: replays, free riders,
    copies, and from the published validation losses the validation and norm verdicts), a
    non-positive published score being ``no_contribution``; accepted updates have the tensor
    digest and the capped example count the report records;
``aggregate``
    :func:`aggregator.combine.combine` re-run on the accepted updates (strategy from
    ``params.strategy``, compute dtype from ``params.compute``, start adapter from the round's
    on-chain start digest, optimizer state from ``params.server_state_cid_in``) reproduces
    the published global adapter, whose bytes hash to the on-chain global digest: each
    module's weight change within :data:`~aggregator.reproduce.TOLERANCE`, and the factors
    where they are unique (:func:`aggregator.reproduce.compare_adapters`); the weights and
    the optimizer state the report records are reproduced too;
``validators``
    the report lists exactly the score sheets the result used (its on-chain ``scoresBitmap``:
    CIDs and digests as each validator posted them), each validator's agreement re-derived
    from the sheets (:func:`aggregator.consensus.decide`) and its pay by the rule; the
    verdicts, losses and scores that need held-out data are the sheets' medians (``updates``);
``rewards``
    quality factors follow from the published losses, the amounts follow the report's reward
    rule (:func:`aggregator.rewards.round_amounts`) from the accepted submissions and the
    validators' agreement, the total stays within the pool and equals the on-chain total, the
    Merkle root rebuilt from the lines equals the report's and the on-chain root, and every
    proof verifies against it;
``claims``
    every ``RewardClaimed`` event of the round pays a node of the table its amount, once,
    and the round's on-chain claimed total is their sum;
``slashes``
    every slash the report names is proven by the report (a slashable verdict, or a
    commitment never revealed), their Merkle root is the result's ``slashRoot``, and every
    ``NodeSlashed`` event of the round is one of them, with its code and the report as
    evidence;
``signatures``
    the result's hash re-derives from the ``RoundFinalized`` event; every ``Attested``
    signature of it recovers (EIP-712) to a distinct validator of the task, over the score
    sheet digest that validator posted; at least the task's quorum signed, and the signer set
    is the one the contract recorded;
``ledger`` (task-wide, when every round is audited)
    reserved = sum of the finalized rounds' totals, paid = sum of every claim, paid <=
    reserved, reserved + withdrawn <= funded.

A check that cannot run because an earlier one failed is reported as skipped. Validators run
the same checks on a *proposed* result before they sign it (:meth:`Auditor.review`).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from aggregator.audit.checks import (
    CHECKS,
    WEIGHT_TOLERANCE,
    AuditCheck,
    RoundFacts,
    agreement,
    check_claims,
    check_rewards,
    check_signatures,
    check_slashes,
    check_submissions,
    check_validators,
    claims_summary,
    ledger_check,
    result,
    rewards_summary,
    signatures_summary,
    skip,
    slashes_summary,
    validators_summary,
)
from aggregator.audit.views import HistoryReader, RoundNotAuditable, by_round
from aggregator.client_update import ClientUpdate
from aggregator.combine import StrategyConfig, combine, strategy_for
from aggregator.consensus import Consensus, decide
from aggregator.device import Compute
from aggregator.errors import REASON_NO_CONTRIBUTION, REASON_UNAVAILABLE
from aggregator.flexlora import RankTarget, truncation_excess
from aggregator.inputs import (
    PostedSheet,
    load_prior,
    load_server_state,
    load_sheets,
    load_start_adapter,
    previous_reports,
)
from aggregator.reproduce import TOLERANCE, Excess, Tolerance, compare_adapters, recorded_compute
from aggregator.screening import capped_examples
from aggregator.server_opt import ServerState
from aggregator.stats import OutlierPolicy
from aggregator.verify import (
    Checked,
    Commitment,
    VerifyPolicy,
    apply_consensus,
    check_all,
    judge,
)
from chain.bindings import Finalization, Ledger
from chain.events import History
from ipfs import ContentStore
from loraledger.errors import LoRALedgerError, ServiceUnavailable, UpdateRejected
from loraledger.privacy import TaskPrivacy, publishes
from loraledger.report import RoundReport, node_round_privacy
from loraledger.update import (
    DEFAULT_MAX_BYTES,
    Expected,
    GlobalAdapter,
    parse_global_adapter,
    sha256_hex,
)

__all__ = ["Auditor"]

# Verdicts an audit cannot re-derive later, because they depend on when and where the check
# ran (the network, the machine's memory): the report's word stands for them.
_CIRCUMSTANTIAL = frozenset(
    {REASON_UNAVAILABLE, "check_failed", "checker_crashed", "checker_memory", "checker_timeout"}
)

logger = logging.getLogger(__name__)


class Auditor(HistoryReader):
    """Reads (:class:`HistoryReader`) and re-checks the rounds of the ledger behind ``history``
    against ``store``, running the aggregator's own verification and aggregation code on the
    round's public inputs."""

    def __init__(
        self,
        ledger: Ledger,
        history: History,
        store: ContentStore,
        *,
        tolerance: Tolerance = TOLERANCE,
        compute: Compute | None = None,
        device: torch.device | None = None,
        fetch_workers: int | None = None,
    ) -> None:
        super().__init__(ledger, history, store)
        self.tolerance = tolerance
        # updates checked at once (``VerifyPolicy.fetch_workers``; None: its default)
        self.fetch_workers = fetch_workers
        # re-aggregation: in ``compute`` when given, else in the dtype each report records
        # (params.compute) on ``device`` (the CPU by default)
        self.compute = compute
        self.device = device
        self._policies: dict[int, TaskPrivacy] = {}
        self._earlier: dict[tuple[int, int], list[RoundReport]] = {}

    def privacy(self, task_id: int) -> TaskPrivacy:
        """The task's privacy policy, as its ``TaskCreated`` event records it."""
        if task_id not in self._policies:
            self._policies[task_id] = self.history.task_created(task_id).params.privacy
        return self._policies[task_id]

    def _previous(self, task_id: int, round_: int) -> list[RoundReport]:
        """The reports of the task's finalized rounds before ``round_``, fetched once per round
        checked (the updates check and the privacy check both read them; every check of a
        round starts afresh, so a reorganisation between audits is seen)."""
        key = (task_id, round_)
        if key not in self._earlier:
            self._earlier = {key: previous_reports(self.history, self.store, task_id, round_)}
        return self._earlier[key]

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
                    hint="verify it once the validators' quorum has finalized it",
                )
        numbers = [round_] if round_ is not None else sorted(finalized)
        events = by_round(self.history.submissions(task_id))
        commits = by_round(self.history.commits(task_id))
        slashes = by_round(self.history.slashes(task_id))
        claims_all = self.history.claims(task_id)
        claims = by_round(claims_all)
        validators = self.ledger.validators(task_id)
        checks: list[AuditCheck] = []
        for n in numbers:
            record = finalized[n]
            facts = RoundFacts(
                task,
                self.ledger.round(task_id, n),
                record,
                events.get(n, []),
                claims.get(n, []),
                commits.get(n, []),
                slashes.get(n, []),
                validators=validators,
                attestations=[
                    a
                    for a in self.history.attestations(task_id, n)
                    if a.result_hash == record.result_hash
                ],
            )
            checks.extend(self._verify_round(facts))
        if round_ is None:
            checks.append(ledger_check(task, list(finalized.values()), claims_all))
        return checks

    def review(self, task_id: int, round_: int, result: Finalization) -> list[AuditCheck]:
        """The checks of a *proposed* result of ``round_``, before anyone signs it: what a
        validator runs (:mod:`aggregator.validator`). Signatures and claims are not checked
        (there are none yet)."""
        task = self.ledger.task(task_id)
        info = self.ledger.round(task_id, round_)
        proposed = replace(
            info,
            accepted=result.accepted,
            rejected=result.rejected,
            reward_total=result.reward_total,
            reward_root=result.reward_root,
        )
        facts = RoundFacts(
            task,
            proposed,
            result,
            self.history.submissions(task_id, round_),
            [],
            self.history.commits(task_id, round_),
            [],
            validators=self.ledger.validators(task_id),
            proposal=True,
        )
        return [c for c in self._verify_round(facts) if c.name != "claims"]

    def _verify_round(self, facts: RoundFacts) -> list[AuditCheck]:
        self._earlier = {}
        n = facts.info.round
        report, problems = self._check_report(facts)
        out = [result(n, "report", problems, f"{facts.record.report_cid} is the report on chain")]
        if report is None:
            names = [c for c in CHECKS[1:] if c != "ledger"]
            return out + [skip(n, name, "the report cannot be read") for name in names]
        out.append(
            result(
                n,
                "submissions",
                check_submissions(facts, report),
                f"{len(facts.events)} commitments, {facts.record.accepted} accepted, "
                f"{facts.record.rejected} rejected, as on chain",
            )
        )
        sheets = load_sheets(
            self.history,
            self.store,
            facts.info.task_id,
            n,
            facts.validators,
            bitmap=facts.record.scores_bitmap,
        )
        start, start_problem = self._start_adapter(facts)
        with tempfile.TemporaryDirectory(prefix="loraledger-audit-") as tmp:
            updates, problems, consensus = self._check_updates(
                facts, report, start, Path(tmp), sheets
            )
            out.append(
                result(
                    n,
                    "updates",
                    problems,
                    f"{len(facts.events)} verdicts re-derived from the updates, the earlier rounds "
                    f"and {len(sheets)} validators' score sheets; {len(updates)} accepted updates "
                    "match their commitments",
                )
            )
            if start is None:
                out.append(result(n, "aggregate", [start_problem or "no start adapter"], ""))
            elif problems:
                out.append(skip(n, "aggregate", "not every accepted update could be checked"))
            else:
                out.append(self._check_aggregate(facts, report, start, updates, Path(tmp)))
        out.append(
            result(
                n,
                "validators",
                check_validators(facts, report, sheets, consensus),
                validators_summary(report, sheets),
            )
        )
        agreement = consensus.agreement if consensus is not None else None
        out.append(
            result(n, "rewards", check_rewards(facts, report, agreement), rewards_summary(report))
        )
        out.append(result(n, "claims", check_claims(facts, report), claims_summary(facts, report)))
        out.append(
            result(n, "slashes", check_slashes(facts, report), slashes_summary(facts, report))
        )
        if not facts.proposal:
            out.append(
                result(
                    n,
                    "signatures",
                    check_signatures(facts, self.ledger),
                    signatures_summary(facts),
                )
            )
        return out

    def _check_report(self, facts: RoundFacts) -> tuple[RoundReport | None, list[str]]:
        record, info = facts.record, facts.info
        try:
            report = self.report(record.report_cid)
        except UpdateRejected as exc:
            return None, [f"the report {record.report_cid} is not a valid report: {exc}"]
        except ServiceUnavailable:
            raise  # the auditor's own IPFS node or chain does not answer: an error, no verdict
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

    def _start_adapter(self, facts: RoundFacts) -> tuple[GlobalAdapter | None, str | None]:
        digest = facts.info.start_digest
        try:
            _, adapter = load_start_adapter(self.history, self.store, facts.info.task_id, digest)
        except ServiceUnavailable:
            raise
        except LoRALedgerError as exc:
            return None, f"the start adapter (digest {digest.hex()}) cannot be read: {exc}"
        return adapter, None

    def _check_updates(
        self,
        facts: RoundFacts,
        report: RoundReport,
        start: GlobalAdapter | None,
        workdir: Path,
        sheets: Sequence[PostedSheet],
    ) -> tuple[list[ClientUpdate], list[str], Consensus | None]:
        """Re-derive every verdict with the aggregator's own code: each revealed update is
        checked on its own (:func:`aggregator.verify.check_one`), then judged next to the others
        and the earlier rounds (:func:`aggregator.verify.judge`: replays, free riders, copies,
        and, from the losses the report published, validation and the norm screening), then
        scored (contribution rule). With validators (``params.consensus``), what needs held-out
        data is decided by the posted score sheets (:func:`aggregator.consensus.decide`) and the
        report's losses and scores must be their medians. Returns the aggregation inputs (the
        accepted updates with their weighed examples), what differs from the report and the
        consensus."""
        if start is None:
            return [], [], None  # the aggregate check says why; nothing to check shapes against
        params = report.params
        policy = _recorded_policy(params)
        expected = Expected(
            task_id=facts.info.task_id,
            round=facts.info.round,
            base_model=report.base_model,
            max_rank=policy.max_rank,
        )
        order = {c.node.lower(): (c.block, c.tx_index) for c in facts.commits}
        said = {s.node.lower(): s for s in report.submissions}
        checked: list[Checked] = []
        to_check: list[Commitment] = []
        for event in facts.events:
            block, tx_index = order.get(event.node.lower(), (event.block, 0))
            commitment = Commitment(
                event.node, event.cid, event.digest.hex(), event.num_examples, block, tx_index
            )
            verdict = said.get(event.node.lower())
            if verdict is not None and verdict.reason in _CIRCUMSTANTIAL:
                # availability and resources change with time: the report's word stands
                checked.append(Checked(commitment, verdict.reason, verdict.detail))
            else:
                to_check.append(commitment)
        if self.fetch_workers is not None:
            policy = policy.model_copy(update={"fetch_workers": self.fetch_workers})
        privacy = self.privacy(facts.info.task_id)
        checked += check_all(self.store, to_check, expected, start, policy, workdir, privacy)
        previous = self._previous(facts.info.task_id, facts.info.round)
        seen = {
            s.tensor_digest: f"of {s.node} in round {r.round}"
            for r in previous
            for s in r.submissions
            if s.tensor_digest and s.verdict == "accepted"
        }
        prior = load_prior(self.store, previous, lookback=policy.lookback)
        validation = bool(params.get("validation"))
        start_loss = report.metrics.get("start_eval_loss") if validation else None

        def reported_loss(item: Checked) -> float | None:
            verdict = said.get(item.commitment.node.lower())
            return verdict.eval_loss if verdict is not None else None

        judged = judge(
            sorted(checked, key=lambda c: c.commitment.order),
            start=start,
            policy=policy,
            round_=facts.info.round,
            seen=seen,
            prior=prior,
            start_loss=start_loss,
            loss_of=reported_loss if validation else None,
        )
        problems: list[str] = []
        consensus: Consensus | None = None
        if params.get("consensus"):
            consensus = decide(
                [c.commitment.node for c in judged if c.accepted],
                [p.counted(facts.info.task_id, facts.info.round) for p in sheets],
                scored=params.get("reward_rule") == "contribution",
            )
            judged = apply_consensus(judged, consensus)
            problems += _median_problems(report, consensus)
        accepted: dict[str, Checked] = {}
        for item in judged:
            node = item.commitment.node
            verdict = said.get(node.lower())
            if verdict is None:
                continue  # the submissions check reports a dropped commitment
            reason = item.reason
            if consensus is None and reason is None and params.get("reward_rule") == "contribution":
                score = verdict.score
                if score is not None and not score > 0:
                    reason = REASON_NO_CONTRIBUTION  # the rewards check re-derives the score
            if reason != verdict.reason:
                why = f" ({item.detail})" if item.detail else ""
                problems.append(
                    f"{node}: re-derived {reason or 'accepted'}{why}, the report says "
                    f"{verdict.reason or 'accepted'}"
                )
                continue
            stated = item.metadata.epsilon if item.metadata else None
            if item.metadata is not None and verdict.epsilon != stated:
                problems.append(
                    f"{node}: its update states epsilon {stated}, the report says {verdict.epsilon}"
                )
            if reason is None:
                if (
                    verdict.tensor_digest is not None
                    and item.tensor_digest != verdict.tensor_digest
                ):
                    problems.append(
                        f"{node}: tensor digest {item.tensor_digest}, the report says "
                        f"{verdict.tensor_digest}"
                    )
                accepted[node] = item
        updates = {n: c.client_update() for n, c in accepted.items()}
        if params.get("cap_examples"):
            caps = capped_examples({n: u.num_examples for n, u in updates.items()})
            for node, update in list(updates.items()):
                weighed = said[node.lower()].weight_examples
                if weighed != caps[node]:
                    problems.append(
                        f"{node}: weighs {weighed} examples in the report, the median cap gives "
                        f"{caps[node]}"
                    )
                updates[node] = replace(update, num_examples=caps[node])
        inputs = [updates[s.node] for s in report.submissions if s.node in updates]
        return inputs, problems, consensus

    def _check_aggregate(
        self,
        facts: RoundFacts,
        report: RoundReport,
        start: GlobalAdapter,
        updates: list[ClientUpdate],
        workdir: Path,
    ) -> AuditCheck:
        n, record = facts.info.round, facts.record
        privacy = self.privacy(facts.info.task_id)
        publish = bool(updates) and publishes(privacy, len(updates))
        problems = self._privacy_problems(facts, report, len(updates) if publish else 0)
        if not publish:
            kept = (
                f"{len(updates)} accepted, fewer than the {privacy.min_nodes} that node-level DP "
                "needs"
                if updates
                else "nothing accepted"
            )
            if record.global_digest.hex() != start.digest:
                problems.append(
                    f"{kept}, yet the global digest changed from {start.digest} to "
                    f"{record.global_digest.hex()}"
                )
                return result(n, "aggregate", problems, "")
            return result(n, "aggregate", problems, f"{kept}: the task kept its adapter")
        try:
            config = StrategyConfig.model_validate(report.params.get("strategy"))
        except ValidationError as exc:
            return result(
                n,
                "aggregate",
                [f"the report's params.strategy is not a strategy: {exc.errors()[0]['msg']}"],
                "",
            )
        try:
            required = strategy_for(privacy, config)
        except LoRALedgerError as exc:
            required = None
            problems.append(f"the report's strategy breaks the task's privacy policy: {exc}")
        if required is not None and required != config:
            problems.append(
                f"the task's node-level DP sums updates with equal weights; the report's "
                f"strategy weighs them by {config.weighting}"
            )
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
        except ServiceUnavailable:
            raise
        except LoRALedgerError as exc:
            return result(n, "aggregate", [f"cannot re-aggregate: {exc}"], "")
        if sha256_hex(data) != record.global_digest.hex():
            problems.append(
                f"the global adapter {record.global_cid} hashes to {sha256_hex(data)}, "
                f"the chain's digest is {record.global_digest.hex()}"
            )
        try:
            published = parse_global_adapter(data, Expected(task_id=facts.info.task_id, round=n))
        except UpdateRejected as exc:
            return result(n, "aggregate", [*problems, f"the global adapter is invalid: {exc}"], "")
        spec = start.metadata.peft
        target = RankTarget(spec.rank, spec.alpha) if spec.traits.low_rank else None

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
            unique_factors=combined.used != "flexlora",  # FlexLoRA's factors come from an SVD
            excess=excess,
        )
        problems += comparison.problems
        if combined.used != report.strategy:
            problems.append(
                f"the strategy that runs is {combined.used}, the report says {report.strategy}"
            )
        for s in report.submissions:
            if s.verdict == "accepted":
                weight = combined.weight_of(s.node)
                if abs(weight - s.weight) > WEIGHT_TOLERANCE:
                    problems.append(
                        f"{s.node}: weight {weight:.6f} re-computed, {s.weight:.6f} reported"
                    )
        out_cid = report.params.get("server_state_cid")
        if combined.server_state is not None and isinstance(out_cid, str):
            try:
                saved = self._server_state(config, out_cid, workdir / "state-out.safetensors")
            except ServiceUnavailable:
                raise
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
            f"{str(compute.dtype).removeprefix('torch.')}: {agreement(comparison)} "
            f"(tolerance {self.tolerance}); sha256 of the adapter equals the chain's digest"
        )
        return result(n, "aggregate", problems, summary)

    def _privacy_problems(self, facts: RoundFacts, report: RoundReport, summed: int) -> list[str]:
        """Whether the report states what the round's global adapter spent under the task's
        node-level DP (:func:`loraledger.report.node_round_privacy`), composed with the earlier
        rounds' reports, and nothing under any other policy."""
        task_id, n = facts.info.task_id, facts.info.round
        privacy = self.privacy(task_id)
        previous = self._previous(task_id, n) if privacy.mode == "node" else []
        expected = node_round_privacy(privacy, previous, summed)
        if report.privacy == expected:
            return []
        return [
            f"the report states privacy {_privacy_text(report)}; the task's policy "
            f"({privacy.mode}) and the round give "
            f"{'none' if expected is None else expected.model_dump(mode='json')}"
        ]

    def _server_state(self, config: StrategyConfig, cid: object, path: Path) -> ServerState | None:
        return load_server_state(
            self.store, config.optimizer(), cid if isinstance(cid, str) else None, path
        )


def _privacy_text(report: RoundReport) -> str:
    return "none" if report.privacy is None else str(report.privacy.model_dump(mode="json"))


def _median_problems(report: RoundReport, consensus: Consensus) -> list[str]:
    """Whether the report's losses and scores are the medians of the validators' sheets."""
    problems = []
    for s in report.submissions:
        decided = consensus.of(s.node)
        if decided is None:
            continue
        for what, said, median in (
            ("score", s.score, decided.score),
            ("validation loss", s.eval_loss, decided.eval_loss),
            ("loss without it", s.loss_without, decided.loss_without),
        ):
            if said != median:
                problems.append(
                    f"{s.node}: {what} {said} in the report, the sheets' median is {median}"
                )
    return problems


def _recorded_policy(params: dict[str, Any]) -> VerifyPolicy:
    """The verification policy a report records (a setting it does not record was off)."""

    def number(key: str) -> Any:
        value = params.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    outliers = None
    if number("outlier_threshold") is not None:
        outliers = OutlierPolicy(
            threshold=number("outlier_threshold"),
            min_updates=number("outlier_min_updates") or 3,
            min_spread=number("outlier_min_spread") or 0.0,
        )
    max_rank = number("max_rank")
    return VerifyPolicy(
        max_rank=int(max_rank) if max_rank is not None else None,
        outliers=outliers,
        max_loss_increase=number("max_loss_increase"),
        free_rider_rtol=number("free_rider_rtol"),
        min_change_rms=number("min_change_rms") or 0.0,
        copy_rtol=number("copy_rtol"),
        lookback=int(number("lookback") or 0),
        trusted_gain=number("trusted_gain"),
    )
