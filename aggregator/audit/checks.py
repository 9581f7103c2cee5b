"""The audit's checks that need no network: each takes what the chain and the report say and
returns what differs (an empty list when the check holds)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from aggregator.consensus import RULE as VALIDATORS_RULE
from aggregator.consensus import Consensus, split_round_pool, validator_amounts
from aggregator.contribution import contribution_score
from aggregator.errors import SLASH_CODES
from aggregator.inputs import PostedSheet
from aggregator.names import REWARD_RULES
from aggregator.reproduce import Comparison
from aggregator.rewards import (
    EARLIER_TEXTS,
    RULES,
    ZERO_ROOT,
    Share,
    quality_factor,
    round_amounts,
    slash_root,
)
from chain.attest import recover_signer, result_hash
from chain.bindings import Finalization, Ledger, Round, Task
from chain.events import (
    Attested,
    NodeSlashed,
    RewardClaimed,
    RoundFinalized,
    UpdateCommitted,
    UpdateSubmitted,
)
from chain.merkle import RewardEntry, RewardTree, leaf_hash, verify
from loraledger.display import tokens
from loraledger.errors import LoRALedgerError
from loraledger.report import RoundReport, SubmissionVerdict

__all__ = ["CHECKS", "AuditCheck", "RoundFacts", "Status"]

Status = Literal["pass", "fail", "skip"]
CHECKS = (
    "report",
    "submissions",
    "updates",
    "aggregate",
    "validators",
    "rewards",
    "claims",
    "slashes",
    "signatures",
    "ledger",
)
WEIGHT_TOLERANCE = 1e-6
QUALITY_TOLERANCE = 1e-9


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
class RoundFacts:
    """What the chain says about one finalized round (or, with ``proposal``, a result proposed
    for it and not signed yet), read once for all checks."""

    task: Task
    info: Round
    record: Finalization  # the RoundFinalized event, or the proposed result
    events: list[UpdateSubmitted]
    claims: list[RewardClaimed]
    commits: list[UpdateCommitted] = field(default_factory=list)
    slashes: list[NodeSlashed] = field(default_factory=list)
    validators: tuple[str, ...] = ()  # the task's validators, in their on-chain order
    attestations: list[Attested] = field(default_factory=list)  # signatures of the result
    proposal: bool = False


def _exact(units: int) -> str:
    """An amount in a verdict: every digit, with the symbol (a check compares base units)."""
    return tokens(units, exact=True)


def check_submissions(facts: RoundFacts, report: RoundReport) -> list[str]:
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


def check_rewards(
    facts: RoundFacts, report: RoundReport, agreement: Mapping[str, float] | None = None
) -> list[str]:
    """The reward table follows the report's rule from the accepted submissions and, with
    validators, pays them the task's share by their re-derived ``agreement``."""
    table, record, task = report.rewards, facts.record, facts.task
    consensus = bool(report.params.get("consensus"))
    if consensus and agreement is None:
        agreement = {}
    problems = []
    if table.pool != task.reward_per_round:
        problems.append(
            f"the table's pool is {_exact(table.pool)}, the task's reward per round "
            f"{_exact(task.reward_per_round)}"
        )
    validation = bool(report.params.get("validation")) or consensus
    start_loss = report.metrics.get("start_eval_loss")
    rule_name = report.params.get("reward_rule", "claimed")  # reports before the rule choice
    if rule_name not in REWARD_RULES:
        return [*problems, f"the report's reward rule {rule_name!r} is not a known rule"]
    stated = (RULES[rule_name], *EARLIER_TEXTS.get(rule_name, ()))
    texts = stated if not consensus else tuple(f"{t}; {VALIDATORS_RULE}" for t in stated)
    if table.rule not in texts:
        problems.append(f"the table states the rule {table.rule!r}, not the {rule_name} rule")
    committed = {e.node.lower(): e.num_examples for e in facts.events}
    shares = []
    for s in report.submissions:
        if not consensus and rule_name == "contribution" and s.reason == "no_contribution":
            problems += _score_problems(s, start_loss, report.metrics.get("scored_eval_loss"))
        if s.verdict != "accepted":
            continue
        quality = quality_factor(start_loss, s.eval_loss) if validation else 1.0
        if not math.isclose(quality, s.quality, rel_tol=0, abs_tol=QUALITY_TOLERANCE):
            problems.append(
                f"{s.node}: quality {s.quality} reported, the reported losses give {quality}"
            )
        if not consensus and rule_name == "contribution":
            problems += _score_problems(s, start_loss, report.metrics.get("scored_eval_loss"))
        shares.append(
            Share(s.node, committed.get(s.node.lower(), s.num_examples), s.quality, s.score)
        )
    try:
        amounts = round_amounts(
            task.reward_per_round,
            shares,
            rule_name,
            share_bps=task.validator_share_bps,
            agreement=agreement,
        )
        rule = {k.lower(): v for k, v in amounts.items()}
    except LoRALedgerError as exc:
        return [*problems, f"the reward rule cannot be applied: {exc}"]
    lines = {line.node.lower(): line for line in table.lines}
    if len(lines) != len(table.lines):
        problems.append("a node has more than one line in the reward table")
    for key in sorted(set(rule) | set(lines)):
        want, got = rule.get(key, 0), lines[key].amount if key in lines else 0
        if want != got:
            name = lines[key].node if key in lines else key
            problems.append(f"{name}: the rule gives {_exact(want)}, the table {_exact(got)}")
    total = sum(line.amount for line in table.lines)
    if not total == table.total == record.reward_total == facts.info.reward_total:
        problems.append(
            f"totals disagree: lines sum to {_exact(total)}, the table says {_exact(table.total)}, "
            f"the chain {_exact(record.reward_total)}"
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
                f"{line.node}: the proof of {_exact(line.amount)} does not verify against the "
                "on-chain root"
            )
    return problems


def _score_problems(
    s: SubmissionVerdict, start_loss: float | None, all_loss: float | None
) -> list[str]:
    """Whether the reported contribution score follows from the reported losses."""
    losses = (start_loss, all_loss, s.eval_loss, s.loss_without)
    if s.score is None or any(x is None for x in losses):
        return [f"{s.node}: no contribution score or a loss it derives from is missing"]
    want = contribution_score(*(float(x) for x in losses if x is not None))
    if not math.isclose(want, s.score, rel_tol=1e-12, abs_tol=1e-15):
        return [f"{s.node}: score {s.score} reported, the reported losses give {want}"]
    return []


def check_slashes(facts: RoundFacts, report: RoundReport) -> list[str]:
    """Every stake slashed for the round is one the report names, with its reason code and the
    report as evidence; every slash the report names is for proven cheating (a slashable reason
    in its own verdict, or a commitment never revealed)."""
    problems = []
    try:
        root = slash_root(facts.info.task_id, facts.info.round, report, facts.record.report_cid)
    except LoRALedgerError as exc:
        problems.append(f"the report's slashes are not a slash tree: {exc}")
    else:
        if root != facts.record.slash_root:
            problems.append(
                f"the slash root rebuilt from the report is {root.hex()}, the result's "
                f"{facts.record.slash_root.hex()}"
            )
    verdicts = {s.node.lower(): s for s in report.submissions}
    unrevealed = {n.lower() for n in report.unrevealed}
    named = {}
    for item in report.slashes:
        key = item.node.lower()
        named[key] = item
        verdict = verdicts.get(key)
        proven = (item.reason == "unrevealed" and key in unrevealed) or (
            verdict is not None and verdict.reason == item.reason
        )
        if not proven or SLASH_CODES.get(item.reason) != item.code:
            problems.append(
                f"{item.node}: slashed for {item.reason} (code {item.code}) without that evidence"
            )
    for event in facts.slashes:
        listed = named.get(event.node.lower())
        if listed is None:
            problems.append(
                f"{event.node} was slashed {_exact(event.amount)} but the report names no slash"
            )
            continue
        if (event.reason, event.evidence_cid) != (listed.code, facts.record.report_cid):
            problems.append(
                f"{event.node}: slashed with code {event.reason} and evidence "
                f"{event.evidence_cid}, the report says code {listed.code}, evidence "
                f"{facts.record.report_cid}"
            )
        elif event.amount > listed.amount:
            problems.append(
                f"{event.node}: slashed {_exact(event.amount)}, "
                f"the report says {_exact(listed.amount)}"
            )
    return problems


def check_validators(
    facts: RoundFacts,
    report: RoundReport,
    sheets: Sequence[PostedSheet],
    consensus: Consensus | None,
) -> list[str]:
    """The report lists exactly the score sheets the result used (its ``scoresBitmap``: each
    validator's CID and digest as posted on chain), with each validator's agreement re-derived
    from the sheets and its pay by the rule."""
    if not report.params.get("consensus"):
        return ["the report was not decided by validators' score sheets"]
    problems = []
    lines = {line.validator.lower(): line for line in report.validators}
    if len(lines) != len(report.validators):
        problems.append("a validator is listed twice")
    posted = {p.validator.lower(): p for p in sheets}
    problems += [
        f"{line.validator} is listed but its sheet is not one the result used"
        for key, line in lines.items()
        if key not in posted
    ]
    accepted = any(s.verdict == "accepted" for s in report.submissions)
    _, pool = split_round_pool(
        facts.task.reward_per_round, facts.task.validator_share_bps, accepted
    )
    agreement = consensus.agreement if consensus is not None else {}
    pay = {k.lower(): v for k, v in validator_amounts(pool, agreement).items()}
    for key, sheet in posted.items():
        line = lines.get(key)
        if line is None:
            problems.append(f"the sheet of {sheet.validator} was used but is not listed")
            continue
        if (line.sheet_cid, line.sheet_digest) != (sheet.cid, sheet.digest.hex()):
            problems.append(
                f"{sheet.validator}: the report lists sheet {line.sheet_cid}, the chain "
                f"{sheet.cid} ({sheet.digest.hex()[:16]}...)"
            )
        want = agreement.get(sheet.validator)
        if want is not None and line.agreement != want:
            problems.append(
                f"{sheet.validator}: agreement {line.agreement} reported, the sheets give {want}"
            )
        if line.reward != pay.get(key, 0):
            problems.append(
                f"{sheet.validator}: paid {_exact(line.reward)}, "
                f"the rule gives {_exact(pay.get(key, 0))}"
            )
    return problems


def validators_summary(report: RoundReport, sheets: Sequence[PostedSheet]) -> str:
    unreadable = sum(1 for p in sheets if p.sheet is None)
    agreement = ", ".join(f"{line.agreement:.2f}" for line in report.validators)
    return (
        f"{len(sheets)} validators' sheets used ({unreadable} unreadable, counted empty); "
        f"agreement {agreement or 'n/a'}; "
        f"{_exact(sum(v.reward for v in report.validators))} paid to them"
    )


def check_signatures(facts: RoundFacts, ledger: Ledger) -> list[str]:
    """The finalized result is the one its signers signed: its hash re-derived from the event,
    each ``Attested`` signature recovered (EIP-712) to a distinct validator of the task whose
    signed score-sheet digest is the one it posted, at least the task's quorum of them, and the
    signer set the contract recorded."""
    record = facts.record
    if not isinstance(record, RoundFinalized):
        return ["not a finalized result"]
    problems = []
    task_id, round_ = facts.info.task_id, facts.info.round
    want = result_hash(task_id, round_, record.epoch, record)
    if want != record.result_hash:
        problems.append(
            f"the result hashes to {want.hex()}, the event says {record.result_hash.hex()}"
        )
    index = {v.lower(): i for i, v in enumerate(facts.validators)}
    chain_id = ledger.chain.w3.eth.chain_id
    signers = 0
    for a in facts.attestations:
        i = index.get(a.validator.lower())
        if i is None:
            problems.append(f"{a.validator} signed but is not a validator of the task")
            continue
        if signers >> i & 1:
            problems.append(f"{a.validator} is counted twice")
            continue
        recovered = recover_signer(
            a.signature,
            chain_id=chain_id,
            verifying_contract=ledger.address,
            task_id=task_id,
            round_=round_,
            epoch=record.epoch,
            result=record,
            scores_digest=ledger.scores_of(task_id, round_, a.validator),
        )
        if recovered.lower() != a.validator.lower():
            problems.append(f"the signature relayed for {a.validator} recovers to {recovered}")
            continue
        signers |= 1 << i
    if signers.bit_count() < facts.task.quorum:
        problems.append(
            f"{signers.bit_count()} valid signatures, the task's quorum is {facts.task.quorum}"
        )
    if signers != record.signers:
        problems.append(
            f"the signatures found are of validators {signers:#x}, the contract recorded "
            f"{record.signers:#x}"
        )
    return problems


def signatures_summary(facts: RoundFacts) -> str:
    return (
        f"{len(facts.attestations)} validators signed the result (quorum {facts.task.quorum} "
        f"of {len(facts.validators)}); every signature recovers to its validator"
    )


def check_claims(facts: RoundFacts, report: RoundReport) -> list[str]:
    lines = {line.node.lower(): line.amount for line in report.rewards.lines}
    problems = []
    seen: Counter[str] = Counter()
    for claim in facts.claims:
        key = claim.node.lower()
        seen[key] += 1
        if key not in lines:
            problems.append(
                f"{claim.node} claimed {_exact(claim.amount)} (block {claim.block}) "
                "but has no line in the table"
            )
        elif claim.amount != lines[key]:
            problems.append(
                f"{claim.node} claimed {_exact(claim.amount)}, the table gives {_exact(lines[key])}"
            )
    problems += [f"{node} claimed {count} times" for node, count in seen.items() if count > 1]
    paid = sum(c.amount for c in facts.claims)
    if paid != facts.info.claimed:
        problems.append(
            f"claim events sum to {paid}, the contract records {facts.info.claimed} claimed"
        )
    return problems


def ledger_check(
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
    return result(
        None,
        "ledger",
        problems,
        f"funded {task.funded}, reserved {reserved}, paid {paid}, withdrawn {task.withdrawn}",
    )


def agreement(comparison: Comparison) -> str:
    if comparison.exact:
        return "bit-identical"
    ties = (
        f"; {len(comparison.ties)} modules are equally good truncations (tied singular values)"
        if comparison.ties
        else ""
    )
    return f"largest difference {comparison.worst:.3g}{ties}"


def rewards_summary(report: RoundReport) -> str:
    table = report.rewards
    return (
        f"{len(table.lines)} lines pay {table.total} of a pool of {table.pool} by the rule; "
        f"root {table.root[:16]}..."
    )


def slashes_summary(facts: RoundFacts, report: RoundReport) -> str:
    return (
        f"{len(report.slashes)} slashes named for proven cheating, {len(facts.slashes)} made "
        f"on chain; {len(report.unrevealed)} commitments never revealed"
    )


def claims_summary(facts: RoundFacts, report: RoundReport) -> str:
    claimed = _exact(facts.info.claimed)
    return f"{len(facts.claims)} of {len(report.rewards.lines)} rewards claimed ({claimed})"


def result(round_: int | None, name: str, problems: list[str], summary: str) -> AuditCheck:
    if problems:
        return AuditCheck(round_, name, "fail", "; ".join(problems))
    return AuditCheck(round_, name, "pass", summary)


def skip(round_: int, name: str, why: str) -> AuditCheck:
    return AuditCheck(round_, name, "skip", f"not checked: {why}")
