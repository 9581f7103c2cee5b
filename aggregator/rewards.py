"""The reward rules: a round's pool split among its accepted updates.

Three rules (the round report records which one in ``params.reward_rule``, with its text in
``rewards.rule``); each gives every accepted node an integer weight ``w_i`` and

    amount_i = floor(pool * w_i / sum_j w_j)   over the accepted updates j

- ``contribution`` (the default with validation data): ``w_i = round(score_i * 10^12)`` for a
  positive contribution score (:mod:`aggregator.contribution`), else 0. What the node claims
  plays no part, so inflating a count earns nothing.
- ``examples`` (without validation data): ``w_i`` = the node's committed examples capped at the
  round's median claim (:func:`aggregator.screening.capped_examples`).
- ``claimed`` (the rule before contribution scoring, kept to reproduce old rounds and for
  comparisons): ``w_i = n_i * round(q_i * 10^6)``, ``n_i`` the committed examples (uncapped),
  ``q_i = 1 + max(0, (L_start - L_i) / L_start)`` with validation data, else 1.

The rounding dust stays in the task's pool; ``pool`` is the task's reward per round. Nodes
whose amount rounds to zero, and rejected updates, get no line. The table is a Merkle tree in
OpenZeppelin's standard format (:mod:`chain.merkle`); each line carries the node's proof, so a
node claims with nothing but the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aggregator.consensus import RULE as VALIDATORS_RULE
from aggregator.consensus import split_round_pool, validator_amounts
from aggregator.contribution import RULE as CONTRIBUTION_RULE
from aggregator.names import REWARD_RULES, RewardRule
from aggregator.screening import capped_examples
from chain.merkle import RewardEntry, RewardTree, SlashEntry, SlashTree
from loraledger.errors import ConfigError
from loraledger.report import RewardLine, RewardTable, RoundReport

RULES: dict[RewardRule, str] = {
    "contribution": (
        "amount_i = floor(pool * w_i / sum_j w_j) over accepted updates; w_i = round(s_i * "
        "10^12) for a positive contribution score s_i, else 0 (" + CONTRIBUTION_RULE + ")"
    ),
    "examples": (
        "amount_i = floor(pool * w_i / sum_j w_j) over accepted updates; w_i = min(n_i, the "
        "lower median of the accepted updates' n); n = examples committed on chain"
    ),
    "claimed": (
        "amount_i = floor(pool * w_i / sum_j w_j) over accepted updates; w_i = n_i * "
        "round(q_i * 10^6); n = examples committed on chain; q = 1 + max(0, (L_start - L_i) / "
        "L_start) with aggregator validation, else 1"
    ),
}
"""Each rule as the report states it; ``round`` is round-half-to-even of the IEEE-754 double
product (Python's ``round``), every other operation exact integer arithmetic."""
EARLIER_TEXTS: dict[RewardRule, tuple[str, ...]] = {
    "examples": (
        "amount_i = floor(pool * w_i / sum_j w_j) over accepted updates; w_i = examples "
        "committed on chain, capped at the round's median claim",
    ),
    "claimed": (
        "amount_i = floor(pool * n_i * q_i / sum_j n_j * q_j) over accepted updates; n = "
        "examples committed on chain; q = 1 + max(0, (L_start - L_i) / L_start) with "
        "aggregator validation, else 1",
    ),
}
"""How reports written by earlier versions stated the same computation (less exactly): an audit
accepts them."""
RULE = RULES["claimed"]
QUALITY_SCALE = 1_000_000
SCORE_SCALE = 10**12
ZERO_ROOT = "00" * 32
ZERO_DIGEST = b"\x00" * 32


@dataclass(frozen=True)
class Share:
    """One accepted update's claim on the pool: what each rule may weigh it by."""

    node: str
    num_examples: int
    quality: float = 1.0
    score: float | None = None  # contribution score (rule ``contribution``)


def quality_factor(start_loss: float | None, node_loss: float | None) -> float:
    """``1 + max(0, (L_start - L_i) / L_start)``; 1 when either loss is unknown."""
    if start_loss is None or node_loss is None or not start_loss > 0:
        return 1.0
    return 1.0 + max(0.0, (start_loss - node_loss) / start_loss)


def score_weight(score: float | None) -> int:
    """A contribution score as an integer weight: ``round(score * 10^12)``, 0 unless positive."""
    if score is None or not math.isfinite(score) or score <= 0:
        return 0
    return round(score * SCORE_SCALE)


def reward_weights(rule: RewardRule, shares: Sequence[Share]) -> dict[str, int]:
    """Each accepted node's integer weight under ``rule`` (see the module docstring)."""
    for share in shares:
        if share.num_examples <= 0 or not math.isfinite(share.quality) or share.quality < 0:
            raise ConfigError(f"invalid reward share {share}")
    if rule == "contribution":
        return {s.node: score_weight(s.score) for s in shares}
    if rule == "examples":
        return capped_examples({s.node: s.num_examples for s in shares})
    if rule == "claimed":
        return {s.node: s.num_examples * round(s.quality * QUALITY_SCALE) for s in shares}
    raise ConfigError(f"unknown reward rule {rule!r}; choose one of {list(REWARD_RULES)}")


def split_pool(pool: int, shares: Sequence[Share], rule: RewardRule = "claimed") -> dict[str, int]:
    """Each node's amount under ``rule`` (only positive amounts)."""
    if pool < 0:
        raise ConfigError(f"the reward pool must not be negative, got {pool}")
    weights = reward_weights(rule, shares)
    total = sum(weights.values())
    if total == 0:
        return {}
    amounts = {node: pool * weight // total for node, weight in weights.items()}
    return {node: amount for node, amount in amounts.items() if amount > 0}


def round_amounts(
    pool: int,
    shares: Sequence[Share],
    rule: RewardRule = "claimed",
    *,
    share_bps: int = 0,
    agreement: Mapping[str, float] | None = None,
) -> dict[str, int]:
    """Every account's amount in a round: the nodes' under ``rule`` and, when the round has
    validators (``agreement``, :mod:`aggregator.consensus`), theirs: ``share_bps`` of ``pool``
    split by agreement, the nodes sharing the rest. An account that is both gets the sum."""
    validators_pool = 0
    if agreement is not None:
        pool, validators_pool = split_round_pool(pool, share_bps, bool(shares))
    amounts = split_pool(pool, shares, rule)
    by_key = {node.lower(): node for node in amounts}
    for validator, amount in validator_amounts(validators_pool, agreement or {}).items():
        node = by_key.setdefault(validator.lower(), validator)
        amounts[node] = amounts.get(node, 0) + amount
    return amounts


def reward_table(
    task_id: int,
    round_: int,
    pool: int,
    shares: Sequence[Share],
    rule: RewardRule = "claimed",
    *,
    share_bps: int = 0,
    agreement: Mapping[str, float] | None = None,
) -> RewardTable:
    """The round's reward table with each line's Merkle proof (root zero when nobody is paid);
    ``agreement`` and ``share_bps`` add the validators' pay (:func:`round_amounts`)."""
    amounts = round_amounts(pool, shares, rule, share_bps=share_bps, agreement=agreement)
    text = RULES[rule] if agreement is None else f"{RULES[rule]}; {VALIDATORS_RULE}"
    if not amounts:
        return RewardTable(rule=text, pool=pool, total=0, root=ZERO_ROOT, lines=())
    tree = RewardTree(
        task_id, round_, [RewardEntry(node, amount) for node, amount in amounts.items()]
    )
    lines = tuple(
        RewardLine(
            node=entry.node,
            amount=entry.amount,
            proof=tuple(p.hex() for p in tree.proof(entry.node)),
        )
        for entry in sorted(tree.entries, key=lambda e: e.node.lower())
    )
    return RewardTable(rule=text, pool=pool, total=tree.total, root=tree.root.hex(), lines=lines)


def slash_entries(report: RoundReport, report_cid: str) -> list[SlashEntry]:
    """The slashes ``report`` names, in its order, each with the report's CID as the evidence:
    the leaves of the round's slash root, executed on chain once the round settles."""
    return [SlashEntry(s.node, s.amount, s.code, report_cid) for s in report.slashes]


def slash_root(task_id: int, round_: int, report: RoundReport, report_cid: str) -> bytes:
    """The slash root of a round's result (zero when the report names no slash)."""
    if not report.slashes:
        return ZERO_DIGEST
    return SlashTree(task_id, round_, slash_entries(report, report_cid)).root
