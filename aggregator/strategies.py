"""FedAvg weighted by examples, computed by streaming accumulation.

``result = sum_i p_i x_i`` with ``p_i = n_i / sum_j n_j``. Updates are visited in the
canonical order (node address); each one is loaded, added in place into one accumulator per
tensor and dropped, so memory is "accumulator + one update" whatever the number of updates.
Updates already in memory (``resident``) are added tensor by tensor instead, which keeps
each accumulator tensor in the CPU cache; the result is the same to the bit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from aggregator.client_update import (
    ClientUpdate,
    Tensors,
    TensorSpec,
    check_finite,
    example_weights,
    ordered,
)
from aggregator.device import Compute, allocate
from aggregator.errors import AggregationError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AggregationResult:
    """An aggregate and what produced it, for the round report.

    ``weights``: each node's weight in the result (0 when a robust rule left it out).
    ``details``: per-node figures a strategy used (norm, clip factor, Krum score...).
    """

    tensors: dict[str, torch.Tensor]
    weights: dict[str, float]
    details: dict[str, dict[str, float]] = field(default_factory=dict)


class WeightedSum:
    """Streaming ``sum_i w_i x_i``: one flat buffer (see :func:`allocate`), added in place.

    Every added update must have the keys and shapes of the first. Values are not checked
    here (that would double the memory traffic); call :meth:`is_finite` on the result.
    """

    def __init__(self, compute: Compute | None = None) -> None:
        self._compute = compute or Compute()
        self._sums: dict[str, torch.Tensor] = {}
        self._spec: TensorSpec | None = None
        self.total_weight = 0.0

    @property
    def spec(self) -> TensorSpec | None:
        return self._spec

    def add(self, node: str, tensors: Tensors, weight: float) -> None:
        """Add ``weight * tensors``; raises :class:`UpdateRejected` on other keys or shapes."""
        self.add_many([(node, tensors, weight)])

    def add_many(self, items: Sequence[tuple[str, Tensors, float]]) -> None:
        """Add several ``(node, tensors, weight)``, tensor by tensor.

        Each sum then stays in the CPU cache while every update's slice is added to it,
        instead of being read and written back once per update (1.05-1.7x faster in
        ``loraledger bench aggregate``). Every element sees the same additions in the same
        order either way, so the result is bit for bit that of :meth:`add` on each in turn.
        """
        for node, tensors, _ in items:
            if self._spec is None:
                self._spec = TensorSpec.of(tensors)
            self._spec.check(node, tensors)
        if not items or self._spec is None:
            return
        device, dtype = self._compute.device, self._compute.dtype
        first = not self._sums
        if first:
            self._sums = allocate(self._compute, self._spec.shapes)
        for key, total in self._sums.items():
            for index, (_, tensors, weight) in enumerate(items):
                value = tensors[key].to(device=device, dtype=dtype, non_blocking=True)
                if first and index == 0:
                    torch.mul(value, weight, out=total)
                else:
                    total.add_(value, alpha=weight)
        self.total_weight += math.fsum(weight for _, _, weight in items)

    def add_to_all(self, tensors: Tensors, weight: float) -> None:
        """Add ``weight * tensors`` to the sums already started (e.g. a reference adapter)."""
        if self._spec is None:
            raise AggregationError("add an update before adding a reference")
        self._spec.check("reference", tensors)
        for key, total in self._sums.items():
            total.add_(tensors[key].to(device=total.device, dtype=total.dtype), alpha=weight)

    def is_finite(self) -> bool:
        """Whether every sum is free of NaN and inf.

        One cheap reduction per tensor first (a NaN or inf anywhere makes its tensor's total
        non-finite); only if a total is non-finite, which a huge finite tensor can also
        cause, is the exact element-wise test run.
        """
        if not self._sums:
            return True
        totals = torch.stack([t.sum() for t in self._sums.values()])
        if bool(torch.isfinite(totals).all()):
            return True
        return all(bool(torch.isfinite(t).all()) for t in self._sums.values())

    def result(self, divide_by: float = 1.0) -> dict[str, torch.Tensor]:
        """The sums divided by ``divide_by``, on the CPU."""
        if not self._sums:
            raise AggregationError("no update was added")
        return {k: (v / divide_by if divide_by != 1.0 else v).cpu() for k, v in self._sums.items()}


def fedavg(
    updates: Sequence[ClientUpdate],
    *,
    weights: Mapping[str, float] | None = None,
    compute: Compute | None = None,
) -> AggregationResult:
    """Weighted average of the updates (``weights`` by node; default: by examples).

    Raises :class:`UpdateRejected` for an update whose keys, shapes or values (NaN, inf)
    cannot be averaged, naming its node; :class:`AggregationError` for no update or weights
    that do not give a positive total.
    """
    updates = ordered(updates)
    factors = _normalised(updates, weights)
    accumulator = WeightedSum(compute)
    if all(u.resident for u in updates):  # all in memory already: tensor by tensor
        accumulator.add_many([(u.node, u.load(), f) for u, f in zip(updates, factors, strict=True)])
    else:  # one update loaded at a time
        for update, factor in zip(updates, factors, strict=True):
            accumulator.add(update.node, update.load(), factor)
    if not accumulator.is_finite():
        raise_for_non_finite(updates)
    logger.debug("fedavg of %s updates", len(updates))
    return AggregationResult(
        accumulator.result(), {u.node: f for u, f in zip(updates, factors, strict=True)}
    )


def raise_for_non_finite(updates: Sequence[ClientUpdate]) -> None:
    """Find the update that made a result non-finite (reloading each) and reject it.

    Only called on the failure path, so the streaming path pays nothing for the check.
    """
    for update in updates:
        check_finite(update.node, update.load())
    raise AggregationError(
        "the aggregate overflowed to inf although every update is finite",
        hint="accumulate in float64 or clip update norms",
    )


def _normalised(
    updates: Sequence[ClientUpdate], weights: Mapping[str, float] | None
) -> list[float]:
    if weights is None:
        return example_weights(updates)
    try:
        raw = [float(weights[u.node]) for u in updates]
    except KeyError as missing:
        raise AggregationError(f"no weight given for node {missing}") from None
    if any(not w >= 0 for w in raw) or sum(raw) <= 0:
        raise AggregationError(f"weights must be non-negative with a positive sum, got {raw}")
    total = sum(raw)
    return [w / total for w in raw]


__all__ = [
    "AggregationResult",
    "WeightedSum",
    "fedavg",
    "raise_for_non_finite",
]
