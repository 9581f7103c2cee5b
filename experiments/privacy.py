"""Experiment 6: membership inference on the global adapter, next to utility, at several DP
epsilons.

For each target epsilon (and once without DP) the same federation trains: the same nodes,
data, rounds, steps and seeds as the other experiments (:func:`~experiments.runner.
run_federated`, FedAvg), where every node trains with example-level DP-SGD
(:class:`fl_node.train.ExampleDP`) whose noise multiplier
(:func:`loraledger.privacy.noise_multiplier`) makes the node's whole participation - every
round's steps at its sample rate ``batch_size / training examples`` - spend the target
epsilon at ``delta`` by the accountant.

Then an attacker who holds the final published global adapter (and the public base model)
guesses, for each candidate example, whether a node trained on it. *Members* are the
examples the nodes trained on; *non-members* an equal number of held-out examples from the
same nodes' shards, which no node trained on (:func:`membership_split`). Two scores per
example, higher meaning "member":

* ``loss``: the loss-threshold attack (Yeom et al. 2018), ``-loss`` under the global model;
* ``reference``: the reference-model attack, ``loss under the base model - loss under the
  global model``: how much training lowered the example's loss, which calibrates away how
  hard the example is (a cheap, one-reference cousin of LiRA, Carlini et al. 2022).

Each attack is summarized by its ROC curve over every threshold (:func:`roc`): the AUC, the
TPR at 1% and 10% FPR and the membership advantage ``max(TPR - FPR)``. Utility: the mean
held-out loss of the global adapter on the nodes' held-out splits (the non-members), and on a
pooled test set when ``pooled_examples`` > 0.

The node trainings are hooked into :func:`~experiments.runner.run_federated` through
:class:`PrivateConfig`, an :class:`~experiments.config.ExperimentConfig` whose
``train_settings`` (what ``run_federated`` asks for every node's round) carries the
:class:`~fl_node.train.ExampleDP` settings; ``experiments/runner.py`` is unchanged. The noise
seeds are fixed per (seed, node, round) so that a run is reproducible; the product draws them
from secret randomness (docs/privacy.md), which a fixed seed voids.
"""

from __future__ import annotations

import hashlib
import math
import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.aggregation import homogeneous
from experiments.config import (
    TASK_ID,
    ExperimentConfig,
    environment,
    load_model,
    participants,
    split_data,
)
from experiments.report import Report, save_figure
from experiments.runner import Hooks, RunResult, evaluate_global, run_federated
from experiments.seeds import band_note, by_key
from experiments.stats import Interval, mean_interval
from fl_node.data import Example, NodeData, encode_all
from fl_node.model import LoadedModel
from fl_node.train import (
    ExampleDP,
    TrainSettings,
    attach_adapter,
    batches,
    detach_adapter,
    load_global_tensors,
    per_example_loss,
    sample_rate,
)
from loraledger.errors import ConfigError, TrainingError
from loraledger.privacy import (
    DEFAULT_DELTA,
    Accountant,
    Stretch,
    accountant_named,
    epsilon,
    noise_multiplier,
)
from loraledger.update import Expected, parse_global_adapter, sha256_hex

NAME = "privacy"
DEFAULT_EPSILONS = (1.0, 3.0, 8.0)
DEFAULT_MEMBERS = 12
"""Training examples per node (and as many held-out non-members): small, so that the rounds'
steps pass over each several times and the model without DP overfits a little."""
DEFAULT_POOLED_EXAMPLES = 16
ATTACKS = ("loss", "reference")
ATTACK_TITLES = {
    "loss": "loss threshold (-loss, global model)",
    "reference": "reference model (base loss - global loss)",
}
LOW_FPRS = (0.01, 0.10)
"""The false-positive rates at which the true-positive rate is reported."""
EVAL_BATCH = 8


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class PrivacySettings:
    """The DP side of the experiment: the target epsilons (each a run; ``None`` is added as
    the run without DP), ``delta``, the accountant, the per-example clipping bound and the
    training examples per node (``members``; as many held-out examples are the non-members)."""

    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    delta: float = DEFAULT_DELTA
    accountant: Accountant = "rdp"
    clip_norm: float = 1.0
    members: int = DEFAULT_MEMBERS

    def __post_init__(self) -> None:
        check_epsilons(self.epsilons)
        if not 0 < self.delta < 1:
            raise ConfigError(f"delta must be in (0, 1), got {self.delta:g}")
        accountant_named(self.accountant)
        if not (self.clip_norm > 0 and math.isfinite(self.clip_norm)):
            raise ConfigError(f"the clipping bound must be positive, got {self.clip_norm:g}")
        if self.members < 2:
            raise ConfigError(f"members per node must be at least 2, got {self.members}")

    def to_json(self) -> dict[str, Any]:
        return {
            "epsilons": list(self.epsilons),
            "delta": self.delta,
            "accountant": self.accountant,
            "clip_norm": self.clip_norm,
            "members_per_node": self.members,
        }


def check_epsilons(values: Sequence[float]) -> tuple[float, ...]:
    """``values`` as target epsilons: at least one, each positive and finite, no repeats."""
    if not values:
        raise ConfigError("epsilons needs at least one target epsilon")
    bad = [v for v in values if not (v > 0 and math.isfinite(v))]
    if bad:
        raise ConfigError(f"every epsilon must be positive and finite, got {bad[0]:g}")
    if len(set(values)) != len(values):
        raise ConfigError(f"epsilons must be distinct, got {', '.join(f'{v:g}' for v in values)}")
    return tuple(values)


def epsilons_from(text: str) -> tuple[float, ...]:
    """``--epsilons 1,3,8`` as target epsilons (a :class:`ConfigError` for anything else)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise ConfigError(f"--epsilons must be comma-separated numbers, got {text!r}") from None
    if not values:
        raise ConfigError(f"--epsilons needs at least one target epsilon, got {text!r}")
    return check_epsilons(values)


def noise_seed(seed: int, train_seed: int) -> int:
    """The fixed DP noise seed of one node's round: a function of the run's seed and the
    round's training seed (which ``run_federated`` derives from the node and the round)."""
    digest = hashlib.sha256(f"dp-noise:{seed}:{train_seed}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


class PrivateConfig(ExperimentConfig):
    """An experiment configuration whose node trainings use DP-SGD (``dp``; ``None``: none).

    ``run_federated`` builds every node's schedule with :meth:`train_settings`; here it carries
    ``dp`` with the fixed noise seed of that node's round (:func:`noise_seed`)."""

    dp: ExampleDP | None = None

    def train_settings(self, steps: int, seed: int) -> TrainSettings:
        settings = super().train_settings(steps, seed)
        if self.dp is None:
            return settings
        return settings.replace(privacy=self.dp.replace(noise_seed=noise_seed(self.seed, seed)))


@dataclass(frozen=True)
class Condition:
    """One run's DP setting: the target epsilon (``None``: no DP), the noise multiplier that
    meets it and the epsilon the accountant gives for a node's whole participation."""

    target: float | None
    noise_multiplier: float | None = None
    spent: float | None = None
    sample_rate: float | None = None
    steps: int = 0

    @property
    def label(self) -> str:
        return "no DP" if self.target is None else f"ε = {self.target:g}"

    @property
    def tick(self) -> str:
        return "no DP" if self.target is None else f"{self.target:g}"

    def to_json(self) -> dict[str, Any]:
        return {
            "target_epsilon": self.target,
            "noise_multiplier": self.noise_multiplier,
            "spent_epsilon": self.spent,
            "sample_rate": self.sample_rate,
            "steps_per_node": self.steps,
        }


def conditions(
    config: ExperimentConfig, settings: PrivacySettings, train_examples: int
) -> list[Condition]:
    """The runs, most private first, then no DP: for each target epsilon the noise multiplier
    whose ``rounds x steps`` steps at the sample rate of ``train_examples`` examples spend it
    (and what they spend by the accountant, at most the target)."""
    rate = sample_rate(config.train_settings(1, config.seed), train_examples)
    steps = config.rounds * config.steps
    out = []
    for target in sorted(settings.epsilons):
        sigma = noise_multiplier(target, settings.delta, rate, steps, settings.accountant)
        spent = epsilon([Stretch(sigma, rate, steps)], settings.delta, settings.accountant)
        out.append(Condition(target, sigma, spent, rate, steps))
    return [*out, Condition(None, steps=steps)]


def private_config(
    config: ExperimentConfig, settings: PrivacySettings, condition: Condition
) -> PrivateConfig:
    """``config`` whose node trainings run with ``condition``'s DP-SGD (none for no DP)."""
    dp = (
        None
        if condition.noise_multiplier is None
        else ExampleDP(
            noise_multiplier=condition.noise_multiplier,
            clip_norm=settings.clip_norm,
            delta=settings.delta,
            accountant=settings.accountant,
        )
    )
    return PrivateConfig(**dict(config), dp=dp)


# --------------------------------------------------------------------------- data


def membership_split(
    model: LoadedModel, config: ExperimentConfig, members: int
) -> tuple[list[NodeData], tuple[Example, ...]]:
    """Each node's ``members`` training examples and as many held-out non-members, and the
    pooled test set.

    The nodes' shards are :func:`~experiments.config.split_data`'s (same split, seed and pooled
    set as the other experiments). Each node's examples are deduplicated across all nodes (the
    corpus repeats some Q/A pairs: a non-member must not be another node's member), restricted
    to those with reply tokens within ``max_length``, shuffled (seeded) and cut into the
    members (``train``) and the non-members (``eval``): the two are drawn from one
    distribution, and every node trains on the same number of examples, so every node has the
    same DP sample rate."""
    split = split_data(config)
    taken: set[Example] = set(split.pooled)
    out: list[NodeData] = []
    for index, shard in enumerate(split.nodes):
        pool = [e for e in dict.fromkeys((*shard.train, *shard.eval)) if e not in taken]
        taken.update(pool)
        encoded = encode_all(model.tokenizer, pool, config.max_length, drop_empty=False)
        usable = [e for e, enc in zip(pool, encoded, strict=True) if enc.num_target_tokens > 0]
        random.Random(f"membership:{config.seed}:{index}").shuffle(usable)
        if len(usable) < 2 * members:
            raise ConfigError(
                f"node {index} has {len(usable)} distinct usable examples; the experiment needs "
                f"{2 * members} ({members} to train on and {members} held out)",
                hint="use fewer --members, fewer --nodes or more --examples",
            )
        out.append(
            NodeData(train=tuple(usable[:members]), eval=tuple(usable[members : 2 * members]))
        )
    return out, split.pooled


# --------------------------------------------------------------------------- per-example losses


def example_losses(
    model: LoadedModel,
    config: ExperimentConfig,
    global_adapter: bytes | None,
    examples: Sequence[Example],
) -> tuple[float, ...]:
    """Each example's token-mean loss on its reply under the global adapter (verified against
    its digest), or under the base model alone when ``global_adapter`` is ``None``."""
    encoded = encode_all(model.tokenizer, examples, config.max_length, drop_empty=False)
    if any(e.num_target_tokens == 0 for e in encoded):
        raise TrainingError("an example has no reply tokens within max_length: it has no loss")
    pad_id = model.tokenizer.pad_token_id
    peft_model: Any = None
    if global_adapter is not None:
        adapter = parse_global_adapter(
            global_adapter,
            Expected(task_id=TASK_ID, base_model=model.model_id, digest=sha256_hex(global_adapter)),
        )
        torch.manual_seed(config.seed)
        peft_model = attach_adapter(model, adapter.metadata.peft)
    network = peft_model if peft_model is not None else model.model
    losses: list[float] = []
    try:
        if global_adapter is not None:
            load_global_tensors(peft_model, adapter, adapter.metadata.peft)
        network.eval()
        with torch.no_grad():
            for batch in batches(encoded, EVAL_BATCH, pad_id, None):
                out = network(
                    input_ids=batch["input_ids"].to(model.device),
                    attention_mask=batch["attention_mask"].to(model.device),
                )
                losses += per_example_loss(out.logits, batch["labels"].to(model.device)).tolist()
    finally:
        if peft_model is not None:
            detach_adapter(peft_model, model)
    if not all(math.isfinite(v) for v in losses):
        raise TrainingError("a per-example loss is not finite")
    return tuple(float(v) for v in losses)


# --------------------------------------------------------------------------- ROC maths


@dataclass(frozen=True)
class Roc:
    """The ROC curve of a membership score over every threshold (``fpr``/``tpr`` from (0, 0) to
    (1, 1), one point per distinct score), and what it is summarized by."""

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    auc: float

    def tpr_at(self, fpr: float) -> float:
        """The highest TPR of a threshold whose FPR is at most ``fpr``."""
        return max(t for f, t in zip(self.fpr, self.tpr, strict=True) if f <= fpr + 1e-12)

    @property
    def advantage(self) -> float:
        """Membership advantage (Yeom et al.): ``max(TPR - FPR)`` over the thresholds."""
        return max(t - f for f, t in zip(self.fpr, self.tpr, strict=True))


def roc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> Roc:
    """The ROC curve of guessing "member" when the score is at least a threshold.

    Tied scores are one threshold (the curve steps diagonally through them), so the AUC is the
    probability that a random member scores above a random non-member, ties counting a half
    (the Mann-Whitney statistic)."""
    members = np.asarray(member_scores, dtype=np.float64)
    others = np.asarray(nonmember_scores, dtype=np.float64)
    if members.size == 0 or others.size == 0:
        raise ConfigError("a ROC curve needs at least one member and one non-member score")
    if not (np.isfinite(members).all() and np.isfinite(others).all()):
        raise ConfigError("a membership score is not finite")
    scores = np.concatenate([members, others])
    labels = np.concatenate([np.ones(members.size), np.zeros(others.size)])
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    tp = np.cumsum(labels)[last_of_tie]
    fp = np.cumsum(1 - labels)[last_of_tie]
    tpr = np.r_[0.0, tp / members.size]
    fpr = np.r_[0.0, fp / others.size]
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return Roc(tuple(fpr.tolist()), tuple(tpr.tolist()), auc)


@dataclass(frozen=True)
class AttackResult:
    """One attack's figures on one run: AUC, TPR at 1% and 10% FPR, membership advantage."""

    auc: float
    tpr_1: float
    tpr_10: float
    advantage: float

    @staticmethod
    def of(curve: Roc) -> AttackResult:
        low, high = LOW_FPRS
        return AttackResult(curve.auc, curve.tpr_at(low), curve.tpr_at(high), curve.advantage)

    def to_json(self) -> dict[str, float]:
        return {
            "auc": self.auc,
            "tpr_at_1pct_fpr": self.tpr_1,
            "tpr_at_10pct_fpr": self.tpr_10,
            "advantage": self.advantage,
        }


def attack_scores(
    attack: str,
    global_losses: Sequence[float],
    base_losses: Sequence[float],
) -> list[float]:
    """Membership scores (higher: more likely a member) of ``attack`` for examples with these
    losses under the global adapter and under the base model."""
    if attack == "loss":
        return [-g for g in global_losses]
    if attack == "reference":
        return [b - g for g, b in zip(global_losses, base_losses, strict=True)]
    raise ConfigError(f"unknown attack {attack!r}: use {' or '.join(ATTACKS)}")


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Losses:
    """Per-example losses of the members and the non-members under one model."""

    members: tuple[float, ...]
    nonmembers: tuple[float, ...]

    @property
    def gap(self) -> float:
        """Mean non-member loss minus mean member loss: the generalization gap."""
        return float(np.mean(self.nonmembers) - np.mean(self.members))

    def to_json(self) -> dict[str, Any]:
        return {"members": list(self.members), "nonmembers": list(self.nonmembers)}


@dataclass(frozen=True)
class ConditionRun:
    """One seed's run under one condition: training, utility and both attacks."""

    condition: Condition
    run: RunResult
    pooled_loss: float | None
    losses: Losses
    attacks: Mapping[str, AttackResult]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.condition.to_json(),
            "eval_loss": self.run.mean,
            "pooled_loss": self.pooled_loss,
            "generalization_gap": self.losses.gap,
            "attacks": {name: a.to_json() for name, a in self.attacks.items()},
            "run": self.run.to_json(),
            "global_adapter_sha256": sha256_hex(self.run.adapters[0]),
            "example_losses": self.losses.to_json(),
        }


@dataclass(frozen=True)
class SeedRuns:
    """One seed: the base model's per-example losses (and the loss attack on it, a chance
    baseline) and every condition's run, keyed by target epsilon (``None``: no DP)."""

    base: Losses
    base_attack: AttackResult
    runs: dict[float | None, ConditionRun] = field(default_factory=dict)
    train_examples: int = 0


def planned_steps(config: ExperimentConfig, settings: PrivacySettings) -> int:
    runs = len(settings.epsilons) + 1
    return len(config.seeds) * runs * config.nodes * config.rounds * config.steps


def run_seed(
    model: LoadedModel, config: ExperimentConfig, settings: PrivacySettings, hooks: Hooks | None
) -> SeedRuns:
    """Every condition with ``config``'s one seed, on the same nodes and data."""
    shards, pooled = membership_split(model, config, settings.members)
    members = participants(config, shards)
    member_examples = [e for m in members for e in m.data.train]
    nonmember_examples = [e for m in members for e in m.data.eval]
    hook = hooks or Hooks()
    hook.phase(f"seed {config.seed}: base model losses")
    base = Losses(
        example_losses(model, config, None, member_examples),
        example_losses(model, config, None, nonmember_examples),
    )
    base_attack = AttackResult.of(roc([-v for v in base.members], [-v for v in base.nonmembers]))
    out = SeedRuns(base, base_attack, train_examples=settings.members)
    for condition in conditions(config, settings, settings.members):
        run_config = private_config(config, settings, condition)
        run = run_federated(
            condition.label, model, run_config, members, homogeneous("fedavg"), hooks=hooks
        )
        adapter = run.adapters[0]
        hook.phase(f"{condition.label}: attacking the global adapter")
        losses = Losses(
            example_losses(model, config, adapter, member_examples),
            example_losses(model, config, adapter, nonmember_examples),
        )
        attacks = {
            name: AttackResult.of(
                roc(
                    attack_scores(name, losses.members, base.members),
                    attack_scores(name, losses.nonmembers, base.nonmembers),
                )
            )
            for name in ATTACKS
        }
        pooled_loss = evaluate_global(model, config, adapter, pooled) if pooled else None
        out.runs[condition.target] = ConditionRun(condition, run, pooled_loss, losses, attacks)
    return out


# --------------------------------------------------------------------------- the report


def run(
    config: ExperimentConfig,
    settings: PrivacySettings,
    out: Path,
    command: str,
    hooks: Hooks | None = None,
) -> Report:
    """Train under every condition per seed, attack each global adapter; write
    ``results.md``/``results.json``/``privacy_utility.png`` under ``out``."""
    config = config.replace(eval_examples=settings.members)
    with tempfile.TemporaryDirectory(prefix="loraledger-experiment-") as tmp:
        model = load_model(config, Path(tmp))
        per_seed = [run_seed(model, config.for_seed(s), settings, hooks) for s in config.seeds]
    keys = list(per_seed[0].runs)
    seeded = by_key(config.seeds, [{k: s.runs[k].run for k in keys} for s in per_seed])
    first = {k: per_seed[0].runs[k].condition for k in keys}

    def over(figure: Any) -> dict[float | None, Interval]:
        return {k: mean_interval([figure(s.runs[k]) for s in per_seed]) for k in keys}

    eval_loss = {k: seeded[k].mean for k in keys}
    pooled = over(lambda r: r.pooled_loss) if config.pooled_examples else {}
    gap = over(lambda r: r.losses.gap)
    figures: dict[str, dict[str, dict[float | None, Interval]]] = {
        attack: {
            name: over(lambda r, a=attack, n=name: getattr(r.attacks[a], n))
            for name in ("auc", "tpr_1", "tpr_10", "advantage")
        }
        for attack in ATTACKS
    }
    base_loss = seeded[keys[0]].mean_curve()[0]
    base_auc = mean_interval([s.base_attack.auc for s in per_seed])
    members = config.nodes * settings.members

    report = Report(
        experiment=NAME,
        title="Membership inference vs differential privacy",
        command=command,
        config=config.to_json() | settings.to_json(),
        environment=environment(),
        summary=_summary(first, eval_loss, figures, base_loss, base_auc, members),
    )
    report.add_table(
        "Membership inference on the final global adapter, and its utility",
        [
            "epsilon",
            "noise multiplier",
            "eval loss",
            "attack",
            "AUC",
            "TPR@1% FPR",
            "TPR@10% FPR",
            "advantage",
        ],
        [
            [
                first[k].tick,
                _sigma(first[k]),
                eval_loss[k],
                attack,
                figures[attack]["auc"][k],
                figures[attack]["tpr_1"][k],
                figures[attack]["tpr_10"][k],
                figures[attack]["advantage"][k],
            ]
            for k in keys
            for attack in ATTACKS
        ],
    )
    report.add_table(
        "Utility and privacy spent per node",
        [
            "epsilon",
            "noise multiplier",
            "spent epsilon (accountant)",
            "sample rate",
            "steps per node",
            "eval loss (nodes' held-out)",
            *(["pooled test loss"] if pooled else []),
            "gap (non-member - member loss)",
        ],
        [
            [
                first[k].tick,
                _sigma(first[k]),
                "∞" if first[k].spent is None else f"{first[k].spent:.3f}",
                "-" if first[k].sample_rate is None else f"{first[k].sample_rate:.4f}",
                first[k].steps,
                eval_loss[k],
                *([pooled[k]] if pooled else []),
                gap[k],
            ]
            for k in keys
        ],
    )
    report.add_table(
        "Mean eval loss per round, nodes' held-out splits",
        ["round", *(first[k].label for k in keys)],
        [[r, *(seeded[k].mean_curve()[r] for k in keys)] for r in range(config.rounds + 1)],
    )
    privacy_plot(
        out / "privacy_utility.png",
        [first[k].tick for k in keys],
        eval_loss=[eval_loss[k] for k in keys],
        auc={attack: [figures[attack]["auc"][k] for k in keys] for attack in ATTACKS},
        base_loss=base_loss,
    )
    report.plots.append(
        ("privacy_utility.png", "eval loss and membership-inference AUC against epsilon")
    )
    report.notes += _notes(config, settings, base_loss, base_auc, members)
    report.data = {
        "conditions": [
            {
                "key": first[k].tick,
                **first[k].to_json(),
                "eval_loss": eval_loss[k].to_json(),
                "pooled_loss": pooled[k].to_json() if pooled else None,
                "generalization_gap": gap[k].to_json(),
                "attacks": {
                    attack: {name: v[k].to_json() for name, v in figures[attack].items()}
                    for attack in ATTACKS
                },
                "eval_loss_per_round": [i.to_json() for i in seeded[k].mean_curve()],
            }
            for k in keys
        ],
        "base_model": {
            "eval_loss": base_loss.to_json(),
            "loss_attack_auc": base_auc.to_json(),
        },
        "per_seed": {
            str(seed): {
                "base_model": {
                    "example_losses": s.base.to_json(),
                    "loss_attack": s.base_attack.to_json(),
                },
                "conditions": {first[k].tick: s.runs[k].to_json() for k in keys},
            }
            for seed, s in zip(config.seeds, per_seed, strict=True)
        },
        "seeded_runs": {first[k].tick: seeded[k].to_json() for k in keys},
    }
    report.write(out)
    return report


def _rate(config: ExperimentConfig, settings: PrivacySettings) -> float:
    return sample_rate(config.train_settings(1, config.seed), settings.members)


def _sigma(condition: Condition) -> str:
    return "-" if condition.noise_multiplier is None else f"{condition.noise_multiplier:.3f}"


def _summary(
    first: Mapping[float | None, Condition],
    eval_loss: Mapping[float | None, Interval],
    figures: Mapping[str, Mapping[str, Mapping[float | None, Interval]]],
    base_loss: Interval,
    base_auc: Interval,
    members: int,
) -> str:
    lines = [
        f"Attacks on the final global adapter: {members} members (the nodes' training examples) "
        f"against {members} held-out non-members per seed; AUC 0.5 and TPR = FPR are chance "
        f"(the loss attack on the untrained base model: AUC {base_auc.cell()}). Base model "
        f"eval loss {base_loss.cell()}.",
        "",
    ]
    for key, condition in first.items():
        parts = []
        for attack in ATTACKS:
            auc = figures[attack]["auc"][key]
            parts.append(f"{attack} attack AUC {auc.cell()} ({_against_chance(auc)})")
        lines.append(
            f"- {condition.label}: eval loss {eval_loss[key].cell()}; " + "; ".join(parts) + "."
        )
    return "\n".join(lines)


def _against_chance(auc: Interval) -> str:
    if auc.low is None or auc.high is None:
        return "one seed: no interval"
    if auc.low > 0.5:
        return "above chance at 95%"
    if auc.high < 0.5:
        return "below chance at 95%"
    return "interval contains chance"


def _notes(
    config: ExperimentConfig,
    settings: PrivacySettings,
    base_loss: Interval,
    base_auc: Interval,
    members: int,
) -> list[str]:
    passes = config.rounds * config.steps * config.batch_size / settings.members
    return [
        band_note(config.seeds),
        (
            f"Data: the bundled corpus split '{config.split}' over {config.nodes} nodes (the "
            "other experiments' split function); each node trains on "
            f"{settings.members} of its examples (the members) and holds out "
            f"{settings.members} more (the non-members, also its held-out split for the "
            "eval loss), drawn at random (seeded) from its distinct examples, so members "
            "and non-members come from one distribution. Duplicates are removed across "
            "nodes: no non-member is another node's member."
        ),
        (
            f"Why a small training set: {settings.members} examples per node and "
            f"{config.rounds} rounds x {config.steps} steps x batch {config.batch_size} pass "
            f"over each example about {passes:.1f} "
            "times, so the model without DP overfits a little and there is a leak to measure; "
            "with the corpus's hundreds of examples per node and as many steps the model sees "
            "each example about once and no attack beats chance by much."
        ),
        (
            "DP-SGD (Opacus, as `node train --dp-noise-multiplier`): every step draws a Poisson "
            f"sample at rate batch / examples = {_rate(config, settings):.4f}, clips each "
            f"example's gradient to {settings.clip_norm:g} and adds Gaussian noise; the noise "
            f"multiplier is `loraledger.privacy.noise_multiplier` for the node's whole "
            f"participation ({config.rounds} rounds x {config.steps} steps) at delta "
            f"{settings.delta:g} by the {settings.accountant} accountant, so each node's "
            "updates (and the global adapter, post-processing) are (epsilon, delta)-DP for each "
            "of its examples. 'spent epsilon' is what the accountant gives for that schedule (at "
            "most the target, within its tolerance)."
        ),
        (
            "Fixed noise seeds: each node's DP noise and Poisson samples come from a seed fixed "
            "per (seed, node, round), derived from the experiment seed, so the run is "
            "reproducible. The product draws them from the operating system's secret randomness "
            "for every round (docs/privacy.md): a known seed voids the guarantee, so these runs "
            "measure what the noise does, not a deployable configuration."
        ),
        (
            "Attacks: 'loss' scores an example by -loss under the global adapter (Yeom et al.); "
            "'reference' by loss under the base model minus loss under the global adapter (a "
            "reference-model attack: a cheap LiRA-style calibration with one reference, the "
            "public base model). Losses are each example's token mean over its reply. ROC over "
            "every threshold; TPR at x% FPR is the best TPR of a threshold with FPR <= x%; "
            f"advantage = max(TPR - FPR). With {members} non-members the smallest non-zero FPR "
            f"is 1/{members} = {1 / members:.3f}: TPR at 1% FPR is the TPR at zero false "
            "positives when that is above 1%."
        ),
        (
            f"Utility: the global adapter's mean loss on the nodes' held-out splits (base model "
            f"before training: {base_loss.cell()})"
            + (
                f", and on a pooled test set of {config.pooled_examples} examples no node holds."
                if config.pooled_examples
                else "."
            )
        ),
        (
            "Limits: the loss-threshold attack is weak, the reference attack uses one reference "
            "(the base model), not LiRA's shadow models trained with and without each example, "
            "which were not run; a stronger attack could find more leak at every epsilon. The "
            f"base-model loss attack's AUC ({base_auc.cell()}) shows the noise floor of an AUC "
            "at this sample size."
        ),
    ]


def privacy_plot(
    path: Path,
    ticks: Sequence[str],
    *,
    eval_loss: Sequence[Interval],
    auc: Mapping[str, Sequence[Interval]],
    base_loss: Interval,
) -> Path:
    """Two panels over the conditions: the mean held-out loss, and each attack's AUC with chance
    (0.5); intervals as error bars. The epsilons are ticks joined by a line; "no DP" (the last
    condition) is its own point, set apart at the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    private = len(ticks) - 1
    xs = [*range(private), private + 0.6]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9.6, 4.0), dpi=110)

    def draw(axes: Any, values: Sequence[Interval], label: str, marker: str, shift: float) -> None:
        errors = [
            [i.mean - i.low if i.low is not None else 0.0 for i in values],
            [i.high - i.mean if i.high is not None else 0.0 for i in values],
        ]
        at = [x + shift for x in xs]
        (line, *_) = axes.errorbar(
            at[:private],
            [i.mean for i in values[:private]],
            yerr=[e[:private] for e in errors],
            marker=marker,
            capsize=3,
            label=label,
        )
        axes.errorbar(
            at[private:],
            [i.mean for i in values[private:]],
            yerr=[e[private:] for e in errors],
            marker=marker,
            capsize=3,
            color=line.get_color(),
            linestyle="none",
        )

    draw(left, eval_loss, "global adapter", "o", 0.0)
    left.axhline(base_loss.mean, color="grey", linestyle="--", linewidth=1, label="base model")
    left.set_title("Utility: held-out eval loss")
    left.set_ylabel("mean eval loss (lower is better)")
    for k, (attack, marker) in enumerate(zip(ATTACKS, ("o", "s"), strict=True)):
        draw(right, auc[attack], f"{attack} attack", marker, (k - 0.5) * 0.08)
    right.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    right.set_title("Membership inference AUC")
    right.set_ylabel("AUC (0.5 = chance)")
    right.set_ylim(-0.02, 1.02)
    for axes in (left, right):
        axes.axvline(private - 0.2, color="grey", linewidth=0.5)
        axes.set_xticks(xs, list(ticks))
        axes.set_xlabel("target epsilon per node (δ fixed)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    return save_figure(figure, path)
