"""N virtual nodes on one machine through Flower's simulation engine (Ray).

The ServerApp runs in this process (a thread), the ClientApps in Ray actors that keep their
model and chain connection between messages. Each node trains on its own shard of the data with
its own rank (``ranks`` cycled by partition id) and signs with its own dev account. What the
rounds did is read back from the chain and the round reports afterwards.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from flower_app.federation import Federation
from flower_app.strategy import LedgerStrategy, RoundLog
from loraledger.settings import Settings

logger = logging.getLogger(__name__)


class SimulationSettings(Settings):
    """How the simulated nodes train and how Ray runs them."""

    steps: int = 2
    batch_size: int = 4
    max_length: int = 128
    strategy: str = "fedavg"
    shard_strategy: str = "iid"
    eval_fraction: float = 0.2  # of each node's shard, held out for its before/after eval loss
    drop_out: tuple[int, ...] = ()  # partition ids whose node joins but never submits
    cpus: int | None = None  # Ray's CPUs (default: this machine's), one per node at a time
    cpus_per_node: float = 1.0
    poll_seconds: float = 0.5
    quiet: bool = False  # keep the Ray actors' output (warnings of every node) off the console


@dataclass(frozen=True)
class SimulationResult:
    rounds: tuple[RoundLog, ...]
    seconds: float
    setup_seconds: float


def simulate(federation: Federation, settings: SimulationSettings) -> SimulationResult:
    """Run the federation's rounds with ``plan.nodes`` virtual nodes; raise if the ServerApp
    fails."""
    from flwr.simulation import run_simulation

    from flower_app.client_app import build_client_app
    from flower_app.server_app import build_server_app

    run_config = federation.run_config(
        **{
            "steps": settings.steps,
            "batch-size": settings.batch_size,
            "max-length": settings.max_length,
            "strategy": settings.strategy,
            "shard-strategy": settings.shard_strategy,
            "eval-fraction": settings.eval_fraction,
            "num-partitions": federation.plan.nodes,
            "poll-seconds": settings.poll_seconds,
            "drop-out-partitions": ",".join(str(p) for p in settings.drop_out),
        }
    )
    done: list[LedgerStrategy] = []
    cpus = settings.cpus or os.cpu_count() or 1
    backend: dict[str, Any] = {
        "client_resources": {"num_cpus": settings.cpus_per_node, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": cpus,
            "num_gpus": 0,
            "include_dashboard": False,
            "log_to_driver": not settings.quiet,
        },
    }
    began = time.perf_counter()
    run_simulation(
        server_app=build_server_app(run_config, on_done=done.append),
        client_app=build_client_app(run_config),
        num_supernodes=federation.plan.nodes,
        backend_config=backend,
    )
    seconds = time.perf_counter() - began
    if not done:
        raise RuntimeError(
            "the simulated federation ended before its ServerApp finished (see the log above)"
        )
    rounds = tuple(done[0].rounds)
    setup = seconds - sum(r.seconds for r in rounds)
    return SimulationResult(rounds, seconds, setup)
