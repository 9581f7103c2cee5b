"""What earns nothing, decided on weight changes: free riders, copies, untrusted outliers.

Pure maths on adapters already parsed and checked one by one (:mod:`aggregator.verify`
calls these, and so does every audit through it). Updates are compared by the **weight change
they make** (per LoRA module ``scaling * B @ A``; plain tensors for methods without factors),
through low-rank inner products (:func:`aggregator.stats.lora_delta_norm`, never the dense
matrix). So rescaled factors (``A * c``, ``B / c``), permuted or rotated rank components, another
rank, another dtype and tiny noise are all the same update.

- **Free rider** (:func:`free_rider`): the update's change from the round's start adapter is
  numerically zero (RMS per weight below ``min_change_rms``), or it is within
  ``free_rider_rtol`` of the start adapter or of an earlier global adapter (relative to that
  adapter's own weight change). It adds nothing anyone has not already got.
- **Copy** (:func:`find_copies`): an update whose weight change is within ``copy_rtol`` of an
  earlier commitment's (relative to the earlier one's own step from its start adapter).
  "Earlier" is the order of the on-chain commitments (round, block, transaction index, log
  index), also across rounds; the earlier one keeps its verdict.
- **Trusted norm screening** (:func:`trusted_outliers`): an update whose norm is far *above*
  the median of the updates that the aggregator's own validation data says help (their
  validation loss beats the start adapter's by at least ``trusted_gain``). Submitters cannot
  make that reference: near-zero or useless updates never enter it, however many accounts send
  them, so a Sybil majority cannot push honest updates out. Without validation data the
  reference is every update (the median/MAD rule of :mod:`aggregator.stats`).
- **Example cap** (:func:`capped_examples`): the example count an update weighs with in
  aggregation is its on-chain claim capped at the median claim of the round's accepted
  updates, so no claim, however large, buys more weight than the typical node's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aggregator.client_update import LORA_A, LORA_B, Tensors, lora_modules
from aggregator.stats import (
    NormVerdict,
    OutlierPolicy,
    flag_outliers,
    lora_delta_norm,
    robust_z_scores,
)

__all__ = [
    "Candidate",
    "Change",
    "capped_examples",
    "change_distance",
    "change_norm",
    "dense_size",
    "find_copies",
    "free_rider",
    "trusted_outliers",
]


@dataclass(frozen=True)
class Change:
    """An adapter as the weight change it makes: its tensors and the factor of ``B @ A``
    (``PeftSpec.delta_scaling``)."""

    tensors: Tensors
    scaling: float


def change_distance(x: Change, y: Change) -> float:
    """``||dW(x) - dW(y)||_F`` over every module (float64, low-rank)."""
    return lora_delta_norm("", x.tensors, x.scaling, y.tensors, y.scaling)


def change_norm(x: Change) -> float:
    """``||dW(x)||_F`` over every module."""
    return lora_delta_norm("", x.tensors, x.scaling)


def dense_size(tensors: Tensors) -> int:
    """How many weights the adapter changes: ``out * in`` per LoRA module plus every element
    of the other tensors (the size of the dense weight change it stands for)."""
    modules, others = lora_modules(tensors.keys())
    size = sum(
        int(tensors[m + LORA_B].shape[0]) * int(tensors[m + LORA_A].shape[1]) for m in modules
    )
    return size + sum(int(tensors[k].numel()) for k in others)


def free_rider(
    update: Change,
    start: Change,
    earlier_globals: Sequence[tuple[str, Change]] = (),
    *,
    rtol: float,
    min_change_rms: float,
) -> str | None:
    """Why ``update`` is a free rider (a sentence), or ``None``.

    ``earlier_globals`` are ``(label, adapter)`` pairs of earlier global adapters.
    """
    floor = min_change_rms * math.sqrt(max(1, dense_size(update.tensors)))
    step = change_distance(update, start)
    if step <= floor:
        return (
            f"its weight change from the start adapter has norm {step:.3g}, below the floor "
            f"{floor:.3g} (RMS {min_change_rms:g} per weight)"
        )
    for label, reference in (("the start adapter", start), *earlier_globals):
        tolerance = max(floor, rtol * change_norm(reference))
        distance = step if reference is start else change_distance(update, reference)
        if distance <= tolerance:
            return (
                f"it is {label} again: distance {distance:.3g} <= {tolerance:.3g} "
                f"({rtol:g} of that adapter's weight change)"
            )
    return None


@dataclass(frozen=True)
class Candidate:
    """One update that copies are looked for among: who, where in the commitment order, its
    weight change and its step from its own start adapter."""

    node: str
    order: tuple[int, ...]  # (round, block, transaction index, log index) of the commitment
    change: Change
    step: float  # ||dW - dW(start of its round)||
    label: str  # how a copy's detail names it ("of 0xabc in round 2")
    current: bool  # in the round being screened (earlier rounds' updates keep their verdict)


def find_copies(candidates: Sequence[Candidate], *, rtol: float) -> dict[str, str]:
    """Current-round nodes whose update copies an earlier candidate's: ``{node: detail}``.

    Visits the candidates in commitment order; each current one is compared with every
    earlier one (including earlier copies: a copy of a copy is a copy of the original). The
    triangle inequality skips pairs whose norms alone are too far apart.
    """
    ordered = sorted(candidates, key=lambda c: c.order)
    norms = [change_norm(c.change) for c in ordered]
    copies: dict[str, str] = {}
    for i, item in enumerate(ordered):
        if not item.current:
            continue
        for j in range(i):
            earlier = ordered[j]
            tolerance = rtol * earlier.step
            if abs(norms[i] - norms[j]) > tolerance:
                continue
            distance = change_distance(item.change, earlier.change)
            if distance <= tolerance:
                copies[item.node] = (
                    f"its weight change is the update {earlier.label} again: distance "
                    f"{distance:.3g} <= {tolerance:.3g} ({rtol:g} of that update's step "
                    f"{earlier.step:.3g})"
                )
                break
    return copies


def trusted_outliers(
    norms: Mapping[str, float],
    trusted: Sequence[str] | None,
    policy: OutlierPolicy,
) -> dict[str, NormVerdict]:
    """Each node's norm verdict against a reference set of nodes.

    ``trusted``: the nodes the reference median/MAD is taken over (those the aggregator's
    validation data says help); ``None`` takes every node (the plain median/MAD rule). With a
    trusted reference only norms far *above* it are flagged: a small norm is no threat to the
    aggregate (it earns nothing by itself). Fewer reference nodes than
    ``policy.min_updates`` flag nothing.
    """
    if trusted is None:
        return {v.node: v for v in flag_outliers(norms, policy)}
    if not norms:
        return {}
    floor = max(policy.min_spread, 1e-6)
    reference = {n: norms[n] for n in trusted}
    if len(reference) < policy.min_updates:
        scores = robust_z_scores(norms, relative_floor=floor)
        return {n: NormVerdict(n, norms[n], scores[n], False) for n in norms}
    scores = robust_z_scores(norms, reference=reference, relative_floor=floor)
    return {
        n: NormVerdict(n, norms[n], scores[n], scores[n] > policy.threshold)
        for n in sorted(norms, key=str.lower)
    }


def capped_examples(claims: Mapping[str, int]) -> dict[str, int]:
    """Each node's example count for aggregation weights: its claim capped at the median claim
    (the lower median, an integer) of ``claims``.

    No node then weighs more than a node of median size, whatever it claims: a claim above the
    median buys nothing. (Claims are bounded on chain too: the task's ``maxExamples``.)
    """
    if not claims:
        return {}
    cap = statistics.median_low(claims.values())
    return {node: min(count, cap) for node, count in claims.items()}
