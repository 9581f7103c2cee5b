"""The audit's checks that need no network: each takes what the chain and the report say and
returns what differs (an empty list when the check holds)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from aggregator.reproduce import Comparison
from aggregator.rewards import ZERO_ROOT, Share, quality_factor, split_pool
from chain.bindings import Round, Task
from chain.events import RewardClaimed, RoundFinalized, UpdateSubmitted
from chain.merkle import RewardEntry, RewardTree, leaf_hash, verify
from loraledger.errors import LoRALedgerError
from loraledger.report import RoundReport

__all__ = ["CHECKS", "AuditCheck", "RoundFacts", "Status"]

Status = Literal["pass", "fail", "skip"]
CHECKS = ("report", "submissions", "updates", "aggregate", "rewards", "claims", "ledger")
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
    """What the chain says about one finalized round, read once for all checks."""

    task: Task
    info: Round
    record: RoundFinalized
    events: list[UpdateSubmitted]
    claims: list[RewardClaimed]


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


def check_rewards(facts: RoundFacts, report: RoundReport) -> list[str]:
    table, record, task = report.rewards, facts.record, facts.task
    problems = []
    if table.pool != task.reward_per_round:
        problems.append(
            f"the table's pool is {table.pool}, the task's reward per round {task.reward_per_round}"
        )
    validation = bool(report.params.get("validation"))
    start_loss = report.metrics.get("start_eval_loss")
    committed = {e.node.lower(): e.num_examples for e in facts.events}
    shares = []
    for s in report.submissions:
        if s.verdict != "accepted":
            continue
        quality = quality_factor(start_loss, s.eval_loss) if validation else 1.0
        if not math.isclose(quality, s.quality, rel_tol=0, abs_tol=QUALITY_TOLERANCE):
            problems.append(
                f"{s.node}: quality {s.quality} reported, the reported losses give {quality}"
            )
        shares.append(Share(s.node, committed.get(s.node.lower(), s.num_examples), s.quality))
    try:
        rule = {k.lower(): v for k, v in split_pool(task.reward_per_round, shares).items()}
    except LoRALedgerError as exc:
        return [*problems, f"the reward rule cannot be applied: {exc}"]
    lines = {line.node.lower(): line for line in table.lines}
    if len(lines) != len(table.lines):
        problems.append("a node has more than one line in the reward table")
    for key in sorted(set(rule) | set(lines)):
        want, got = rule.get(key, 0), lines[key].amount if key in lines else 0
        if want != got:
            name = lines[key].node if key in lines else key
            problems.append(f"{name}: the rule gives {want}, the table {got}")
    total = sum(line.amount for line in table.lines)
    if not total == table.total == record.reward_total == facts.info.reward_total:
        problems.append(
            f"totals disagree: lines sum to {total}, the table says {table.total}, "
            f"the chain {record.reward_total}"
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
                f"{line.node}: the proof of {line.amount} does not verify against the on-chain root"
            )
    return problems


def check_claims(facts: RoundFacts, report: RoundReport) -> list[str]:
    lines = {line.node.lower(): line.amount for line in report.rewards.lines}
    problems = []
    seen: Counter[str] = Counter()
    for claim in facts.claims:
        key = claim.node.lower()
        seen[key] += 1
        if key not in lines:
            problems.append(
                f"{claim.node} claimed {claim.amount} (block {claim.block}) "
                "but has no line in the table"
            )
        elif claim.amount != lines[key]:
            problems.append(f"{claim.node} claimed {claim.amount}, the table gives {lines[key]}")
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


def claims_summary(facts: RoundFacts, report: RoundReport) -> str:
    return (
        f"{len(facts.claims)} of {len(report.rewards.lines)} rewards claimed ({facts.info.claimed})"
    )


def result(round_: int | None, name: str, problems: list[str], summary: str) -> AuditCheck:
    if problems:
        return AuditCheck(round_, name, "fail", "; ".join(problems))
    return AuditCheck(round_, name, "pass", summary)


def skip(round_: int, name: str, why: str) -> AuditCheck:
    return AuditCheck(round_, name, "skip", f"not checked: {why}")
