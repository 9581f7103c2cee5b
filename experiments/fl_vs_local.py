"""Experiment 1: federated vs each node alone vs centralized training on the pooled data.

The claim checked: across the nodes' held-out sets, the federated model has a lower mean
and standard deviation of eval loss than nodes training alone, and centralized training
reaches the lowest single value. All three see the same total number of optimizer steps:
``nodes x rounds x steps`` (each local node ``rounds x steps``; centralized
``nodes x steps`` per round on the pooled data).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from experiments.aggregation import homogeneous
from experiments.config import (
    ExperimentConfig,
    environment,
    load_model,
    node_shards,
    participants,
)
from experiments.report import Report, Series, bar_plot, line_plot
from experiments.runner import (
    Hooks,
    RunResult,
    run_centralized,
    run_federated,
    run_local,
)

NAME = "fl-vs-local"


def planned_steps(config: ExperimentConfig) -> int:
    return 3 * config.nodes * config.rounds * config.steps


def run(config: ExperimentConfig, out: Path, command: str, hooks: Hooks | None = None) -> Report:
    """Train the three ways, write ``results.md``/``results.json``/plots under ``out``."""
    with tempfile.TemporaryDirectory(prefix="loraledger-experiment-") as tmp:
        model = load_model(config, Path(tmp))
        members = participants(config, node_shards(config))
        fedavg = homogeneous("fedavg")
        federated = run_federated("federated", model, config, members, fedavg, hooks=hooks)
        local = run_local(model, config, members, fedavg, hooks=hooks)
        central = run_centralized(model, config, members, fedavg, hooks=hooks)
    runs = [federated, local, central]

    report = Report(
        experiment=NAME,
        title="Federated vs local vs centralized training",
        command=command,
        config=config.to_json(),
        environment=environment(),
        summary=_verdict(federated, local, central),
    )
    report.add_table(
        "Eval loss across the nodes' held-out sets (after the last round)",
        ["approach", "mean", "std", "min", "max", "optimizer steps", "seconds"],
        [[r.label, r.mean, r.std, r.min, r.max, r.steps, f"{r.seconds:.1f}"] for r in runs],
    )
    report.add_table(
        "Per node",
        [
            "node",
            "train examples",
            "held-out examples",
            "base model",
            "federated",
            "local",
            "centralized",
        ],
        [
            [
                m.name,
                len(m.data.train),
                len(m.data.eval),
                federated.curve[0][i],
                federated.final[i],
                local.final[i],
                central.final[i],
            ]
            for i, m in enumerate(members)
        ],
    )
    report.add_table(
        "Mean eval loss per round",
        ["round", *(r.label for r in runs)],
        [[k, *(r.mean_curve()[k] for r in runs)] for k in range(config.rounds + 1)],
    )
    rounds = list(range(config.rounds + 1))
    line_plot(
        out / "loss_per_round.png",
        [Series(r.label, rounds, r.mean_curve()) for r in runs],
        title="Mean held-out loss across nodes",
        xlabel="round",
    )
    bar_plot(
        out / "loss_per_node.png",
        [m.name for m in members],
        {r.label: list(r.final) for r in runs},
        title="Held-out loss per node after the last round",
    )
    report.plots += [
        ("loss_per_round.png", "mean held-out loss per round"),
        ("loss_per_node.png", "held-out loss per node"),
    ]
    report.notes += [
        (
            "Each node is evaluated on its own held-out split: federated and centralized with the "
            "one shared model, local with the node's own model. std is the population standard "
            "deviation across nodes."
        ),
        (
            "Same total optimizer steps for the three approaches; AdamW restarts every round, "
            "as on the platform (each round is one `train_round` call)."
        ),
        (
            f"Shards: the bundled chatterbot corpus split '{config.split}' over {config.nodes} "
            f"nodes ({'IID' if config.split == 'iid' else 'non-IID by topic'})."
        ),
    ]
    report.data = {r.label: r.to_json() for r in runs} | {
        "claims": _claims(federated, local, central)
    }
    report.write(out)
    return report


def _claims(federated: RunResult, local: RunResult, central: RunResult) -> dict[str, bool]:
    return {
        "federated_mean_below_local": federated.mean < local.mean,
        "federated_std_below_local": federated.std < local.std,
        "centralized_min_lowest": central.min < min(federated.min, local.min),
    }


def _verdict(federated: RunResult, local: RunResult, central: RunResult) -> str:
    claims = _claims(federated, local, central)

    def says(ok: bool) -> str:
        return "agrees" if ok else "**disagrees**"

    return "\n".join(
        [
            (
                f"- Federated mean {federated.mean:.4f} vs local {local.mean:.4f}: "
                f"{says(claims['federated_mean_below_local'])} with the claim (federated lower)."
            ),
            (
                f"- Federated std {federated.std:.4f} vs local {local.std:.4f}: "
                f"{says(claims['federated_std_below_local'])} with the claim (federated lower)."
            ),
            (
                f"- Lowest single value: centralized {central.min:.4f}, federated "
                f"{federated.min:.4f}, local {local.min:.4f}: "
                f"{says(claims['centralized_min_lowest'])} with the claim (centralized lowest)."
            ),
        ]
    )
