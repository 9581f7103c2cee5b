"""What every experiment shares: its configuration, the base model and the node shards.

:class:`ExperimentConfig` is validated on construction and written, whole, into every
result, so a table can always be traced to the settings and seeds that produced it. An
experiment runs once per seed of ``seeds``; a run's configuration holds that one seed
(:meth:`ExperimentConfig.for_seed`).
"""

from __future__ import annotations

import math
import platform
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, get_args

import torch
from pydantic import ValidationInfo, field_validator, model_validator

from fl_node.data import (
    Example,
    NodeData,
    Strategy,
    sample_examples,
    split_shards,
    train_eval_split,
)
from fl_node.model import LoadedModel, ModelConfig, create_tiny_model, load_base_model
from fl_node.train import TrainSettings
from loraledger.errors import ConfigError
from loraledger.settings import Invalid, Settings
from loraledger.update import PeftSpec
from loraledger.versions import software_versions

TASK_ID = 1
"""The task id written into every update and global adapter of an experiment."""

TINY = "tiny"
"""``--tiny``: a tiny Llama built on the fly (seconds, for tests); numbers mean nothing."""


class ExperimentConfig(Settings):
    """One experiment's settings; every run of the experiment shares them.

    ``steps`` is optimizer steps per node per round. ``examples`` keeps a seeded random
    subset of the bundled corpus (``None``: all 2,180 Q/A pairs); ``eval_examples`` caps
    each node's held-out split (taken first, ``eval_fraction`` of its shard).
    ``seeds``: one run per seed; the first is the seed a run uses (:attr:`seed`).
    ``pooled_examples``: a pooled test set of that many distinct examples drawn from the data
    before it is split over the nodes (:func:`split_data`); 0 draws none.
    """

    model: str = "smollm2"
    nodes: int = 4
    rounds: int = 4
    steps: int = 5
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 4
    max_length: int = 128
    learning_rate: float = 5e-4
    rank: int = 8
    split: Strategy = "label"
    dirichlet_alpha: float = 0.5
    eval_fraction: float = 0.1
    eval_examples: int = 32
    examples: int | None = None
    pooled_examples: int = 0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    @field_validator("nodes", "rounds", "steps", "batch_size", "rank", "eval_examples")
    @classmethod
    def _positive(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ValueError(f"{info.field_name} must be positive, got {value}")
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("seeds needs at least one seed")
        if len(set(value)) != len(value) or min(value) < 0:
            raise ValueError(f"seeds must be distinct and >= 0, got {list(value)}")
        return value

    @field_validator("pooled_examples")
    @classmethod
    def _not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"pooled_examples must be >= 0, got {value}")
        return value

    @field_validator("max_length")
    @classmethod
    def _room_for_a_pair(cls, value: int) -> int:
        if value < 8:
            raise ValueError(f"max_length must be at least 8, got {value}")
        return value

    @field_validator("learning_rate")
    @classmethod
    def _rate_positive(cls, value: float) -> float:
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"learning rate must be positive, got {value}")
        return value

    @field_validator("split", mode="before")
    @classmethod
    def _a_split(cls, value: object) -> object:
        if value not in get_args(Strategy):
            raise ValueError(f"split must be iid, label or dirichlet, got {value!r}")
        return value

    @field_validator("eval_fraction")
    @classmethod
    def _a_fraction(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"eval fraction must be in (0, 1), got {value}")
        return value

    @model_validator(mode="after")
    def _enough_examples(self) -> Self:
        if self.examples is not None and self.examples - self.pooled_examples < 2 * self.nodes:
            raise Invalid(
                f"{self.examples} examples cannot give {self.nodes} nodes a training and a "
                f"held-out example each besides {self.pooled_examples} pooled test examples",
                hint=f"use at least {2 * self.nodes + self.pooled_examples} examples",
            )
        return self

    @property
    def seed(self) -> int:
        """The seed of a run: the first of ``seeds`` (the only one in :meth:`for_seed`)."""
        return self.seeds[0]

    def for_seed(self, seed: int) -> ExperimentConfig:
        """The configuration of the run with ``seed``."""
        return self.replace(seeds=(seed,))

    @property
    def tiny(self) -> bool:
        return self.model == TINY

    def peft(self, rank: int | None = None) -> PeftSpec:
        """The LoRA settings at ``rank`` (default: the configured one), alpha = 2 x rank."""
        r = rank or self.rank
        return PeftSpec(rank=r, alpha=2.0 * r, dropout=0.0, target_modules=self.target_modules)

    def train_settings(self, steps: int, seed: int) -> TrainSettings:
        """One ``train_round`` call's schedule: ``steps`` optimizer steps with ``seed``."""
        return TrainSettings(
            max_steps=steps,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            max_length=self.max_length,
            seed=seed,
        )

    def with_nodes(self, nodes: int) -> ExperimentConfig:
        return self.replace(nodes=nodes)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def environment() -> dict[str, Any]:
    """Where the numbers were measured: device, threads, versions."""
    versions = software_versions(("torch", "transformers", "peft"))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "python": platform.python_version(),
        "device": device,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        **versions,
    }


def load_model(config: ExperimentConfig, workdir: Path, **overrides: Any) -> LoadedModel:
    """The experiment's base model: SmolLM2 (or any source) or the tiny test model.

    ``overrides`` go to :class:`ModelConfig` (e.g. ``quantization="4bit"``).
    """
    source = config.model
    if config.tiny:
        corpus = [m.content for e in sample_examples() for m in e.messages]
        source = str(create_tiny_model(workdir / "tiny-model", corpus, seed=config.seed))
    return load_base_model(ModelConfig(source=source, **overrides))


@dataclass(frozen=True)
class Participant:
    """A simulated node: its name (the ``node`` field of its updates), data and LoRA rank."""

    index: int
    name: str
    data: NodeData
    spec: PeftSpec


@dataclass(frozen=True)
class Split:
    """The nodes' data and the pooled test set (no example of which any node trains on)."""

    nodes: list[NodeData]
    pooled: tuple[Example, ...]


def node_shards(config: ExperimentConfig, nodes: int | None = None) -> list[NodeData]:
    """The nodes' shards of :func:`split_data`."""
    return split_data(config, nodes).nodes


def split_data(config: ExperimentConfig, nodes: int | None = None) -> Split:
    """The bundled corpus split into ``nodes`` non-IID shards, each with a held-out split,
    and a pooled test set of ``config.pooled_examples`` distinct examples.

    The pooled set is a seeded sample of the distinct examples of the data; every copy of
    them (the corpus repeats some Q/A pairs) is taken out before the rest is split over the
    nodes, so no node trains on, or holds out, an example of the pooled set. The split
    (``config.split``) and the hold-out are seeded; every shard must keep at least one
    training and one held-out example.
    """
    count = nodes or config.nodes
    examples = sample_examples()
    if config.examples is not None and config.examples < len(examples):
        examples = random.Random(config.seed).sample(examples, config.examples)
    pooled: tuple[Example, ...] = ()
    if config.pooled_examples:
        distinct = list(dict.fromkeys(examples))
        if config.pooled_examples >= len(distinct):
            raise ConfigError(
                f"a pooled test set of {config.pooled_examples} examples leaves nothing to "
                f"train on: the data has {len(distinct)} distinct examples",
                hint="use fewer pooled examples or more --examples",
            )
        pooled = tuple(
            random.Random(f"pooled:{config.seed}").sample(distinct, config.pooled_examples)
        )
        held = set(pooled)
        examples = [e for e in examples if e not in held]
    shards = split_shards(
        examples, count, config.split, alpha=config.dirichlet_alpha, seed=config.seed
    )
    out: list[NodeData] = []
    for index, shard in enumerate(shards):
        if len(shard) < 2:
            raise ConfigError(
                f"node {index} of {count} got {len(shard)} example(s) from the "
                f"{config.split} split; it needs a training and a held-out example",
                hint="use fewer nodes, more examples or a larger --dirichlet-alpha",
            )
        data = train_eval_split(shard, config.eval_fraction, seed=config.seed + index)
        out.append(NodeData(train=data.train, eval=data.eval[: config.eval_examples]))
    return Split(out, pooled)


def participants(
    config: ExperimentConfig, shards: list[NodeData], ranks: list[int] | None = None
) -> list[Participant]:
    """One participant per shard, named ``node-00``, ``node-01``...; ``ranks`` per node."""
    if ranks is not None and len(ranks) != len(shards):
        raise ConfigError(f"{len(ranks)} ranks given for {len(shards)} nodes")
    return [
        Participant(
            index=i,
            name=f"node-{i:02d}",
            data=data,
            spec=config.peft(ranks[i] if ranks is not None else None),
        )
        for i, data in enumerate(shards)
    ]
