"""Robust aggregation: norm clipping, coordinate-wise median, trimmed mean, (Multi-)Krum.

- Norm clipping (streaming): each update's change from the reference adapter is scaled to
  at most ``max_norm`` (default: the median norm of the round), then FedAvg by examples:
  ``ref + sum_i p_i min(1, c / ||x_i - ref||) (x_i - ref)``.
- Coordinate-wise median and trimmed mean (unweighted, per coordinate over the updates):
  they load every update of the round (memory grows with the number of updates).
- Krum (Blanchard et al., 2017): the score of update ``i`` is the sum of squared distances
  to its ``n - f - 2`` nearest other updates; Multi-Krum keeps the ``m`` lowest scores and
  averages them by examples. Ties go to the earlier node address.

Inputs with NaN/inf or other keys/shapes raise :class:`UpdateRejected` naming the node:
robust rules neutralise bad values, they never average them in silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from aggregator.client_update import (
    ClientUpdate,
    Tensors,
    TensorSpec,
    check_finite,
    example_weights,
    ordered,
)
from aggregator.device import Compute
from aggregator.errors import AggregationError
from aggregator.stats import update_norms
from aggregator.strategies import AggregationResult, WeightedSum, raise_for_non_finite
from loraledger.errors import ConfigError


def clipped_fedavg(
    updates: Sequence[ClientUpdate],
    *,
    reference: Tensors | None = None,
    max_norm: float | None = None,
    compute: Compute | None = None,
) -> AggregationResult:
    """FedAvg by examples of the updates' changes from ``reference``, each clipped to ``max_norm``.

    ``max_norm=None`` clips to the median norm of the round. Two streaming passes (norms,
    then the weighted sum); ``details[node]`` holds ``norm`` and ``clip`` (the factor).
    """
    if max_norm is not None and not max_norm > 0:
        raise ConfigError(f"max_norm must be positive, got {max_norm}")
    updates = ordered(updates)
    norms = update_norms(updates, reference, compute)
    bound = max_norm if max_norm is not None else _median(list(norms.values()))
    clips = [1.0 if norms[u.node] <= bound else bound / norms[u.node] for u in updates]
    weights = [p * c for p, c in zip(example_weights(updates), clips, strict=True)]
    accumulator = WeightedSum(compute)
    for update, weight in zip(updates, weights, strict=True):
        accumulator.add(update.node, update.load(), weight)
    if reference is not None:
        accumulator.add_to_all(reference, 1.0 - math.fsum(weights))
    if not accumulator.is_finite():
        raise_for_non_finite(updates)
    return AggregationResult(
        accumulator.result(),
        {u.node: p for u, p in zip(updates, example_weights(updates), strict=True)},
        {u.node: {"norm": norms[u.node], "clip": c} for u, c in zip(updates, clips, strict=True)},
    )


def coordinate_median(
    updates: Sequence[ClientUpdate], *, compute: Compute | None = None
) -> AggregationResult:
    """Per coordinate, the median over updates (mean of the two middle values for even n)."""
    updates, loaded = _load_all(updates)
    n = len(updates)

    def median(stacked: torch.Tensor) -> torch.Tensor:
        ordered_values = torch.sort(stacked, dim=0).values
        return (ordered_values[(n - 1) // 2] + ordered_values[n // 2]) / 2

    return AggregationResult(_per_key(loaded, median, compute), {u.node: 1.0 / n for u in updates})


def trimmed_mean(
    updates: Sequence[ClientUpdate], *, trim_ratio: float = 0.1, compute: Compute | None = None
) -> AggregationResult:
    """Per coordinate, the mean after dropping the ``floor(trim_ratio * n)`` lowest and highest."""
    if not 0 <= trim_ratio < 0.5:
        raise ConfigError(f"trim_ratio must be in [0, 0.5), got {trim_ratio}")
    updates, loaded = _load_all(updates)
    n = len(updates)
    k = math.floor(trim_ratio * n)

    def trimmed(stacked: torch.Tensor) -> torch.Tensor:
        return torch.sort(stacked, dim=0).values[k : n - k].mean(dim=0)

    return AggregationResult(
        _per_key(loaded, trimmed, compute),
        {u.node: 1.0 / n for u in updates},
        {u.node: {"trimmed_per_side": float(k)} for u in updates},
    )


def krum(
    updates: Sequence[ClientUpdate],
    *,
    byzantine: int,
    select: int = 1,
    compute: Compute | None = None,
) -> AggregationResult:
    """Krum (``select=1``) or Multi-Krum: FedAvg by examples of the ``select`` best-scored.

    Requires ``n >= 2 * byzantine + 3`` and ``1 <= select <= n``. ``details[node]["score"]``
    is each node's Krum score; ``weights`` is 0 for the nodes left out.
    """
    if byzantine < 0:
        raise ConfigError(f"byzantine must be non-negative, got {byzantine}")
    updates, loaded = _load_all(updates)
    n = len(updates)
    if n < 2 * byzantine + 3:
        raise AggregationError(
            f"Krum with byzantine={byzantine} needs at least {2 * byzantine + 3} updates, got {n}"
        )
    if not 1 <= select <= n:
        raise ConfigError(f"select must be between 1 and {n}, got {select}")
    distances = _squared_distances(loaded, compute or Compute())
    neighbours = n - byzantine - 2
    scores = [
        float(torch.sort(torch.cat([row[:i], row[i + 1 :]])).values[:neighbours].sum())
        for i, row in enumerate(distances)
    ]
    chosen = sorted(sorted(range(n), key=lambda i: (scores[i], i))[:select])
    chosen_updates = [updates[i] for i in chosen]
    total = math.fsum(u.num_examples for u in chosen_updates)
    weights = {u.node: 0.0 for u in updates}
    for i in chosen:
        weights[updates[i].node] = updates[i].num_examples / total
    accumulator = WeightedSum(compute)
    accumulator.add_many([(updates[i].node, loaded[i], weights[updates[i].node]) for i in chosen])
    return AggregationResult(
        accumulator.result(),
        weights,
        {u.node: {"score": s} for u, s in zip(updates, scores, strict=True)},
    )


def _load_all(updates: Sequence[ClientUpdate]) -> tuple[list[ClientUpdate], list[Tensors]]:
    updates = ordered(updates)
    loaded = [u.load() for u in updates]
    spec = TensorSpec.of(loaded[0])
    for update, tensors in zip(updates, loaded, strict=True):
        spec.check(update.node, tensors)
        check_finite(update.node, tensors)
    return updates, loaded


def _per_key(
    loaded: Sequence[Tensors],
    reduce: Callable[[torch.Tensor], torch.Tensor],
    compute: Compute | None,
) -> dict[str, torch.Tensor]:
    """``reduce`` over the stacked updates (dim 0), one key at a time."""
    compute = compute or Compute()
    result: dict[str, torch.Tensor] = {}
    for key in loaded[0]:
        stacked = torch.stack(
            [t[key].to(device=compute.device, dtype=compute.dtype) for t in loaded]
        )
        result[key] = reduce(stacked).cpu()
    return result


def _squared_distances(loaded: Sequence[Tensors], compute: Compute) -> torch.Tensor:
    """Pairwise squared L2 distances between whole updates, in float64, on the CPU."""
    n = len(loaded)
    distances = torch.zeros((n, n), dtype=torch.float64, device=compute.device)
    for key in loaded[0]:
        flat = torch.stack(
            [t[key].to(device=compute.device, dtype=torch.float64).reshape(-1) for t in loaded]
        )
        gram = flat @ flat.T
        squares = torch.diagonal(gram)
        distances += (squares[:, None] + squares[None, :] - 2 * gram).clamp_min_(0)
    distances.fill_diagonal_(0)
    return distances.cpu()


def _median(values: list[float]) -> float:
    ordered_values = sorted(values)
    n = len(ordered_values)
    return (ordered_values[(n - 1) // 2] + ordered_values[n // 2]) / 2
