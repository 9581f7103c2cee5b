"""Experiment 4: robustness to poisoned nodes, FedAvg vs the robust strategies.

Of ``nodes`` nodes, the last ``k`` (for each ``k`` in the poisoned counts) send a poisoned
update (:class:`~experiments.aggregation.Attack`) instead of what they trained.
Every strategy of :mod:`aggregator.robust` runs on the same shards and seeds; the figure
of merit is the global model's mean held-out loss over the *honest* nodes. Krum keeps the
``n - f`` best-scored updates (Multi-Krum) with ``f`` the largest poisoned count. One run
per seed (the attack's noise seeded by it too); figures are means over the seeds with 95%
intervals.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from experiments.aggregation import ROBUST, Attack, RobustName, homogeneous
from experiments.config import (
    ExperimentConfig,
    environment,
    load_model,
    node_shards,
    participants,
)
from experiments.report import Report, bar_plot
from experiments.runner import Hooks, RunResult, TrainingCache, run_federated
from experiments.seeds import band_note, by_key
from loraledger.errors import ConfigError

NAME = "robustness"


def planned_steps(
    config: ExperimentConfig, poisoned: Sequence[int], strategies: Sequence[str]
) -> int:
    per_seed = len(poisoned) * len(strategies) * config.nodes * config.rounds * config.steps
    return len(config.seeds) * per_seed


def run(
    config: ExperimentConfig,
    poisoned: Sequence[int],
    strategies: Sequence[RobustName],
    attack: Attack,
    out: Path,
    command: str,
    hooks: Hooks | None = None,
) -> Report:
    """Every strategy against every poisoned count."""
    if not poisoned or min(poisoned) < 0 or max(poisoned) >= config.nodes:
        raise ConfigError(
            f"poisoned counts must be between 0 and {config.nodes - 1}, got {list(poisoned)}"
        )
    unknown = [s for s in strategies if s not in ROBUST]
    if not strategies or unknown:
        raise ConfigError(f"unknown strategies {unknown}", hint=f"choose from {list(ROBUST)}")
    byzantine = max(poisoned)
    per_seed: list[dict[tuple[str, int], RunResult]] = []
    with tempfile.TemporaryDirectory(prefix="loraledger-experiment-") as tmp:
        model = load_model(config, Path(tmp))
        for seed in config.seeds:
            seeded = config.for_seed(seed)
            threat = replace(attack, seed=seed)
            members = participants(seeded, node_shards(seeded))
            cache = TrainingCache()  # round 1 is the same training for every strategy and count
            runs: dict[tuple[str, int], RunResult] = {}
            for k in poisoned:
                bad = {m.name: threat.poison(i) for i, m in enumerate(members[len(members) - k :])}
                for strategy in strategies:
                    runs[(strategy, k)] = run_federated(
                        f"{strategy}, {k} poisoned",
                        model,
                        seeded,
                        members,
                        homogeneous(strategy, byzantine=byzantine),
                        poisoned=bad,
                        hooks=hooks,
                        cache=cache,
                    )
            per_seed.append(runs)
    results = by_key(config.seeds, per_seed)
    base = results[(strategies[0], poisoned[0])].mean_curve()[0]
    report = Report(
        experiment=NAME,
        title="Robustness to poisoned nodes",
        command=command,
        config=config.to_json()
        | {
            "poisoned": list(poisoned),
            "strategies": list(strategies),
            "attack": attack.kind,
            "attack_factor": attack.factor,
            "attack_seed": "the run's seed",
        },
        environment=environment(),
        summary=(
            f"{config.nodes} nodes, the last k poisoned ({attack.kind}, factor {attack.factor}); "
            "mean held-out loss of the global model over the honest nodes after the last round "
            f"(base model: {base.cell()})."
        ),
    )
    report.add_table(
        "Mean eval loss of honest nodes after the last round",
        ["strategy", *(f"{k} poisoned" for k in poisoned)],
        [[s, *(results[(s, k)].mean for k in poisoned)] for s in strategies],
    )
    bar_plot(
        out / "loss_by_strategy.png",
        [f"{k} poisoned" for k in poisoned],
        {s: [results[(s, k)].mean for k in poisoned] for s in strategies},
        title=f"Honest nodes' mean held-out loss ({attack.kind} attack)",
    )
    report.plots.append(("loss_by_strategy.png", "honest nodes' loss by strategy"))
    report.notes.append(band_note(config.seeds))
    report.data = {f"{s}/{k}": r.to_json() for (s, k), r in results.items()}
    report.write(out)
    return report
