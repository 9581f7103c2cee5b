"""What contribution scoring costs next to a round (``loraledger bench contribution``).

Each point is one round of the real demo (chain, store, ``N`` nodes training one after another
on one machine, the aggregator verifying, scoring and aggregating) on SmolLM2-135M or the tiny
model. The baseline is measured in the same round: the nodes' training plus the aggregator's
verification (which already evaluates every update alone, the start adapter and the global
adapter on its validation data) and aggregation. Scoring adds one evaluation of the aggregate
of every update and one leave-one-out aggregate per update (:mod:`aggregator.contribution`).

Printed per node count: each phase's seconds, the ratio ``score / (train + verify +
aggregate)`` against the target (at most 0.25), and the scoring seconds per node, which stay
flat when the cost grows linearly in nodes. The global adapter's evaluation is reused from the
scoring when every update is kept, so the ratio counts it on the scoring side (conservative).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chain.network import connect
from demo.run import DemoConfig, run_demo
from fl_node.model import LoadedModel
from ipfs import open_store

TARGET_RATIO = 0.25


@dataclass(frozen=True)
class Point:
    """One round at ``nodes`` nodes: seconds per phase."""

    nodes: int
    train_seconds: float
    verify_seconds: float
    score_seconds: float
    aggregate_seconds: float

    @property
    def baseline_seconds(self) -> float:
        return self.train_seconds + self.verify_seconds + self.aggregate_seconds

    @property
    def ratio(self) -> float:
        """Scoring's share added to the round: ``score / (train + verify + aggregate)``."""
        return self.score_seconds / self.baseline_seconds if self.baseline_seconds else 0.0

    @property
    def score_per_node(self) -> float:
        return self.score_seconds / self.nodes

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ratio": self.ratio,
            "score_per_node": self.score_per_node,
            "target_ratio": TARGET_RATIO,
        }


def measure(
    counts: Sequence[int],
    model: LoadedModel,
    *,
    steps: int,
    validation_examples: int = 32,
    tiny: bool = False,
    on_point: Callable[[Point], None] = lambda point: None,
) -> list[Point]:
    """One demo round per node count (embedded chain and store, FedAvg, rank 8)."""
    shape: dict[str, Any] = (
        {"task_rank": 4, "ranks": (4,), "max_length": 64, "batch_size": 2, "learning_rate": 5e-3}
        if tiny
        else {"task_rank": 8, "ranks": (8,)}
    )
    chain = connect("embedded")
    points = []
    with tempfile.TemporaryDirectory(prefix="loraledger-bench-contribution-") as tmp:
        store = open_store(f"embedded:{Path(tmp) / 'store'}")
        for count in counts:
            config = DemoConfig(
                nodes=count,
                rounds=1,
                steps=steps,
                strategy="fedavg",
                validation_examples=validation_examples,
                **shape,
            )
            result = run_demo(chain, store, model, config, Path(tmp) / f"nodes-{count}")
            (summary,) = result.rounds
            point = Point(
                count,
                summary.train_seconds,
                summary.verify_seconds,
                summary.score_seconds,
                summary.aggregate_seconds,
            )
            on_point(point)
            points.append(point)
    return points
