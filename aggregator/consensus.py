"""The validators' consensus on a round: median scores, verdicts, agreement and validator pay.

Every validator scores the round's updates on its *own* private held-out data and posts the
sheet (:class:`loraledger.report.ScoreSheet`) before any result is proposed. What depends on
held-out data is then decided by all the sheets the result uses, never by one account:

- **contribution rule**: node ``i``'s score is the median over sheets of ``s_v,i`` (``0`` when
  validator ``v`` rejected the update with its own validation checks, or left it out). The
  update is accepted when that median is positive; otherwise it is rejected with the reason
  most of the rejecting validators gave (``no_contribution`` when they all kept it). Rewards
  follow the median scores (:mod:`aggregator.rewards`). A minority of validators cannot move a
  median outside the range of the honest ones' scores.
- **other rules** (no scores): an update passes the validators when a strict majority of
  sheets accept it.

Validators are paid a share of the round's reward (``validatorShareBps`` on chain), split by
**agreement**: ``a_v = max(0, 1 - sum_i |s_v,i - m_i| / sum_i |m_i|)`` with the contribution
rule (1 when every score and median is 0), else the fraction of updates on which ``v``'s verdict
is the consensus. A validator far from the consensus earns less; one that lies outright earns
nothing. The whole is a pure function of the sheets, so anyone re-derives it.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aggregator.errors import REASON_NO_CONTRIBUTION
from loraledger.errors import ConfigError
from loraledger.report import ScoreSheet, SheetEntry

__all__ = [
    "AGREEMENT_SCALE",
    "BPS",
    "RULE",
    "Consensus",
    "NodeConsensus",
    "decide",
    "split_round_pool",
    "validator_amounts",
]

BPS = 10_000
AGREEMENT_SCALE = 1_000_000
RULE = (
    "validators' pool = floor(pool * share_bps / 10000) when an update is accepted; validator v "
    "gets floor(validators' pool * w_v / sum w), w_v = round(agreement_v * 10^6); agreement_v = "
    "max(0, 1 - sum_i |s_v,i - median_i| / sum_i |median_i|) (scores), else the share of "
    "verdicts equal to the consensus"
)


@dataclass(frozen=True)
class NodeConsensus:
    """What the sheets decide for one update (structurally accepted by the round)."""

    node: str
    accepted: bool
    reason: str | None  # when not accepted
    detail: str | None
    score: float | None  # median score (None: not scored)
    eval_loss: float | None  # median of the validators' losses of the update alone
    loss_without: float | None  # median of their losses of the aggregate without it


@dataclass(frozen=True)
class Consensus:
    """The round's consensus: per update, per validator, and the medians of the round losses."""

    nodes: dict[str, NodeConsensus]  # by node address, lowercase
    agreement: dict[str, float]  # by validator address as the sheet gives it
    start_loss: float | None
    all_loss: float | None

    def of(self, node: str) -> NodeConsensus | None:
        return self.nodes.get(node.lower())


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(statistics.median(known)) if known else None


def _entries(sheet: ScoreSheet) -> dict[str, SheetEntry]:
    """The sheet's entries by lower-case node, the first of each (``ScoreSheet.entry``, looked
    up once per sheet: a round looks up every node in every sheet)."""
    index: dict[str, SheetEntry] = {}
    for entry in sheet.entries:
        index.setdefault(entry.node.lower(), entry)
    return index


def _score(entry: SheetEntry | None) -> float:
    if entry is None or entry.verdict != "accepted" or entry.score is None:
        return 0.0
    return entry.score


def decide(nodes: Sequence[str], sheets: Sequence[ScoreSheet], *, scored: bool) -> Consensus:
    """The consensus of ``sheets`` on ``nodes`` (the updates that passed the checks that need no
    held-out data); ``scored``: the contribution rule (medians of scores) or verdict majorities.

    With no sheet, every node passes (the round has nothing held-out to go by)."""
    seen = {s.validator.lower() for s in sheets}
    if len(seen) != len(sheets):
        raise ConfigError("two score sheets of the same validator")
    decided: dict[str, NodeConsensus] = {}
    books = [_entries(s) for s in sheets]
    for node in nodes:
        entries = [book.get(node.lower()) for book in books]
        rejecting = [e for e in entries if e is not None and e.verdict == "rejected"]
        if not sheets:
            accepted, score = True, None
        elif scored:
            score = float(statistics.median([_score(e) for e in entries]))
            accepted = score > 0
        else:
            votes = sum(1 for e in entries if e is not None and e.verdict == "accepted")
            accepted, score = 2 * votes > len(sheets), None
        reason = detail = None
        if not accepted:
            reasons = Counter(e.reason or REASON_NO_CONTRIBUTION for e in rejecting)
            reason = (
                min(reasons, key=lambda r: (-reasons[r], r)) if reasons else REASON_NO_CONTRIBUTION
            )
            detail = (
                f"median contribution score {score:.4g} over {len(sheets)} validators' held-out "
                f"data; {len(rejecting)} of them rejected it"
                if score is not None
                else f"{len(rejecting)} of {len(sheets)} validators rejected it ({reason})"
            )
        decided[node.lower()] = NodeConsensus(
            node=node,
            accepted=accepted,
            reason=reason,
            detail=detail,
            score=score,
            eval_loss=_median([e.eval_loss if e else None for e in entries]),
            loss_without=_median([e.loss_without if e else None for e in entries]),
        )
    pairs = zip(sheets, books, strict=True)
    agreement = {s.validator: _agreement(book, decided, scored) for s, book in pairs}
    return Consensus(
        nodes=decided,
        agreement=agreement,
        start_loss=_median([s.start_loss for s in sheets]),
        all_loss=_median([s.all_loss for s in sheets]),
    )


def _agreement(
    book: Mapping[str, SheetEntry], decided: Mapping[str, NodeConsensus], scored: bool
) -> float:
    if not decided:
        return 1.0
    if scored:
        medians = {key: c.score or 0.0 for key, c in decided.items()}
        distance = sum(abs(_score(book.get(key)) - m) for key, m in medians.items())
        scale = sum(abs(m) for m in medians.values())
        if scale == 0:
            return 1.0 if distance == 0 else 0.0
        return max(0.0, 1.0 - distance / scale)
    same = 0
    for key, c in decided.items():
        entry = book.get(key)
        vote = entry is not None and entry.verdict == "accepted"
        same += vote == c.accepted
    return same / len(decided)


def split_round_pool(pool: int, share_bps: int, any_accepted: bool) -> tuple[int, int]:
    """``(nodes' pool, validators' pool)`` of a round's ``pool``: validators get
    ``floor(pool * share_bps / 10000)`` when an update is accepted (a round that accepts nothing
    pays nobody)."""
    if pool < 0 or not 0 <= share_bps <= BPS:
        raise ConfigError(f"invalid pool {pool} or validator share {share_bps} bps")
    validators = pool * share_bps // BPS if any_accepted else 0
    return pool - validators, validators


def validator_amounts(pool: int, agreement: Mapping[str, float]) -> dict[str, int]:
    """Each validator's pay: ``floor(pool * w_v / sum w)`` with ``w_v = round(a_v * 10^6)``;
    only positive amounts (the dust stays in the task's pool)."""
    weights = {v: round(max(0.0, min(1.0, a)) * AGREEMENT_SCALE) for v, a in agreement.items()}
    total = sum(weights.values())
    if pool <= 0 or total == 0:
        return {}
    amounts = {v: pool * w // total for v, w in weights.items()}
    return {v: a for v, a in amounts.items() if a > 0}
