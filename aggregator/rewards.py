"""The reward rule: a round's pool split among its accepted updates by examples and quality.

Rule (also in the README and in every round report's ``rewards.rule``):

    amount_i = floor(pool * n_i * q_i / sum_j n_j * q_j)   over the accepted updates j

``n_i`` is the number of training examples the node committed on chain; ``q_i`` its quality
factor: ``1 + max(0, (L_start - L_i) / L_start)`` when the aggregator evaluates on its own
validation data (``L_start`` the loss of the round's start adapter, ``L_i`` that of node
``i``'s adapter; between 1 and 2), and 1 for everyone otherwise. Quality factors enter the
integer arithmetic as millionths, so the amounts are exact and reproducible. The rounding
dust stays in the task's pool; ``pool`` is the task's reward per round. Nodes whose amount
rounds to zero, and rejected updates, get no line.

The table is a Merkle tree in OpenZeppelin's standard format (:mod:`chain.merkle`); each
line carries the node's proof, so a node claims with nothing but the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from chain.merkle import RewardEntry, RewardTree
from loraledger.errors import ConfigError
from loraledger.report import RewardLine, RewardTable

RULE = (
    "amount_i = floor(pool * n_i * q_i / sum_j n_j * q_j) over accepted updates; n = examples "
    "committed on chain; q = 1 + max(0, (L_start - L_i) / L_start) with aggregator validation, "
    "else 1"
)
QUALITY_SCALE = 1_000_000
ZERO_ROOT = "00" * 32


@dataclass(frozen=True)
class Share:
    """One accepted update's claim on the pool."""

    node: str
    num_examples: int
    quality: float = 1.0


def quality_factor(start_loss: float | None, node_loss: float | None) -> float:
    """``1 + max(0, (L_start - L_i) / L_start)``; 1 when either loss is unknown."""
    if start_loss is None or node_loss is None or not start_loss > 0:
        return 1.0
    return 1.0 + max(0.0, (start_loss - node_loss) / start_loss)


def split_pool(pool: int, shares: Sequence[Share]) -> dict[str, int]:
    """Each node's amount under :data:`RULE` (only positive amounts)."""
    if pool < 0:
        raise ConfigError(f"the reward pool must not be negative, got {pool}")
    weights = {}
    for share in shares:
        if share.num_examples <= 0 or not math.isfinite(share.quality) or share.quality < 0:
            raise ConfigError(f"invalid reward share {share}")
        weights[share.node] = share.num_examples * round(share.quality * QUALITY_SCALE)
    total = sum(weights.values())
    if total == 0:
        return {}
    amounts = {node: pool * weight // total for node, weight in weights.items()}
    return {node: amount for node, amount in amounts.items() if amount > 0}


def reward_table(task_id: int, round_: int, pool: int, shares: Sequence[Share]) -> RewardTable:
    """The round's reward table with each line's Merkle proof (root zero when nobody is paid)."""
    amounts = split_pool(pool, shares)
    if not amounts:
        return RewardTable(rule=RULE, pool=pool, total=0, root=ZERO_ROOT, lines=())
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
    return RewardTable(rule=RULE, pool=pool, total=tree.total, root=tree.root.hex(), lines=lines)
