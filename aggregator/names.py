"""The aggregation strategies and reward rules by name: torch-free, so configs and command
lines can check a name without loading the maths (:mod:`aggregator.combine` and
:mod:`aggregator.rewards` run them)."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "HETEROGENEOUS",
    "REWARD_RULES",
    "SERVER_OPTIMIZERS",
    "STRATEGIES",
    "RewardRule",
    "StrategyName",
]

StrategyName = Literal[
    "fedavg",
    "fedavgm",
    "fedadam",
    "fedyogi",
    "clip",
    "median",
    "trimmed-mean",
    "krum",
    "flexlora",
    "zero-pad",
]
STRATEGIES: tuple[str, ...] = get_args(StrategyName)
SERVER_OPTIMIZERS = ("fedavgm", "fedadam", "fedyogi")
HETEROGENEOUS = ("flexlora", "zero-pad")  # take updates of any rank directly

RewardRule = Literal["contribution", "examples", "claimed"]
REWARD_RULES: tuple[RewardRule, ...] = get_args(RewardRule)
