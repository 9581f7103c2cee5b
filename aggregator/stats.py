"""Robust statistics over a round's updates: norms, median/MAD z-scores, outlier flags.

An update's norm is the L2 norm of its change from the reference adapter (the round's
global adapter; zero when there is none) over all tensors. The robust z-score of a value
``x`` among ``xs`` is ``(x - median) / (1.4826 * MAD)``; ``1.4826 * MAD`` estimates the
standard deviation of normal data while ignoring up to half of the values being outliers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from pydantic import field_validator

from aggregator.client_update import ClientUpdate, Tensors, TensorSpec, ordered
from aggregator.device import Compute
from aggregator.errors import REASON_NON_FINITE, AggregationError
from loraledger.errors import UpdateRejected
from loraledger.settings import Settings

MAD_TO_SIGMA = 1.4826


def delta_norm(
    node: str, tensors: Tensors, reference: Tensors | None, compute: Compute | None = None
) -> float:
    """L2 norm of ``tensors - reference`` over all tensors (float64 sum of squares).

    Raises :class:`UpdateRejected` (``non_finite``) when the update holds NaN or inf.
    """
    compute = compute or Compute()
    squares = torch.zeros((), dtype=torch.float64, device=compute.device)
    for key, value in tensors.items():
        value = value.to(device=compute.device, dtype=torch.float64)
        if reference is not None:
            value = value - reference[key].to(device=compute.device, dtype=torch.float64)
        squares += torch.dot(value.reshape(-1), value.reshape(-1))
    result = math.sqrt(float(squares))
    if not math.isfinite(result):
        raise UpdateRejected(REASON_NON_FINITE, f"update of {node} has NaN or inf values")
    return result


def update_norms(
    updates: Sequence[ClientUpdate],
    reference: Tensors | None = None,
    compute: Compute | None = None,
) -> dict[str, float]:
    """Each node's :func:`delta_norm`, streaming (one update loaded at a time), in node order."""
    spec = TensorSpec.of(reference) if reference is not None else None
    norms: dict[str, float] = {}
    for update in ordered(updates):
        tensors = update.load()
        if spec is None:
            spec = TensorSpec.of(tensors)
        spec.check(update.node, tensors)
        norms[update.node] = delta_norm(update.node, tensors, reference, compute)
    return norms


def robust_z_scores(
    values: Mapping[str, float],
    *,
    reference: Mapping[str, float] | None = None,
    relative_floor: float = 1e-6,
) -> dict[str, float]:
    """``(x - median) / (1.4826 * MAD)`` for each value; the median and MAD are those of
    ``reference`` (default: ``values`` themselves).

    When more than half the values are equal the MAD is zero; it is floored at
    ``relative_floor * |median|`` (and at the smallest positive float) so that equal values
    score 0 and any other value scores large instead of dividing by zero.
    """
    reference = values if reference is None else reference
    if not values or not reference:
        raise AggregationError("no value to score")
    if any(not math.isfinite(v) for v in (*values.values(), *reference.values())):
        raise AggregationError(f"values must be finite, got {dict(values)}")
    median = statistics.median(reference.values())
    mad = statistics.median(abs(v - median) for v in reference.values())
    scale = max(MAD_TO_SIGMA * mad, relative_floor * abs(median), math.ulp(0.0))
    return {node: (v - median) / scale for node, v in values.items()}


class OutlierPolicy(Settings):
    """Flag an update whose norm's robust z-score is beyond ``threshold``.

    ``two_sided``: also flag norms far below the median (updates that barely trained).
    Below ``min_updates`` nothing is flagged (a median of two says nothing).
    ``min_spread``: the spread (``1.4826 * MAD``) is taken as at least this fraction of the
    median. Honest updates of many parameters have nearly equal norms (they concentrate), so
    without a floor a 2% difference would score as an outlier; with 0.1 an update is flagged
    at the default threshold only when its norm is more than 1.35x the median.
    """

    threshold: float = 3.5
    two_sided: bool = False
    min_updates: int = 3
    min_spread: float = 0.1

    @field_validator("threshold")
    @classmethod
    def _threshold_positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"outlier threshold must be positive, got {value}")
        return value

    @field_validator("min_updates")
    @classmethod
    def _enough_for_a_median(cls, value: int) -> int:
        if value < 3:
            raise ValueError(f"min_updates must be at least 3, got {value}")
        return value

    @field_validator("min_spread")
    @classmethod
    def _spread_a_fraction(cls, value: float) -> float:
        if not 0 <= value < 1:
            raise ValueError(f"min_spread must be in [0, 1), got {value}")
        return value


@dataclass(frozen=True)
class NormVerdict:
    """One update's norm, its robust z-score and whether it is an outlier."""

    node: str
    norm: float
    z_score: float
    outlier: bool


def flag_outliers(
    norms: Mapping[str, float], policy: OutlierPolicy | None = None
) -> list[NormVerdict]:
    """A verdict per node (sorted by node address) under the median/MAD rule of ``policy``."""
    policy = policy or OutlierPolicy()
    scores = robust_z_scores(norms, relative_floor=max(policy.min_spread, 1e-6))
    enough = len(norms) >= policy.min_updates
    verdicts = []
    for node in sorted(norms, key=str.lower):
        z = scores[node]
        beyond = abs(z) > policy.threshold if policy.two_sided else z > policy.threshold
        verdicts.append(NormVerdict(node, norms[node], z, enough and beyond))
    return verdicts


def lora_delta_norm(
    node: str,
    tensors: Tensors,
    scaling: float,
    reference: Tensors | None = None,
    reference_scaling: float = 1.0,
) -> float:
    """Frobenius norm of the change an adapter makes to the weights, against ``reference``.

    Per LoRA module the change is ``s B A - s_ref B_ref A_ref``; its norm comes from a QR of
    the stacked factors (:func:`loraledger.lowrank.product_distance`: no dense matrix, no
    cancellation), so adapters of different ranks are compared in the same (weight) space. Keys that
    are not LoRA factors contribute their plain difference. Float64 throughout.

    Raises :class:`UpdateRejected` (``non_finite``) when the result is NaN or inf.
    """
    from aggregator.client_update import LORA_A, LORA_B, lora_modules
    from loraledger.lowrank import product_distance, product_norm

    def f64(value: torch.Tensor) -> torch.Tensor:
        return value.to(dtype=torch.float64)

    modules, others = lora_modules(tensors.keys())
    squares = 0.0
    for module in modules:
        a, b = f64(tensors[module + LORA_A]), f64(tensors[module + LORA_B])
        if reference is None:
            norm = scaling * product_norm(b, a)
        else:
            ra, rb = f64(reference[module + LORA_A]), f64(reference[module + LORA_B])
            norm = product_distance(b * scaling, a, rb * reference_scaling, ra)
        squares += norm * norm
    for key in others:
        value = f64(tensors[key])
        if reference is not None:
            value = value - f64(reference[key])
        squares += float(torch.dot(value.reshape(-1), value.reshape(-1)))
    result = math.sqrt(squares) if squares >= 0 else math.nan
    if not math.isfinite(result):
        raise UpdateRejected(REASON_NON_FINITE, f"update of {node} has NaN or inf values")
    return result
