"""Contribution scores: what each update adds to the round's result on held-out data.

The score of node ``i`` is a two-stratum Shapley estimate over the round's screened updates
``N``, with ``v(S) = -L(aggregate of S)`` (``L`` the aggregator's validation loss, the empty
aggregate the start adapter):

    score_i = ( [L(start) - L({i})]  +  [L(N \\ {i}) - L(N)] ) / 2

the marginal value of ``i`` when it comes first (its update alone against the start adapter)
and when it comes last (leave-one-out: the aggregate without it against the aggregate of all).
Shapley's value averages the marginal value over every position; these are its two extreme
strata, each measured exactly by evaluating the merged candidate adapters (merging LoRA
adapters is cheap, evaluating them is the cost). Why these two (docs/incentives.md):

- leave-one-out alone pays redundant honest nodes nothing (removing one of eight similar
  updates barely changes the average) and turns noisy among them;
- the standalone gain alone ignores what the update adds next to the others;
- Monte Carlo or GTG-Shapley sample more positions, at ``O(permutations * N)`` evaluations;
  these two strata cost ``N`` evaluations beyond the ``N + 2`` that verification already
  makes (every update alone, the start and the global adapter), linear in nodes.

Updates whose score is ``<= 0`` add nothing or harm: they are left out of the aggregate and
earn nothing. The reward rule (:mod:`aggregator.rewards`) splits the pool in proportion to the
positive scores. The inputs (every loss) and the scores go in the round report, so anyone can
re-derive the scores and the reward table from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aggregator.client_update import ClientUpdate, Tensors

__all__ = ["RULE", "Scored", "contribution_score", "score_updates"]

RULE = (
    "score_i = ((L_start - L_alone_i) + (L_without_i - L_all)) / 2 on the aggregator's "
    "validation data (two-stratum Shapley estimate); score <= 0: left out, paid nothing"
)


def contribution_score(
    start_loss: float, all_loss: float, alone_loss: float, without_loss: float
) -> float:
    """The score of one update from the four losses (the one formula, used by the round and
    by every audit); ``-inf`` when a loss is not finite (a broken evaluation earns nothing)."""
    losses = (start_loss, all_loss, alone_loss, without_loss)
    if not all(math.isfinite(x) for x in losses):
        return -math.inf
    return ((start_loss - alone_loss) + (without_loss - all_loss)) / 2


@dataclass(frozen=True)
class Scored:
    """The round's scores: the loss of the aggregate of every screened update, and each node's
    leave-one-out loss and score."""

    all_loss: float
    without: dict[str, float]
    scores: dict[str, float]

    @property
    def contributors(self) -> list[str]:
        """Nodes with a positive score, in node order."""
        return sorted((n for n, s in self.scores.items() if s > 0), key=str.lower)


def score_updates(
    updates: Sequence[ClientUpdate],
    *,
    aggregate: Callable[[Sequence[ClientUpdate]], Tensors],
    evaluate: Callable[[Tensors], float],
    start: Tensors,
    start_loss: float,
    alone: Mapping[str, float],
) -> Scored:
    """Score every update: one evaluation of the aggregate of all and one leave-one-out
    aggregate per update (``aggregate`` is the round's strategy, ``evaluate`` the validation
    loss, ``alone`` each update's own validation loss, measured by verification)."""
    all_loss = evaluate(aggregate(updates))
    without: dict[str, float] = {}
    scores: dict[str, float] = {}
    for update in updates:
        others = [u for u in updates if u.node != update.node]
        loss = evaluate(aggregate(others)) if others else start_loss
        without[update.node] = loss
        scores[update.node] = contribution_score(start_loss, all_loss, alone[update.node], loss)
    return Scored(all_loss, without, scores)
