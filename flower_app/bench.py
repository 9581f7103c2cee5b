"""Per-round overhead of the chain + IPFS layer on Flower, and the time per extra node.

The same simulated federation (nodes, shards, ranks, model, steps, strategy) runs twice: with the
ledger (:mod:`flower_app.simulation`: join, open, pin, commit, verify, publish, reward,
finalize) and as plain Flower with the weights in messages (:mod:`flower_app.baseline`).
Rounds after the first are compared (the first includes loading the model in every actor, which
happens at join time with the ledger and in round 1 without it). Then the ledger federation runs
with more nodes: the time per extra node is the slope of round time over node count.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, replace
from typing import Any

from flower_app.federation import FederationPlan, prepare
from flower_app.simulation import SimulationSettings, simulate
from loraledger.errors import ConfigError


@dataclass(frozen=True)
class OverheadResult:
    nodes: int
    more_nodes: int
    rounds: int
    ledger_round_s: float  # mean over rounds 2.., `nodes` nodes
    baseline_round_s: float
    more_ledger_round_s: float  # mean over rounds 2.., `more_nodes` nodes
    more_baseline_round_s: float

    @property
    def overhead(self) -> float:
        """Share of the ledger round's time that the chain + IPFS layer adds."""
        return (self.ledger_round_s - self.baseline_round_s) / self.ledger_round_s

    @property
    def ratio(self) -> float:
        return self.ledger_round_s / self.baseline_round_s

    @property
    def per_extra_node_ledger_s(self) -> float:
        return (self.more_ledger_round_s - self.ledger_round_s) / (self.more_nodes - self.nodes)

    @property
    def per_extra_node_baseline_s(self) -> float:
        return (self.more_baseline_round_s - self.baseline_round_s) / (self.more_nodes - self.nodes)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "overhead": self.overhead,
            "ratio": self.ratio,
            "per_extra_node_ledger_s": self.per_extra_node_ledger_s,
            "per_extra_node_baseline_s": self.per_extra_node_baseline_s,
        }


def _warm_mean(seconds: list[float]) -> float:
    return statistics.fmean(seconds[1:])


def ledger_rounds(plan: FederationPlan, settings: SimulationSettings) -> list[float]:
    with prepare(plan) as federation:
        result = simulate(federation, settings)
    return [r.seconds for r in result.rounds]


def baseline_rounds(plan: FederationPlan, settings: SimulationSettings) -> list[float]:
    """Round times of the plain-Flower federation (see :func:`run_baseline`)."""
    return [r.seconds for r in run_baseline(plan, settings)[1].rounds]


def run_baseline(plan: FederationPlan, settings: SimulationSettings) -> tuple[bytes, Any]:
    """The plain-Flower federation, configured exactly as :func:`ledger_rounds` configures its
    nodes; returns the initial adapter and the :class:`~flower_app.baseline.BaselineLog`."""
    from flwr.simulation import run_simulation

    from chain.bindings import Ledger
    from chain.events import History
    from chain.network import connect
    from flower_app.baseline import (
        BaselineLog,
        build_baseline_client_app,
        build_baseline_server_app,
    )
    from ipfs import open_store

    with prepare(
        plan
    ) as federation:  # the same task id, initial adapter and node config as the ledger run
        chain = connect(federation.network)
        created = History(Ledger(chain, federation.ledger), federation.from_block).task_created(
            federation.task_id
        )
        initial = open_store(federation.ipfs).get_bytes(created.initial_global_cid)
        run_config = federation.run_config(
            **{
                "steps": settings.steps,
                "batch-size": settings.batch_size,
                "max-length": settings.max_length,
                "shard-strategy": settings.shard_strategy,
                "num-partitions": plan.nodes,
                "eval-fraction": settings.eval_fraction,
            }
        )
        logs: list[BaselineLog] = []
        run_simulation(
            server_app=build_baseline_server_app(
                initial, plan.rounds, settings.strategy, plan.nodes, logs.append
            ),
            client_app=build_baseline_client_app(run_config),
            num_supernodes=plan.nodes,
            backend_config={
                "client_resources": {"num_cpus": settings.cpus_per_node, "num_gpus": 0.0},
                "init_args": {
                    "num_cpus": settings.cpus or os.cpu_count() or 1,
                    "num_gpus": 0,
                    "include_dashboard": False,
                    "log_to_driver": not settings.quiet,
                },
            },
        )
    if not logs:
        raise RuntimeError("the baseline federation ended before its ServerApp finished")
    return initial, logs[0]


def measure(plan: FederationPlan, settings: SimulationSettings, more_nodes: int) -> OverheadResult:
    if plan.rounds < 2:
        raise ConfigError(
            "the overhead benchmark needs at least 2 rounds (round 1 includes loading the model)"
        )
    if more_nodes <= plan.nodes:
        raise ConfigError(f"--more-nodes must exceed --nodes ({plan.nodes}), got {more_nodes}")
    more = replace(plan, nodes=more_nodes, work_dir=plan.work_dir / f"n{more_nodes}")
    small = replace(plan, work_dir=plan.work_dir / f"n{plan.nodes}")
    result = OverheadResult(
        nodes=plan.nodes,
        more_nodes=more_nodes,
        rounds=plan.rounds,
        ledger_round_s=_warm_mean(
            ledger_rounds(replace(small, work_dir=small.work_dir / "ledger"), settings)
        ),
        baseline_round_s=_warm_mean(
            baseline_rounds(replace(small, work_dir=small.work_dir / "baseline"), settings)
        ),
        more_ledger_round_s=_warm_mean(
            ledger_rounds(replace(more, work_dir=more.work_dir / "ledger"), settings)
        ),
        more_baseline_round_s=_warm_mean(
            baseline_rounds(replace(more, work_dir=more.work_dir / "baseline"), settings)
        ),
    )
    return result
