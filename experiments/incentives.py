"""Experiment: who gets paid when attackers join, under the old reward rule and the new one.

For every attack of :mod:`demo.attacks` the full demo runs (real chain, store, training,
aggregation, claims and audit) with ``honest`` honest nodes next to the attackers (``sybils``
accounts for the Sybil attack, one otherwise), once with the rules before contribution scoring
(:meth:`aggregator.round.RoundSettings.legacy`: paid by claimed examples, no cap, byte-exact
replay check only, median/MAD norm screening over every update) and once with the new ones.
Two clean runs per rule (only honest nodes) give the reference pay and validation loss:
``honest`` nodes for every attack but ``inflate``, whose attacker trains on a shard of its own
and is compared with the clean run where that shard's node is honest (``honest + 1`` nodes).

Figures per attack and rule: the honest nodes' share of the nodes' pool (each round's reward less
the validators' share, :func:`aggregator.consensus.split_round_pool`), the attackers' share, the
global adapter's validation loss (the validators' median) against the clean run's, and
(``inflate``) what the inflating node earned against what the same node earned claiming its true
count.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator

from aggregator.consensus import split_round_pool
from demo.attacks import ATTACKS, AttackName, parse_attacks
from demo.run import DemoConfig, DemoResult, run_demo
from experiments.config import environment
from experiments.report import Report, bar_plot
from experiments.runner import Hooks
from experiments.stats import Interval, mean_interval
from loraledger.errors import ConfigError
from loraledger.report import RoundReport
from loraledger.settings import Settings

NAME = "incentives"
RULES = ("new", "old")


class IncentivesConfig(Settings):
    """The runs: nodes, rounds and training of each (the demo's settings)."""

    honest: int = 3
    sybils: int = 4
    rounds: int = 2
    steps: int = 4
    tiny: bool = True
    attacks: tuple[AttackName, ...] = ATTACKS
    seeds: tuple[int, ...] = (0,)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(set(value)) != len(value) or min(value) < 0:
            raise ValueError(f"seeds must be distinct and >= 0, got {list(value)}")
        return value


@dataclass(frozen=True)
class Outcome:
    """One run: the nodes' pool (what every node competes for: the rewards less the validators'
    share), what honest nodes and attackers earned, the final validation loss."""

    rule: str
    attack: str
    pool: int
    honest_paid: int
    attackers_paid: int
    attackers_slashed: int
    loss: float | None
    audit_ok: bool
    earned: dict[str, int]
    kinds: dict[str, str]
    alternatives: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def honest_share(self) -> float:
        return self.honest_paid / self.pool if self.pool else 0.0

    @property
    def attackers_share(self) -> float:
        return self.attackers_paid / self.pool if self.pool else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "attack": self.attack,
            "pool": str(self.pool),
            "honest_paid": str(self.honest_paid),
            "attackers_paid": str(self.attackers_paid),
            "attackers_slashed": str(self.attackers_slashed),
            "honest_share": self.honest_share,
            "attackers_share": self.attackers_share,
            "loss": self.loss,
            "audit_ok": self.audit_ok,
            "earned": {k: str(v) for k, v in self.earned.items()},
            "kinds": self.kinds,
            "alternatives": self.alternatives,
        }


Runner = Callable[[DemoConfig, Path], DemoResult]


def demo_runner(tiny: bool, workdir: Path, network: str = "embedded") -> Runner:
    """Runs the demo on one chain (a fresh deployment per run), one store and one model
    (the tiny model built in ``workdir``, or SmolLM2)."""
    from chain.network import connect
    from fl_node.data import sample_examples
    from fl_node.model import ModelConfig, create_tiny_model, load_base_model
    from ipfs import open_store

    chain = connect(network)
    store = open_store(f"embedded:{workdir / 'store'}")
    if tiny:
        corpus = [m.content for e in sample_examples() for m in e.messages]
        folder = create_tiny_model(workdir / "tiny-model", corpus)
        model = load_base_model(ModelConfig(source=str(folder)))
    else:
        model = load_base_model(ModelConfig(source="smollm2"))

    def runner(config: DemoConfig, out: Path) -> DemoResult:
        return run_demo(chain, store, model, config, out)

    return runner


def outcome(rule: str, attack: str, config: DemoConfig, result: DemoResult) -> Outcome:
    nodes_pool, _ = split_round_pool(config.reward_per_round, config.validator_share_bps, True)
    pool = nodes_pool * config.rounds
    honest = sum(n.earned for n in result.nodes if n.kind == "honest")
    attackers = sum(n.earned for n in result.nodes if n.kind != "honest")
    slashed = sum(n.slashed for n in result.nodes if n.kind != "honest")
    return Outcome(
        rule,
        attack,
        pool,
        honest,
        attackers,
        slashed,
        result.rounds[-1].global_eval_loss if result.rounds else None,
        result.audit_ok,
        {n.address: n.earned for n in result.nodes},
        {n.address: n.kind for n in result.nodes},
        alternatives(result),
    )


ALTERNATIVES = ("two-stratum", "leave-one-out", "standalone")


def alternatives(result: DemoResult) -> dict[str, dict[str, float | None]]:
    """What each candidate scoring rule would have paid in this run, from the losses every
    round report publishes (contribution rule only): per rule, the honest nodes' and the
    attackers' share of what was split, and the spread among honest nodes (largest / smallest
    honest pay; 1 is an even split, ``None`` when some honest node got nothing)."""
    kinds = {n.address.lower(): n.kind for n in result.nodes}
    paid: dict[str, dict[str, float]] = {rule: {} for rule in ALTERNATIVES}
    out: dict[str, dict[str, float | None]] = {}
    for path in sorted(Path(result.out_dir, "reports").glob("round-*.json")):
        report = RoundReport.from_bytes(path.read_bytes())
        start, all_loss = (
            report.metrics.get("start_eval_loss"),
            report.metrics.get("scored_eval_loss"),
        )
        if report.params.get("reward_rule") != "contribution" or start is None or all_loss is None:
            return {}
        scored = [s for s in report.submissions if s.score is not None]
        for rule in ALTERNATIVES:
            gains = {}
            for s in scored:
                alone = start - s.eval_loss if s.eval_loss is not None else 0.0
                loo = (s.loss_without - all_loss) if s.loss_without is not None else 0.0
                gain = {"two-stratum": (alone + loo) / 2, "leave-one-out": loo}.get(rule, alone)
                gains[s.node.lower()] = max(0.0, gain)
            total = sum(gains.values())
            for node, gain in gains.items():
                paid[rule][node] = paid[rule].get(node, 0.0) + (gain / total if total else 0.0)
    for rule, shares in paid.items():
        total = sum(shares.values()) or 1.0
        honest = [v for n, v in shares.items() if kinds.get(n) == "honest"]
        honest_pay = [
            shares.get(n.address.lower(), 0.0) for n in result.nodes if n.kind == "honest"
        ]
        out[rule] = {
            "honest": sum(honest) / total,
            "attackers": 1 - sum(honest) / total,
            "honest_spread": (max(honest_pay) / min(honest_pay))
            if honest_pay and min(honest_pay) > 0
            else None,
        }
    return out


def demo_config(
    config: IncentivesConfig,
    rule: str,
    attack: AttackName | Literal["clean+1"] | None,
    seed: int = 0,
) -> DemoConfig:
    """The demo settings of one run with ``seed`` (``attack=None``: a clean run;
    ``"clean+1"`` the clean run that pairs with ``inflate``)."""
    tiny: dict[str, Any] = (
        {"task_rank": 4, "ranks": (4,), "max_length": 64, "batch_size": 2, "learning_rate": 5e-3}
        if config.tiny
        else {"ranks": (8,)}
    )
    nodes, attacks = config.honest, tuple[AttackName, ...]()
    if attack == "clean+1":
        nodes = config.honest + 1
    elif attack is not None:
        count = config.sybils if attack == "sybil" else 1
        attacks = (attack,) * count
    return DemoConfig(
        nodes=nodes,
        rounds=config.rounds,
        malicious=len(attacks),
        attacks=attacks,
        legacy_rewards=rule == "old",
        steps=config.steps,
        strategy="fedavg",
        seed=seed,
        **tiny,
    )


def run(
    config: IncentivesConfig,
    runner: Runner,
    out: Path,
    command: str,
    hooks: Hooks | None = None,
) -> Report:
    """Every attack under both rules, plus the clean references; writes the report to ``out``."""
    unknown = [a for a in config.attacks if a not in ATTACKS]
    if unknown or not config.attacks:
        raise ConfigError(f"unknown attacks {unknown}", hint=f"choose from {list(ATTACKS)}")
    results: Results = {}
    with tempfile.TemporaryDirectory(prefix="loraledger-incentives-") as tmp:
        for seed in config.seeds:
            runs: dict[tuple[str, str], Outcome] = {}
            for rule in RULES:
                plan: list[AttackName | Literal["clean", "clean+1"]] = ["clean", *config.attacks]
                if "inflate" in config.attacks:
                    plan.insert(1, "clean+1")
                for attack in plan:
                    if hooks is not None:
                        hooks.phase(f"seed {seed}, {rule} rule: {attack}")
                    demo = demo_config(config, rule, None if attack == "clean" else attack, seed)
                    result = runner(demo, Path(tmp) / f"{seed}-{rule}-{attack}")
                    runs[(rule, attack)] = outcome(rule, attack, demo, result)
                    if hooks is not None:
                        hooks.step()
            results[seed] = runs
    out.mkdir(parents=True, exist_ok=True)
    report = _report(config, results, command, out)
    report.write(out)
    return report


Results = dict[int, dict[tuple[str, str], Outcome]]
"""Per seed, per (rule, attack): the run's outcome."""


def _over(per_seed: list[float | None]) -> Interval | None:
    """A figure's per-seed values over the seeds (those that have it; ``None`` if none do)."""
    values = [v for v in per_seed if v is not None]
    return mean_interval(values) if values else None


def _loss_ratio(runs: dict[tuple[str, str], Outcome], rule: str, attack: str) -> float | None:
    o = runs[(rule, attack)]
    clean = runs[(rule, "clean+1" if attack == "inflate" else "clean")]
    return (o.loss / clean.loss) if o.loss and clean.loss else None


def inflate_gain(results: dict[tuple[str, str], Outcome], rule: str) -> float | None:
    """What the inflating node earned over what the same node earned claiming its true count
    (the last honest node of the clean run with one more node)."""
    attacked, clean = results.get((rule, "inflate")), results.get((rule, "clean+1"))
    if attacked is None or clean is None:
        return None
    attacker = next(a for a, k in attacked.kinds.items() if k == "inflate")
    truthful = clean.earned.get(attacker, 0)
    return attacked.earned[attacker] / truthful if truthful else None


def _report(config: IncentivesConfig, results: Results, command: str, out: Path) -> Report:
    rows = []
    for attack in config.attacks:
        row: list[object] = [attack]
        for rule in RULES:
            row += [
                _over([r[(rule, attack)].honest_share for r in results.values()]),
                _over([r[(rule, attack)].attackers_share for r in results.values()]),
                _over([_loss_ratio(r, rule, attack) for r in results.values()]),
            ]
        gain = (
            _over([inflate_gain(r, "new") for r in results.values()])
            if attack == "inflate"
            else None
        )
        row.append(gain)
        row.append(all(runs[("new", attack)].audit_ok for runs in results.values()))
        rows.append(row)
    report = Report(
        experiment=NAME,
        title="Who is paid when attackers join: the old reward rule against the new one",
        command=command,
        config=config.model_dump(mode="json"),
        environment=environment(),
        summary=(
            f"{config.honest} honest nodes (+{config.sybils} Sybil accounts, or one attacker), "
            f"{config.rounds} rounds of the full demo each, 3 validators; shares are of the "
            "nodes' pool (reward per round x rounds, less the validators' share); loss ratio = "
            "final validation loss (the validators' median) / the clean run's."
        ),
    )
    report.add_table(
        "Shares of the pool and validation loss per attack",
        [
            "attack",
            "new: honest share",
            "new: attackers' share",
            "new: loss / clean",
            "old: honest share",
            "old: attackers' share",
            "old: loss / clean",
            "inflate: earned / truthful",
            "new: audit passes (every seed)",
        ],
        rows,
    )
    alt_rows = []
    for run_name in ["clean", *config.attacks]:
        if all(runs[("new", run_name)].alternatives for runs in results.values()):

            def alt(rule: str, key: str, run_name: str = run_name) -> Interval | None:
                return _over(
                    [r[("new", run_name)].alternatives[rule][key] for r in results.values()]
                )

            alt_rows.append(
                [run_name]
                + [alt(r, "attackers") for r in ALTERNATIVES]
                + [alt(r, "honest_spread") for r in ALTERNATIVES]
            )
    report.add_table(
        "Candidate scoring rules on the same rounds (from the published losses)",
        ["run"]
        + [f"{r}: attackers' share" for r in ALTERNATIVES]
        + [f"{r}: honest max/min pay" for r in ALTERNATIVES],
        alt_rows,
    )
    bar_plot(
        out / "attackers_share.png",
        list(config.attacks),
        {
            f"{rule} rule": [
                mean_interval([runs[(rule, a)].attackers_share for runs in results.values()])
                for a in config.attacks
            ]
            for rule in RULES
        },
        title="Attackers' share of the pool",
        ylabel="share of the pool",
    )
    report.plots.append(
        ("attackers_share.png", "the attackers' share of the pool, old vs new rule")
    )
    first = next(iter(results.values()))
    report.data = {
        f"{rule}/{attack}": {
            "honest_share": mean_interval(
                [runs[(rule, attack)].honest_share for runs in results.values()]
            ).to_json(),
            "attackers_share": mean_interval(
                [runs[(rule, attack)].attackers_share for runs in results.values()]
            ).to_json(),
            "per_seed": {
                str(seed): runs[(rule, attack)].to_json() for seed, runs in results.items()
            },
        }
        for rule, attack in first
    }
    report.notes += _verdicts(config, results)
    report.notes.append(
        "Figures are means over the seeds "
        f"({', '.join(map(str, config.seeds))}) ± the half-width of their 95% Student t "
        "interval (none for one seed); the targets are read on the means. results.json keeps "
        "every seed's run under `per_seed`."
    )
    report.notes.append(
        "The old rule cannot be replayed for `frontrun` and `malformed`: commit-reveal and the "
        "hardened parsers are the protocol, not a setting. Before them (main before issue 13) "
        "a front-runner committing the author's CID in the same block was paid and the author "
        "rejected as a replay, and the malformed file crashed the aggregator on every restart, "
        "so no round finalized."
    )
    return report


def _verdicts(config: IncentivesConfig, results: Results) -> list[str]:
    """The issue's targets, each with its figure (the mean over seeds, with its interval) and
    whether the mean meets it (new rule)."""
    notes = []
    for attack in config.attacks:
        if attack == "inflate":
            gain = _over([inflate_gain(r, "new") for r in results.values()])
            ok = gain is not None and gain.mean <= 1.05
            shown = gain.cell() if gain is not None else "None"
            notes.append(
                f"{'met' if ok else 'NOT met'}: the inflating node earns {shown} of what it "
                "earns with its true count (target <= 1.05)"
            )
        else:
            honest = mean_interval([r[("new", attack)].honest_share for r in results.values()])
            bad = mean_interval([r[("new", attack)].attackers_share for r in results.values()])
            ok = honest.mean >= 0.95 and bad.mean <= 0.01
            notes.append(
                f"{'met' if ok else 'NOT met'}: {attack}: honest nodes {honest.cell()} of "
                f"the pool (target >= 0.95), attackers {bad.cell()} (<= 0.01)"
            )
        ratio = _over([_loss_ratio(r, "new", attack) for r in results.values()])
        if ratio is not None:
            ok = abs(ratio.mean - 1) <= 0.02
            notes.append(
                f"{'met' if ok else 'NOT met'}: {attack}: global validation loss "
                f"{ratio.cell()} x the clean run's (target within 2%)"
            )
    return notes


def attacks_from(text: str) -> tuple[AttackName, ...]:
    """The attacks named in ``text`` (comma-separated), each an attack on the pool."""
    attacks = parse_attacks(text)
    others = [a for a in attacks if a not in ATTACKS]
    if others:
        raise ConfigError(
            f"{others} attack the model, not the pool", hint=f"choose from {list(ATTACKS)}"
        )
    return attacks


__all__ = ["NAME", "IncentivesConfig", "Outcome", "attacks_from", "inflate_gain", "run"]
