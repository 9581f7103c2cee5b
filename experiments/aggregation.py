"""The aggregator's strategies as :data:`~experiments.runner.Aggregate` functions,
and the poisons a malicious node applies to its update.

Each function only adapts the call: the maths is :mod:`aggregator`'s, unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from aggregator.client_update import ClientUpdate
from aggregator.flexlora import HeteroResult, RankTarget, flexlora, zero_pad
from aggregator.robust import clipped_fedavg, coordinate_median, krum, trimmed_mean
from aggregator.strategies import AggregationResult, fedavg
from experiments.runner import Aggregate, Poison, Tensors
from loraledger.errors import ConfigError
from loraledger.update import PeftSpec

RobustName = Literal["fedavg", "clipped", "median", "trimmed-mean", "krum"]
ROBUST: tuple[RobustName, ...] = ("fedavg", "clipped", "median", "trimmed-mean", "krum")
AttackName = Literal["scale", "sign-flip", "noise"]
ATTACKS: tuple[AttackName, ...] = ("scale", "sign-flip", "noise")


def _only(current: Mapping[PeftSpec, Tensors]) -> PeftSpec:
    if len(current) != 1:
        raise ConfigError(f"this strategy needs one LoRA rank, the round has {len(current)}")
    return next(iter(current))


def homogeneous(strategy: RobustName, *, byzantine: int = 0, trim_ratio: float = 0.25) -> Aggregate:
    """FedAvg by examples or a robust rule, for nodes that all train the same LoRA shape.

    ``byzantine`` is Krum's ``f`` (it keeps the ``n - f`` best-scored updates: Multi-Krum);
    ``trim_ratio`` the share trimmed at each end by the trimmed mean.
    """

    def aggregate(
        updates: Sequence[ClientUpdate], current: Mapping[PeftSpec, Tensors]
    ) -> dict[PeftSpec, Tensors]:
        spec = _only(current)
        result: AggregationResult
        if strategy == "fedavg":
            result = fedavg(updates)
        elif strategy == "clipped":
            result = clipped_fedavg(updates, reference=current[spec])
        elif strategy == "median":
            result = coordinate_median(updates)
        elif strategy == "trimmed-mean":
            result = trimmed_mean(updates, trim_ratio=trim_ratio)
        elif strategy == "krum":
            f = min(byzantine, max(0, (len(updates) - 3) // 2))
            result = krum(updates, byzantine=f, select=max(1, len(updates) - f))
        else:
            raise ConfigError(f"unknown strategy {strategy!r}", hint=f"choose from {ROBUST}")
        return {spec: result.tensors}

    return aggregate


def heterogeneous(method: Literal["flexlora", "zero-pad"]) -> Aggregate:
    """FlexLoRA or zero-padding: one global adapter per LoRA rank present in the round."""

    def aggregate(
        updates: Sequence[ClientUpdate], current: Mapping[PeftSpec, Tensors]
    ) -> dict[PeftSpec, Tensors]:
        targets = {spec: RankTarget(spec.rank, spec.alpha) for spec in current}
        run = flexlora if method == "flexlora" else zero_pad
        result: HeteroResult = run(updates, targets.values())
        return {spec: result.adapters[target] for spec, target in targets.items()}

    return aggregate


@dataclass(frozen=True)
class Attack:
    """A poisoned node's update: its change from the round's global adapter is scaled by
    ``factor`` (``scale``), by ``-factor`` (``sign-flip``), or replaced by Gaussian noise
    ``factor`` times its norm (``noise``)."""

    kind: AttackName
    factor: float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise ConfigError(f"attack must be one of {ATTACKS}, got {self.kind!r}")
        if not (self.factor > 0 and math.isfinite(self.factor)):
            raise ConfigError(f"attack factor must be positive, got {self.factor}")

    def poison(self, index: int) -> Poison:
        """The poison of the ``index``-th malicious node (its own noise seed)."""

        def apply(update: Tensors, reference: Tensors) -> Tensors:
            generator = torch.Generator().manual_seed(self.seed * 7919 + index)
            out: Tensors = {}
            for key, value in update.items():
                delta = value.float() - reference[key].float()
                if self.kind == "scale":
                    bad = delta * self.factor
                elif self.kind == "sign-flip":
                    bad = delta * -self.factor
                else:
                    noise = torch.randn(delta.shape, generator=generator)
                    bad = noise * (self.factor * delta.norm() / max(noise.norm().item(), 1e-12))
                out[key] = (reference[key].float() + bad).to(value.dtype)
            return out

        return apply
