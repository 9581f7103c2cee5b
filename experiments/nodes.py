"""Experiment 2: the number of nodes (2, 4, 8, 16, 32) over the same total data.

The bundled corpus (or its ``--examples`` subset) is split over each number of nodes, so
more nodes means less data per node; every node trains ``steps`` per round, as a node of
the platform does. Reported per round: the federated model's mean held-out loss across
the nodes' own held-out sets, as the mean over the seeds with its 95% interval.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

from experiments.aggregation import homogeneous
from experiments.config import (
    ExperimentConfig,
    environment,
    load_model,
    node_shards,
    participants,
)
from experiments.report import Report, Series, line_plot
from experiments.runner import Hooks, RunResult, run_federated
from experiments.seeds import band_note, by_key
from loraledger.errors import ConfigError

NAME = "nodes"
DEFAULT_COUNTS = (2, 4, 8, 16, 32)


def planned_steps(config: ExperimentConfig, counts: Sequence[int]) -> int:
    return len(config.seeds) * sum(counts) * config.rounds * config.steps


def run(
    config: ExperimentConfig,
    counts: Sequence[int],
    out: Path,
    command: str,
    hooks: Hooks | None = None,
) -> Report:
    """One federation per node count; convergence per round."""
    if not counts or min(counts) < 1:
        raise ConfigError(f"node counts must be positive, got {list(counts)}")
    per_seed: list[dict[int, RunResult]] = []
    per_node: dict[int, list[float]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="loraledger-experiment-") as tmp:
        model = load_model(config, Path(tmp))
        for seed in config.seeds:
            runs: dict[int, RunResult] = {}
            for n in counts:
                seeded = config.for_seed(seed).with_nodes(n)
                members = participants(seeded, node_shards(seeded, n))
                per_node[n].append(sum(len(m.data.train) for m in members) / n)
                runs[n] = run_federated(
                    f"{n} nodes", model, seeded, members, homogeneous("fedavg"), hooks=hooks
                )
            per_seed.append(runs)
    results = by_key(config.seeds, per_seed)
    report = Report(
        experiment=NAME,
        title="Number of nodes, same total data",
        command=command,
        config=config.to_json() | {"node_counts": list(counts)},
        environment=environment(),
        summary="Mean held-out loss of the federated model across the nodes, per round.",
    )
    rounds = list(range(config.rounds + 1))
    report.add_table(
        "Mean eval loss per round",
        [
            "nodes",
            "train examples per node",
            *(f"round {k}" for k in rounds),
            "final std",
            "final min",
        ],
        [
            [n, round(statistics.fmean(per_node[n]), 1), *r.mean_curve(), r.std, r.min]
            for n, r in results.items()
        ],
    )
    line_plot(
        out / "loss_per_round.png",
        [Series(r.label, rounds, r.mean_curve()) for r in results.values()],
        title="Federated model, mean held-out loss across nodes",
        xlabel="round",
    )
    report.plots.append(("loss_per_round.png", "mean held-out loss per round by number of nodes"))
    report.notes += [
        band_note(config.seeds),
        "Every node trains the same steps per round, so a round of more nodes does more "
        "optimizer steps in total over less data per node.",
    ]
    report.data = {
        str(n): r.to_json() | {"train_examples_per_node": statistics.fmean(per_node[n])}
        for n, r in results.items()
    }
    report.write(out)
    return report
