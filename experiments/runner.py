"""Federated, local and centralized training, round by round, on one loaded base model.

:func:`run_federated` is the platform's round without chain and storage: every participant
trains with :func:`~fl_node.train.train_round` from the global adapter for its LoRA
settings (checked against its digest), sends update bytes, the aggregator parses them with
:func:`~loraledger.update.parse_update` and an :data:`Aggregate` function (the strategies
of :mod:`aggregator`) combines them, and the next global adapter is packed with
:func:`~loraledger.update.pack_global_adapter`.

Each node is always evaluated on its own held-out split. The loss of round ``r``'s global
adapter on node ``i`` is the ``eval_loss_before`` that node ``i``'s ``train_round``
measures at the start of round ``r + 1`` (the same model on the same examples); after the
last round, and for models that do not train on a node's data (centralized), it is measured
with the same :func:`~fl_node.train.evaluate`.

Local training is a federation of one (the average of one update is that update) and
centralized training a federation of one participant holding the pooled data, so the three
approaches share every line of training code, every seed and the per-round schedule.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from aggregator.client_update import ClientUpdate
from experiments.config import TASK_ID, ExperimentConfig, Participant
from fl_node.data import Example, NodeData, encode_all
from fl_node.model import LoadedModel
from fl_node.train import (
    NodeTrainConfig,
    attach_adapter,
    detach_adapter,
    evaluate,
    load_global_tensors,
    train_round,
)
from loraledger.errors import TrainingError
from loraledger.update import (
    Expected,
    PeftSpec,
    build_update,
    pack_global_adapter,
    parse_global_adapter,
    parse_update,
    sha256_hex,
)
from sponsor.task import initial_global_adapter

Tensors = dict[str, torch.Tensor]
Aggregate = Callable[[Sequence[ClientUpdate], Mapping[PeftSpec, Tensors]], dict[PeftSpec, Tensors]]
"""``(round's updates, current global tensors per LoRA spec) -> next global tensors per spec``."""

Poison = Callable[[Tensors, Tensors], Tensors]
"""``(honest update tensors, round's global tensors) -> tensors the node sends instead``."""


@dataclass(frozen=True)
class Hooks:
    """Progress reporting: ``step`` after every optimizer step, ``phase`` with a description."""

    step: Callable[[], None] = lambda: None
    phase: Callable[[str], None] = lambda _text: None


@dataclass
class TrainingCache:
    """Node trainings already done in this experiment, reused where a run repeats one exactly.

    ``train_round`` is a function of the global adapter (by digest), the node's data and LoRA
    settings, the round, the step count and the seed. Runs of one experiment often share such
    trainings: every strategy of the robustness experiment starts round 1 from the same global
    adapter with the same nodes, and so do FlexLoRA and zero-padding in the ranks experiment.
    A hit returns the bytes the first training produced, so results are exactly those of
    training again (on a CPU, where training is deterministic), without the cost.
    """

    entries: dict[tuple[Any, ...], tuple[bytes, float | None]] = field(default_factory=dict)
    hits: int = 0

    @staticmethod
    def key(
        member: Participant, round_: int, global_digest: str, steps: int, seed: int
    ) -> tuple[Any, ...]:
        return (member.name, member.data, member.spec, round_, global_digest, steps, seed)


@dataclass(frozen=True)
class Start:
    """Where a run begins: the global adapters (per LoRA spec) published after ``round``."""

    round: int
    adapters: Mapping[PeftSpec, bytes]


@dataclass(frozen=True)
class RunResult:
    """One training run's eval losses: ``curve[r][i]`` is node ``i``'s held-out loss after
    the run's round ``r`` (row 0: before the run trains), for the model node ``i`` would use.

    ``adapters[i]`` is that model after the last round (global-adapter bytes) and
    ``last_round`` the round it was published at (:meth:`start_for` continues from it).
    """

    label: str
    nodes: tuple[str, ...]
    curve: tuple[tuple[float, ...], ...]
    steps: int
    seconds: float
    adapters: tuple[bytes, ...] = field(default=(), repr=False, compare=False)
    last_round: int = 0

    def start_for(self, node: int, spec: PeftSpec) -> Start:
        """A run that continues from node ``node``'s final model (trained with ``spec``)."""
        return Start(self.last_round, {spec: self.adapters[node]})

    @property
    def final(self) -> tuple[float, ...]:
        return self.curve[-1]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.final)

    @property
    def std(self) -> float:
        """Population standard deviation across nodes (0 for one node)."""
        return statistics.pstdev(self.final)

    @property
    def min(self) -> float:
        return min(self.final)

    @property
    def max(self) -> float:
        return max(self.final)

    def mean_curve(self) -> list[float]:
        return [statistics.fmean(row) for row in self.curve]

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "nodes": list(self.nodes),
            "final": dict(zip(self.nodes, self.final, strict=True)),
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "curve": [list(row) for row in self.curve],
            "mean_curve": self.mean_curve(),
            "steps": self.steps,
            "seconds": self.seconds,
        }


# --------------------------------------------------------------------------- global adapters


def pack_global(model: LoadedModel, spec: PeftSpec, tensors: Tensors, round_: int) -> bytes:
    """Tensors as a global adapter of the experiment's task, in the platform's format."""
    return pack_global_adapter(
        tensors, task_id=TASK_ID, round_=round_, base_model=model.model_id, peft=spec
    )


def evaluate_global(
    model: LoadedModel, config: ExperimentConfig, global_adapter: bytes, examples: Sequence[Example]
) -> float:
    """Held-out loss of a global adapter on ``examples`` (as ``train_round`` measures it)."""
    adapter = parse_global_adapter(
        global_adapter,
        Expected(task_id=TASK_ID, base_model=model.model_id, digest=sha256_hex(global_adapter)),
    )
    settings = config.train_settings(1, config.seed)
    encoded = encode_all(model.tokenizer, examples, settings.max_length)
    torch.manual_seed(config.seed)
    peft_model = attach_adapter(model, adapter.metadata.peft)
    try:
        load_global_tensors(peft_model, adapter, adapter.metadata.peft)
        loss = evaluate(peft_model, model, encoded, settings.eval_batch_size)
    finally:
        detach_adapter(peft_model, model)
    if loss is None or not math.isfinite(loss):
        raise TrainingError(f"evaluation gave no finite loss ({loss}) on {len(examples)} examples")
    return loss


# --------------------------------------------------------------------------- the round loop


def run_federated(
    label: str,
    model: LoadedModel,
    config: ExperimentConfig,
    members: Sequence[Participant],
    aggregate: Aggregate,
    *,
    steps: int | None = None,
    eval_sets: Sequence[tuple[str, Sequence[Example]]] | None = None,
    poisoned: Mapping[str, Poison] | None = None,
    hooks: Hooks | None = None,
    cache: TrainingCache | None = None,
    start: Start | None = None,
    rounds: int | None = None,
) -> RunResult:
    """``rounds`` (default ``config.rounds``) rounds of federated training; per-node held-out
    losses per round.

    ``start``: the global adapters to start from (default: the task's initial adapter, seeded
    by ``config.seed``, as round 0); rounds are numbered on from ``start.round``.
    ``steps``: optimizer steps per member per round (default ``config.steps``).
    ``eval_sets``: where to evaluate each round's global adapter (default: each member on its
    own held-out split; members then need one). ``poisoned``: member name -> the poison
    applied to its update before it is sent (that member is then left out of the curve,
    which covers the honest nodes). ``cache``: trainings to reuse and record
    (:class:`TrainingCache`).
    """
    hooks = hooks or Hooks()
    steps = steps or config.steps
    rounds = config.rounds if rounds is None else rounds
    poisoned = poisoned or {}
    began = time.perf_counter()
    specs = sorted({m.spec for m in members}, key=lambda s: s.rank)
    first = start.round if start is not None else 0
    globals_: dict[PeftSpec, bytes] = (
        {spec: start.adapters[spec] for spec in specs}
        if start is not None
        else {
            spec: initial_global_adapter(model, spec, TASK_ID, seed=config.seed) for spec in specs
        }
    )
    own = eval_sets is None
    evaluated = [m for m in members if m.name not in poisoned] if own else []
    if own and any(not m.data.eval for m in evaluated):
        raise TrainingError(f"{label}: every evaluated node needs a held-out split")
    names = tuple(m.name for m in evaluated) if own else tuple(n for n, _ in eval_sets or ())
    curve: list[tuple[float, ...]] = []

    def explicit_eval(round_: int) -> tuple[float, ...]:
        hooks.phase(f"{label}: evaluating round {round_}")
        if own:
            return tuple(
                evaluate_global(model, config, globals_[m.spec], m.data.eval) for m in evaluated
            )
        spec = specs[0]
        return tuple(
            evaluate_global(model, config, globals_[spec], examples)
            for _, examples in eval_sets or ()
        )

    if not own:
        curve.append(explicit_eval(0))
    for round_ in range(first + 1, first + rounds + 1):
        updates: list[bytes] = []
        before: dict[str, float] = {}
        current = {spec: parse_global_adapter(data).tensors for spec, data in globals_.items()}
        for member in members:
            hooks.phase(f"{label}: round {round_}/{first + rounds}, {member.name} training")
            node_config = NodeTrainConfig(
                task_id=TASK_ID,
                round=round_,
                node=member.name,
                peft=member.spec,
                train=config.train_settings(steps, config.seed + 1000 * round_ + member.index),
            )
            data = globals_[member.spec]
            digest = sha256_hex(data)
            key = (
                cache.key(member, round_, digest, steps, node_config.train.seed) if cache else None
            )
            if cache is not None and key in cache.entries:
                update, loss_before = cache.entries[key]
                cache.hits += 1
                for _ in range(steps):
                    hooks.step()
            else:
                result = train_round(
                    node_config, model, member.data, data, digest, lambda _r: hooks.step()
                )
                update, loss_before = result.update, result.metrics.eval_loss_before
                if cache is not None and key is not None:
                    cache.entries[key] = (update, loss_before)
            if loss_before is not None:
                before[member.name] = loss_before
            if member.name in poisoned:
                parsed = parse_update(update)
                tensors = poisoned[member.name](parsed.tensors, current[member.spec])
                update = build_update(tensors, parsed.metadata)
            updates.append(update)
        if own:
            curve.append(tuple(before[m.name] for m in evaluated))
        hooks.phase(f"{label}: round {round_}/{first + rounds}, aggregating")
        received = []
        for data in updates:
            parsed = parse_update(
                data, Expected(task_id=TASK_ID, round=round_, base_model=model.model_id)
            )
            meta = parsed.metadata
            received.append(
                ClientUpdate.in_memory(
                    meta.node,
                    parsed.tensors,
                    num_examples=meta.num_examples,
                    rank=meta.peft.rank,
                    alpha=meta.peft.alpha,
                )
            )
        aggregated = aggregate(received, current)
        globals_ = {spec: pack_global(model, spec, aggregated[spec], round_) for spec in specs}
        if not own:
            curve.append(explicit_eval(round_))
    if own:
        curve.append(explicit_eval(first + rounds))
    total = steps * rounds * len(members)
    if own:
        adapters = tuple(globals_[m.spec] for m in evaluated)
    else:
        adapters = tuple(globals_[specs[0]] for _ in names)
    return RunResult(
        label, names, tuple(curve), total, time.perf_counter() - began, adapters, first + rounds
    )


def run_local(
    model: LoadedModel,
    config: ExperimentConfig,
    members: Sequence[Participant],
    aggregate: Aggregate,
    *,
    hooks: Hooks | None = None,
) -> RunResult:
    """Each node alone for the same rounds and steps: a federation of one, per node."""
    runs = [
        run_federated(f"local {m.name}", model, config, [m], aggregate, hooks=hooks)
        for m in members
    ]
    curve = tuple(tuple(run.curve[r][0] for run in runs) for r in range(config.rounds + 1))
    return RunResult(
        "local",
        tuple(m.name for m in members),
        curve,
        sum(run.steps for run in runs),
        sum(run.seconds for run in runs),
        tuple(run.adapters[0] for run in runs),
        config.rounds,
    )


def run_centralized(
    model: LoadedModel,
    config: ExperimentConfig,
    members: Sequence[Participant],
    aggregate: Aggregate,
    *,
    hooks: Hooks | None = None,
) -> RunResult:
    """One model on the pooled training data, with the federation's total steps per round,
    evaluated on every node's held-out split."""
    pooled = NodeData(train=tuple(e for m in members for e in m.data.train))
    central = Participant(index=0, name="central", data=pooled, spec=config.peft())
    result = run_federated(
        "centralized",
        model,
        config,
        [central],
        aggregate,
        steps=config.steps * len(members),
        eval_sets=[(m.name, m.data.eval) for m in members],
        hooks=hooks,
    )
    return result


def run_personalized(
    model: LoadedModel,
    config: ExperimentConfig,
    members: Sequence[Participant],
    federated: RunResult,
    aggregate: Aggregate,
    *,
    steps: int,
    hooks: Hooks | None = None,
) -> RunResult:
    """Each node fine-tunes the federation's final global adapter on its own training data
    for ``steps`` optimizer steps (one more round, kept local: a federation of one), and is
    evaluated on its own held-out split; ``steps=0`` keeps the global adapter as it is.

    ``curve`` has two rows: each node's start (the global adapter, as measured before its
    fine-tune), then its personalized adapter.
    """
    if steps < 0:
        raise TrainingError(f"personalization steps must be >= 0, got {steps}")
    names = [m.name for m in members]
    if list(federated.nodes) != names:
        raise TrainingError(f"the federated run evaluated {federated.nodes}, not {names}")
    runs = [
        run_federated(
            f"personalized {m.name}",
            model,
            config,
            [m],
            aggregate,
            steps=steps or None,
            hooks=hooks,
            start=federated.start_for(i, m.spec),
            rounds=1 if steps else 0,
        )
        for i, m in enumerate(members)
    ]
    return RunResult(
        "personalized",
        tuple(names),
        (tuple(run.curve[0][0] for run in runs), tuple(run.final[0] for run in runs)),
        sum(run.steps for run in runs),
        sum(run.seconds for run in runs),
        tuple(run.adapters[0] for run in runs),
        federated.last_round + (1 if steps else 0),
    )


def score(
    model: LoadedModel, config: ExperimentConfig, run: RunResult, examples: Sequence[Example]
) -> tuple[float, ...]:
    """Each node's final model of ``run`` evaluated on ``examples`` (a model shared by several
    nodes is evaluated once)."""
    losses: dict[bytes, float] = {}
    for adapter in run.adapters:
        if adapter not in losses:
            losses[adapter] = evaluate_global(model, config, adapter, examples)
    return tuple(losses[adapter] for adapter in run.adapters)
