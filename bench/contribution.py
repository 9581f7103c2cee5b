"""What contribution scoring costs next to a round (``loraledger bench contribution``).

Each point is one round of the real demo (chain, store, ``N`` nodes training one after another
on one machine, three validators scoring, the aggregator aggregating) on SmolLM2-135M or the
tiny model. Scoring is a validator's work (docs/accountability.md), so the baseline is measured
on the same round: the nodes' training, one validator's verification (every check, each update
alone and the start adapter evaluated on its held-out data: its score sheet under the examples
rule) and the aggregator's aggregation. Scoring is what the contribution rule adds to that
validator's sheet: one evaluation of the aggregate of every update and one leave-one-out
aggregate per update (:mod:`aggregator.contribution`), timed as the difference of the two sheets
made on the round's inputs after the demo round.

Printed per node count: each phase's seconds, the ratio ``score / (train + verify +
aggregate)`` against the target (at most 0.25), and the scoring seconds per node, which stay
flat when the cost grows linearly in nodes. Validators work side by side, so one validator's
time is what they add to the round.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aggregator.combine import StrategyConfig
from aggregator.round import RoundRunner, RoundSettings
from chain.bindings import Ledger
from chain.events import History
from chain.network import Chain, connect, dev_account
from chain.session import Session
from demo.run import DemoConfig, DemoResult, run_demo
from fl_node.data import sample_examples
from fl_node.evaluate import AdapterEvaluator
from fl_node.model import LoadedModel
from ipfs import ContentStore, open_store

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
    """One demo round per node count (embedded chain and store, FedAvg, rank 8), with one
    validator's work on it timed by phase (:func:`validator_seconds`)."""
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
            out = Path(tmp) / f"nodes-{count}"
            result = run_demo(chain, store, model, config, out)
            (summary,) = result.rounds
            verify, score = validator_seconds(chain, store, model, config, result, out / "bench")
            point = Point(count, summary.train_seconds, verify, score, summary.aggregate_seconds)
            on_point(point)
            points.append(point)
    return points


def validator_seconds(
    chain: Chain,
    store: ContentStore,
    model: LoadedModel,
    config: DemoConfig,
    result: DemoResult,
    work_dir: Path,
) -> tuple[float, float]:
    """``(verify, score)`` seconds of one validator on round 1 of the demo ``result``, on
    ``config.validation_examples`` held-out examples of the bundled data: its sheet under the
    examples rule (verification), and what its sheet under the contribution rule takes more
    (scoring). Made with the demo's aggregator account (it may read and assess the round; the
    sheets are not posted)."""
    ledger = Ledger(chain, result.ledger)
    account = dev_account(chain.network, 1)
    if account.address != result.parties[0].address:  # pragma: no cover - demo.run's layout
        raise RuntimeError("the demo's aggregator is not dev account 1")
    session = Session(ledger, History(ledger), store, account, state_root=work_dir)
    settings = RoundSettings(strategy=StrategyConfig(name=config.strategy))  # type: ignore[arg-type]
    runner = RoundRunner(session, result.task_id, settings)
    inputs = runner.inputs(1, ledger.round(result.task_id, 1).reveals)
    held_out = sample_examples()[: config.validation_examples]
    evaluator = AdapterEvaluator(model, held_out, max_length=config.max_length)
    began = time.perf_counter()
    runner.assess(inputs, evaluator, "examples")
    verified = time.perf_counter()
    runner.assess(inputs, evaluator, "contribution")
    scored = time.perf_counter()
    verify = verified - began
    return verify, max(scored - verified - verify, 0.0)
