"""Experiment 3: heterogeneous LoRA ranks: FlexLoRA vs zero-padding vs all at the smallest.

Nodes train the ranks given (cycled over the nodes, alpha = 2 x rank). FlexLoRA and
zero-padding publish one global adapter per rank (:mod:`aggregator.flexlora`); the
baseline has every node train the smallest rank, averaged with FedAvg. Each node is
evaluated with the global adapter of its own rank. One run per seed; figures are means over
the seeds with 95% intervals.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from experiments.aggregation import heterogeneous, homogeneous
from experiments.config import (
    ExperimentConfig,
    Participant,
    environment,
    load_model,
    node_shards,
    participants,
)
from experiments.report import Report, Series, line_plot
from experiments.runner import Aggregate, Hooks, RunResult, TrainingCache, run_federated
from experiments.seeds import band_note, by_key
from experiments.stats import mean_interval
from loraledger.errors import ConfigError

NAME = "ranks"
DEFAULT_RANKS = (2, 4, 8)


def planned_steps(config: ExperimentConfig) -> int:
    return len(config.seeds) * 3 * config.nodes * config.rounds * config.steps


def run(
    config: ExperimentConfig,
    ranks: Sequence[int],
    out: Path,
    command: str,
    hooks: Hooks | None = None,
) -> Report:
    """The three ways of handling heterogeneous ranks, same shards and seeds."""
    if not ranks or min(ranks) < 1:
        raise ConfigError(f"ranks must be positive, got {list(ranks)}")
    per_node = [ranks[i % len(ranks)] for i in range(config.nodes)]
    per_seed: list[dict[str, RunResult]] = []
    with tempfile.TemporaryDirectory(prefix="loraledger-experiment-") as tmp:
        model = load_model(config, Path(tmp))
        for seed in config.seeds:
            seeded = config.for_seed(seed)
            shards = node_shards(seeded)
            mixed = participants(seeded, shards, per_node)
            smallest = participants(seeded, shards, [min(ranks)] * config.nodes)
            cache = TrainingCache()  # round 1 is the same training for all three methods
            methods: list[tuple[str, list[Participant], Aggregate]] = [
                ("FlexLoRA", mixed, heterogeneous("flexlora")),
                ("zero-padding", mixed, heterogeneous("zero-pad")),
                (f"all at rank {min(ranks)}", smallest, homogeneous("fedavg")),
            ]
            per_seed.append(
                {
                    label: run_federated(
                        label, model, seeded, members, aggregate, hooks=hooks, cache=cache
                    )
                    for label, members, aggregate in methods
                }
            )
    runs = list(by_key(config.seeds, per_seed).values())
    report = Report(
        experiment=NAME,
        title="Heterogeneous LoRA ranks",
        command=command,
        config=config.to_json() | {"ranks": list(ranks), "rank_per_node": per_node},
        environment=environment(),
        summary=f"Node ranks {per_node}; eval loss across the nodes' held-out sets.",
    )
    distinct = sorted(set(per_node))
    report.add_table(
        "Eval loss after the last round",
        ["method", "mean", "std", "min", *(f"mean at rank {r}" for r in distinct)],
        [
            [
                r.label,
                r.mean,
                r.std,
                r.min,
                *(
                    mean_interval([_mean_at(one, per_node, rank) for one in r.runs])
                    for rank in distinct
                ),
            ]
            for r in runs
        ],
    )
    rounds = list(range(config.rounds + 1))
    report.add_table(
        "Mean eval loss per round",
        ["round", *(r.label for r in runs)],
        [[k, *(r.mean_curve()[k] for r in runs)] for k in rounds],
    )
    line_plot(
        out / "loss_per_round.png",
        [Series(r.label, rounds, r.mean_curve()) for r in runs],
        title="Heterogeneous ranks: mean held-out loss across nodes",
        xlabel="round",
    )
    report.plots.append(("loss_per_round.png", "mean held-out loss per round by method"))
    report.notes.append(band_note(config.seeds))
    report.data = {r.label: r.to_json() for r in runs}
    report.write(out)
    return report


def _mean_at(run: RunResult, per_node: Sequence[int], rank: int) -> float:
    """The mean final loss of the nodes at ``rank``."""
    return statistics.fmean(x for x, k in zip(run.final, per_node, strict=True) if k == rank)
