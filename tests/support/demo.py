"""Real demo rounds on the tiny model, embedded chain and store: for tests that need what a
whole round publishes (reports, global adapters) rather than a synthetic one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.bindings import Ledger
from chain.events import History
from chain.network import connect
from demo.run import DemoConfig, DemoResult, run_demo
from fl_node.data import sample_examples
from fl_node.model import ModelConfig, create_tiny_model, load_base_model
from ipfs import ContentStore, open_store

TINY_SHAPE: dict[str, Any] = {
    "steps": 1,
    "strategy": "fedavg",
    "task_rank": 4,
    "ranks": (4,),
    "max_length": 64,
    "batch_size": 2,
    "validation_examples": 4,
    "node_eval_examples": 4,
}
"""The smallest demo that still trains, scores and pays (seconds per round)."""


@dataclass
class PlayedDemo:
    ledger: Ledger
    history: History
    store: ContentStore
    result: DemoResult
    model_folder: Path

    @property
    def task_id(self) -> int:
        return self.result.task_id


def play_tiny_demo(tmp: Path, **config: Any) -> PlayedDemo:
    """Run the demo with :data:`TINY_SHAPE` and ``config`` (nodes, rounds, malicious ...)."""
    corpus = [m.content for e in sample_examples() for m in e.messages]
    folder = create_tiny_model(tmp / "tiny", corpus)
    model = load_base_model(ModelConfig(source=str(folder)))
    chain = connect("embedded")
    store = open_store(f"embedded:{tmp / 'store'}")
    result = run_demo(chain, store, model, DemoConfig(**(TINY_SHAPE | config)), tmp / "out")
    ledger = Ledger(chain, result.ledger)
    return PlayedDemo(ledger, History(ledger), store, result, folder)
