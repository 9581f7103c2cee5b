"""A round's aggregation as one pure function: verified updates + start adapter -> new adapter.

:func:`combine` is what the round loop runs and what ``loraledger audit verify`` re-runs from
the accepted updates alone, so everything it depends on is in its arguments (and recorded in
the round report): the :class:`StrategyConfig`, the updates in canonical order, the round's
start adapter and, for the server optimizers, the state carried from the previous round.

Every strategy produces an adapter of the task's shape (the start adapter's rank and alpha):

- ``flexlora`` / ``zero-pad`` take updates of any rank directly (heterogeneous ranks);
- the factor-wise strategies (``fedavg``, the server optimizers and the robust rules) need
  every update at the task's rank: an update of another rank or alpha is first replaced by
  the best approximation of its own weight change at the task's rank (FlexLoRA of that one
  update: exact when its rank is not larger).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from aggregator.client_update import ClientUpdate, Tensors
from aggregator.device import Compute
from aggregator.flexlora import RankTarget, flexlora, zero_pad
from aggregator.names import HETEROGENEOUS as HETEROGENEOUS
from aggregator.names import SERVER_OPTIMIZERS as SERVER_OPTIMIZERS
from aggregator.names import STRATEGIES as STRATEGIES
from aggregator.names import StrategyName
from aggregator.robust import clipped_fedavg, coordinate_median, krum, trimmed_mean
from aggregator.server_opt import FedAdam, FedAvgM, FedYogi, ServerOptimizer, ServerState
from aggregator.strategies import AggregationResult, fedavg
from loraledger.errors import ConfigError
from loraledger.privacy import TaskPrivacy
from loraledger.update import PeftSpec


class StrategyConfig(BaseModel):
    """A strategy and its parameters; recorded in every round report as ``params.strategy``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: StrategyName = "fedavg"
    # fedavg and the server optimizers: by claimed examples, or equal (node-level DP needs it)
    weighting: Literal["examples", "equal"] = "examples"
    clip_norm: float | None = Field(default=None, gt=0)  # clip: None = the round's median norm
    trim_ratio: float = Field(default=0.1, ge=0, lt=0.5)  # trimmed-mean: per side
    byzantine: int = Field(default=1, ge=0)  # krum: assumed attackers f
    krum_select: int | None = Field(default=None, ge=1)  # krum: None = n - f (Multi-Krum)
    server_lr: float | None = Field(default=None, gt=0)  # server optimizers (None = default)
    momentum: float = Field(default=0.9, ge=0, lt=1)  # fedavgm
    beta1: float = Field(default=0.9, ge=0, lt=1)  # fedadam / fedyogi
    beta2: float = Field(default=0.99, ge=0, lt=1)
    tau: float = Field(default=1e-3, gt=0)

    def optimizer(self) -> ServerOptimizer | None:
        """The server optimizer of this strategy, ``None`` for the others."""
        if self.name == "fedavgm":
            return FedAvgM(server_lr=self.server_lr or 1.0, momentum=self.momentum)
        if self.name in ("fedadam", "fedyogi"):
            cls = FedAdam if self.name == "fedadam" else FedYogi
            return cls(
                server_lr=self.server_lr or 0.01, beta1=self.beta1, beta2=self.beta2, tau=self.tau
            )
        return None


def strategy_for(privacy: TaskPrivacy, config: StrategyConfig) -> StrategyConfig:
    """``config`` as a task's privacy policy allows it: node-level DP's noise shares add up
    only in a plain sum of equally weighted updates (weights by claimed examples would let one
    node count for more than its clipping bound, and robust rules drop updates and their noise
    with them), so such a task takes FedAvg with equal weights; any other policy takes
    ``config`` as it is. The aggregator runs what this returns and an audit checks that a
    report's recorded strategy is it."""
    if privacy.mode != "node":
        return config
    if config.name != "fedavg":
        raise ConfigError(
            f"the task requires node-level DP, whose noise shares add up only in FedAvg; "
            f"got --strategy {config.name}",
            hint="run the aggregator with --strategy fedavg (its weights are then equal)",
        )
    return config.model_copy(update={"weighting": "equal"})


@dataclass(frozen=True)
class Combined:
    """The new adapter's tensors, each node's weight, per-node details, the optimizer state."""

    tensors: dict[str, torch.Tensor]
    weights: dict[str, float]
    details: dict[str, dict[str, float]]
    server_state: ServerState | None = None
    used: str = ""  # the strategy that ran (Krum falls back to FedAvg below 2f + 3 updates)

    def weight_of(self, node: str) -> float:
        """``node``'s weight as the round report records it (0 for a node left out, and kept
        within [0, 1] against rounding)."""
        return min(1.0, max(0.0, self.weights.get(node, 0.0)))


def combine(
    config: StrategyConfig,
    updates: Sequence[ClientUpdate],
    start: Tensors,
    spec: PeftSpec,
    *,
    server_state: ServerState | None = None,
    compute: Compute | None = None,
) -> Combined:
    """Aggregate ``updates`` into the next adapter of shape ``spec`` starting from ``start``.

    Raises :class:`~loraledger.errors.UpdateRejected` naming the node whose update cannot be
    aggregated, :class:`~loraledger.errors.ConfigError` for a strategy that does not fit.
    """
    compute = compute or Compute()
    if not spec.traits.low_rank and config.name in HETEROGENEOUS:
        raise ConfigError(f"{config.name} aggregates LoRA adapters, the task trains {spec.method}")
    if config.name in HETEROGENEOUS:
        target = RankTarget(spec.rank, spec.alpha)
        method = flexlora if config.name == "flexlora" else zero_pad
        hetero = method(updates, [target], compute=compute)
        return Combined(hetero.adapters[target], hetero.weights, {}, used=config.name)
    if spec.traits.low_rank:
        updates = [at_rank(u, spec) for u in updates]
    used = config.name
    if config.name == "krum" and len(updates) < 2 * config.byzantine + 3:
        used = "fedavg"  # Krum needs n >= 2f + 3; with fewer updates it cannot tell anyone apart
    result = _factorwise(config.model_copy(update={"name": used}), updates, start, compute)
    optimizer = config.optimizer()
    if optimizer is None:
        return Combined(result.tensors, result.weights, result.details, used=used)
    tensors, state = optimizer.step(start, result.tensors, server_state, compute)
    return Combined(tensors, result.weights, result.details, state, used=used)


def at_rank(update: ClientUpdate, spec: PeftSpec) -> ClientUpdate:
    """``update`` as an adapter of ``spec``'s rank and alpha (itself when it already is one).

    The projection is factored in float64 whatever the round's compute dtype: its factors are
    then averaged factor by factor, where the sign of each singular pair matters, and float64
    keeps the canonical sign rule (:mod:`loraledger.lowrank`) away from rounding noise.
    """
    if update.rank == spec.rank and update.alpha == spec.alpha:
        return update
    target = RankTarget(spec.rank, spec.alpha)

    def load() -> dict[str, torch.Tensor]:
        return flexlora([update], [target], compute=Compute(dtype=torch.float64)).adapters[target]

    return ClientUpdate(update.node, update.num_examples, spec.rank, spec.alpha, load)


def _factorwise(
    config: StrategyConfig, updates: Sequence[ClientUpdate], start: Tensors, compute: Compute | None
) -> AggregationResult:
    if config.name in ("fedavg", *SERVER_OPTIMIZERS):
        equal = {u.node: 1.0 for u in updates} if config.weighting == "equal" else None
        return fedavg(updates, weights=equal, compute=compute)
    if config.name == "clip":
        return clipped_fedavg(updates, reference=start, max_norm=config.clip_norm, compute=compute)
    if config.name == "median":
        return coordinate_median(updates, compute=compute)
    if config.name == "trimmed-mean":
        return trimmed_mean(updates, trim_ratio=config.trim_ratio, compute=compute)
    if config.name == "krum":
        select = config.krum_select or max(1, len(updates) - config.byzantine)
        return krum(
            updates, byzantine=config.byzantine, select=min(select, len(updates)), compute=compute
        )
    raise ConfigError(f"unknown strategy {config.name!r}")  # pragma: no cover - Literal guards it
