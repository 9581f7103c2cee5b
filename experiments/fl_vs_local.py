"""Experiment 1: federated vs each node alone vs centralized vs personalized training.

The claim checked: across the nodes' held-out sets, the federated model has a lower mean
and standard deviation of eval loss than nodes training alone, and centralized training
reaches the lowest single value. Federated, local and centralized see the same total number
of optimizer steps: ``nodes x rounds x steps`` (each local node ``rounds x steps``;
centralized ``nodes x steps`` per round on the pooled data). *Personalized* is the federated
model fine-tuned by each node on its own training data for ``personalize_steps`` more steps
(:func:`~experiments.runner.run_personalized`; kept by the node, never sent).

Every approach is scored twice: on each node's own held-out split, and on a pooled test set
drawn from all nodes' data that no node trains on (:func:`~experiments.config.split_data`),
which measures generalization beyond a node's own topics. The experiment runs once per seed
of ``config.seeds``; figures are means over seeds with 95% intervals (:mod:`.stats`), and
the claims are read on the means, saying whether the intervals separate.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from experiments.aggregation import homogeneous
from experiments.config import (
    ExperimentConfig,
    environment,
    load_model,
    participants,
    split_data,
)
from experiments.report import Report, Series, bar_plot, line_plot
from experiments.runner import (
    Hooks,
    RunResult,
    run_centralized,
    run_federated,
    run_local,
    run_personalized,
    score,
)
from experiments.seeds import Seeded, band_note, by_key
from experiments.stats import comparison
from fl_node.model import LoadedModel
from loraledger.errors import ConfigError

NAME = "fl-vs-local"
APPROACHES = ("federated", "local", "centralized", "personalized")
DEFAULT_POOLED_EXAMPLES = 64
DEFAULT_PERSONALIZE_STEPS = 5


def planned_steps(config: ExperimentConfig, personalize_steps: int) -> int:
    per_seed = 3 * config.nodes * config.rounds * config.steps + config.nodes * personalize_steps
    return len(config.seeds) * per_seed


@dataclass(frozen=True)
class SeedRuns:
    """One seed's runs: on the nodes' own held-out splits and on the pooled test set (two
    rows: the base model, then each node's final model), and the examples per node."""

    own: dict[str, RunResult]
    pooled: dict[str, RunResult]
    train_examples: tuple[int, ...]
    eval_examples: tuple[int, ...]


def run_seed(
    model: LoadedModel, config: ExperimentConfig, personalize_steps: int, hooks: Hooks | None
) -> SeedRuns:
    """The four approaches with ``config``'s one seed."""
    split = split_data(config)
    members = participants(config, split.nodes)
    fedavg = homogeneous("fedavg")
    federated = run_federated("federated", model, config, members, fedavg, hooks=hooks)
    local = run_local(model, config, members, fedavg, hooks=hooks)
    central = run_centralized(model, config, members, fedavg, hooks=hooks)
    personal = run_personalized(
        model, config, members, federated, fedavg, steps=personalize_steps, hooks=hooks
    )
    own = {r.label: r for r in (federated, local, central, personal)}
    base = run_federated(
        "base model", model, config, members[:1], fedavg, rounds=0, eval_sets=[("", split.pooled)]
    ).final[0]
    pooled = {
        label: replace(r, curve=((base,) * len(r.nodes), score(model, config, r, split.pooled)))
        for label, r in own.items()
    }
    return SeedRuns(
        own,
        pooled,
        tuple(len(m.data.train) for m in members),
        tuple(len(m.data.eval) for m in members),
    )


def run(
    config: ExperimentConfig,
    out: Path,
    command: str,
    hooks: Hooks | None = None,
    *,
    personalize_steps: int = DEFAULT_PERSONALIZE_STEPS,
) -> Report:
    """Train the four ways per seed; write ``results.md``/``results.json``/plots under ``out``."""
    if config.pooled_examples < 1:
        raise ConfigError(
            "fl-vs-local scores every approach on a pooled test set: pooled_examples must be "
            f"positive, got {config.pooled_examples}"
        )
    if personalize_steps < 0:
        raise ConfigError(f"personalize steps must be >= 0, got {personalize_steps}")
    with tempfile.TemporaryDirectory(prefix="loraledger-experiment-") as tmp:
        model = load_model(config, Path(tmp))
        per_seed = [
            run_seed(model, config.for_seed(s), personalize_steps, hooks) for s in config.seeds
        ]
    own = by_key(config.seeds, [s.own for s in per_seed])
    pooled = by_key(config.seeds, [s.pooled for s in per_seed])
    nodes = own["federated"].runs[0].nodes
    claims = _claims(own, pooled)

    report = Report(
        experiment=NAME,
        title="Federated vs local vs centralized vs personalized training",
        command=command,
        config=config.to_json() | {"personalize_steps": personalize_steps},
        environment=environment(),
        summary=_verdict(own, pooled),
    )
    report.add_table(
        "Eval loss across the nodes' own held-out splits (after the last round)",
        ["approach", "mean", "std", "min", "max", "optimizer steps per seed", "seconds per seed"],
        [[r.label, r.mean, r.std, r.min, r.max, r.steps, f"{r.seconds:.1f}"] for r in own.values()],
    )
    report.add_table(
        f"Eval loss on the pooled test set ({config.pooled_examples} examples from all nodes' "
        "data, none trained on; each node's final model)",
        ["approach", "mean", "std", "min", "max"],
        [[r.label, r.mean, r.std, r.min, r.max] for r in pooled.values()],
    )
    report.add_table(
        "Per node, own held-out split",
        [
            "node",
            "train examples",
            "held-out examples",
            "base model",
            *APPROACHES,
        ],
        [
            [
                name,
                _mean([s.train_examples[i] for s in per_seed]),
                _mean([s.eval_examples[i] for s in per_seed]),
                own["federated"].node(i, row=0),
                *(own[a].node(i) for a in APPROACHES),
            ]
            for i, name in enumerate(nodes)
        ],
    )
    over_rounds = [own[a] for a in ("federated", "local", "centralized")]
    report.add_table(
        "Mean eval loss per round, own held-out splits",
        ["round", *(r.label for r in over_rounds)],
        [[k, *(r.mean_curve()[k] for r in over_rounds)] for k in range(config.rounds + 1)],
    )
    rounds = list(range(config.rounds + 1))
    line_plot(
        out / "loss_per_round.png",
        [Series(r.label, rounds, r.mean_curve()) for r in over_rounds],
        title="Mean held-out loss across nodes",
        xlabel="round",
    )
    bar_plot(
        out / "loss_per_node.png",
        list(nodes),
        {a: [own[a].node(i) for i in range(len(nodes))] for a in APPROACHES},
        title="Held-out loss per node after the last round",
    )
    bar_plot(
        out / "loss_own_vs_pooled.png",
        list(APPROACHES),
        {
            "own held-out splits": [own[a].mean for a in APPROACHES],
            "pooled test set": [pooled[a].mean for a in APPROACHES],
        },
        title="Mean loss across nodes: own splits vs pooled test set",
    )
    report.plots += [
        ("loss_per_round.png", "mean held-out loss per round"),
        ("loss_per_node.png", "held-out loss per node"),
        ("loss_own_vs_pooled.png", "mean loss on own splits and on the pooled test set"),
    ]
    report.notes += [
        band_note(config.seeds),
        (
            "Intervals that separate are a conservative test: each interval carries the spread "
            "between seeds (shards, initialisation), which the approaches share within a seed; "
            "results.json has the per-seed values for a paired comparison."
        ),
        (
            "Each node is evaluated on its own held-out split: federated and centralized with the "
            "one shared model, local and personalized with the node's own model. std is the "
            "population standard deviation across nodes."
        ),
        (
            f"The pooled test set: {config.pooled_examples} distinct examples drawn (seeded) from "
            "the data before it is split over the nodes; every copy of them is taken out of the "
            "nodes' data, so no node trains on one. On it, federated and centralized are one model "
            "each (std 0 by construction), so the std claim is only read on the own splits."
        ),
        (
            "Same total optimizer steps for federated, local and centralized; AdamW restarts every "
            "round, as on the platform (each round is one `train_round` call). Personalized: the "
            f"final global adapter fine-tuned by each node for {personalize_steps} more steps on "
            "its own training data (a round kept local, never sent)."
        ),
        (
            f"Shards: the bundled chatterbot corpus split '{config.split}' over {config.nodes} "
            f"nodes ({'IID' if config.split == 'iid' else 'non-IID by topic'})."
        ),
    ]
    report.data = {
        "own": {label: r.to_json() for label, r in own.items()},
        "pooled": {label: r.to_json() for label, r in pooled.items()},
        "claims": claims,
    }
    report.write(out)
    return report


def _mean(values: list[int]) -> float:
    return round(sum(values) / len(values), 1)


Claim = tuple[str, str, Seeded, Seeded, str]
"""(key, the claim, the approach claimed lower, the one it is compared with, the figure)."""


def _claim_list(runs: Mapping[str, Seeded], where: str) -> list[Claim]:
    fed, loc, cen, per = (runs[a] for a in APPROACHES)
    lowest_other = fed if fed.min.mean <= loc.min.mean else loc
    out: list[Claim] = [
        ("federated_mean_below_local", "federated mean lower", fed, loc, "mean"),
    ]
    if where == "own":
        out.append(("federated_std_below_local", "federated std lower", fed, loc, "std"))
    out += [
        ("centralized_min_lowest", "centralized lowest single value", cen, lowest_other, "min"),
        ("personalized_mean_below_federated", "personalized mean lower", per, fed, "mean"),
        ("personalized_mean_below_local", "personalized mean lower", per, loc, "mean"),
    ]
    return out


def _claims(
    own: Mapping[str, Seeded], pooled: Mapping[str, Seeded]
) -> dict[str, dict[str, dict[str, bool | None]]]:
    """Per test set, per claim: whether it holds on the means, and whether the intervals
    separate (``None`` with one seed)."""
    out: dict[str, dict[str, dict[str, bool | None]]] = {}
    for where, runs in (("own", own), ("pooled", pooled)):
        out[where] = {}
        for key, _text, a, b, figure in _claim_list(runs, where):
            x, y = getattr(a, figure), getattr(b, figure)
            out[where][key] = {"holds": x.mean < y.mean, "intervals_separate": x.separated_from(y)}
    return out


def _verdict(own: Mapping[str, Seeded], pooled: Mapping[str, Seeded]) -> str:
    lines = []
    for where, runs, heading in (
        ("own", own, "On each node's own held-out split"),
        ("pooled", pooled, "On the pooled test set"),
    ):
        lines.append(f"{heading}:")
        for _key, text, a, b, figure in _claim_list(runs, where):
            x, y = getattr(a, figure), getattr(b, figure)
            says = "agrees" if x.mean < y.mean else "**disagrees**"
            lines.append(
                f"- {a.label} {figure} {x.mean:.4f} vs {b.label} {y.mean:.4f}: {says} with the "
                f"claim ({text}); {comparison(x, y, a.label, b.label)}."
            )
        lines.append("")
    return "\n".join(lines).rstrip()
