"""The same federation without the ledger: plain Flower, weights in messages.

The baseline of the overhead benchmark (:mod:`flower_app.bench`). Nodes load the same model
and shard and run the same local training (:func:`fl_node.train.train_round`) from the same
global adapter, and the server combines their updates with the same strategy
(:func:`aggregator.combine.combine`); but the adapter and the updates travel inside Flower
messages (their exact bytes, as ``uint8`` arrays), and nothing is pinned, committed, verified
against commitments, rewarded or finalized. The difference in round time is the cost of the
chain + IPFS layer.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from flower_app.config import NodeConfig

logger = logging.getLogger(__name__)

_LOADED: dict[NodeConfig, tuple[Any, Any]] = {}  # a Ray actor's model and data, kept between rounds


def _bytes_record(key: str, data: bytes) -> ArrayRecord:
    return ArrayRecord({key: Array(np.frombuffer(data, dtype=np.uint8))})


def _record_bytes(record: ArrayRecord, key: str) -> bytes:
    return bytes(record[key].numpy().tobytes())


@dataclass
class BaselineRound:
    round: int
    nodes: int
    seconds: float


@dataclass
class BaselineLog:
    rounds: list[BaselineRound] = field(default_factory=list)
    final_adapter: bytes = b""


def build_baseline_client_app(overrides: Mapping[str, Any]) -> ClientApp:
    extra = dict(overrides)
    client = ClientApp()

    @client.train()
    def _train(message: Message, context: Context) -> Message:
        from fl_node.train import NodeTrainConfig, train_round
        from flower_app.client_app import load_model_and_data

        config = NodeConfig.from_config(
            {**dict(context.run_config), **extra}, dict(context.node_config)
        )
        if config not in _LOADED:
            _LOADED[config] = load_model_and_data(config)
        model, data = _LOADED[config]
        global_bytes = _record_bytes(message.content.array_records["global"], "adapter")
        round_ = int(str(message.content.config_records["round"]["round"]))
        peft, settings = config.training()
        node = f"0x{config.partition_id:040x}"
        result = train_round(
            NodeTrainConfig(
                task_id=config.ledger.task_id, round=round_, node=node, peft=peft, train=settings
            ),
            model,
            data,
            global_bytes,
            hashlib.sha256(global_bytes).hexdigest(),
        )
        content = RecordDict(
            {
                "update": _bytes_record("update", result.update),
                "metrics": MetricRecord({"num-examples": result.metadata.num_examples}),
            }
        )
        return Message(content, reply_to=message)

    return client


def build_baseline_server_app(
    initial_adapter: bytes,
    rounds: int,
    strategy: str,
    min_nodes: int,
    on_done: Callable[[BaselineLog], None],
) -> ServerApp:
    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        from aggregator.client_update import ClientUpdate
        from aggregator.combine import StrategyConfig, combine
        from loraledger.update import pack_next_global, parse_global_adapter, parse_update

        log = BaselineLog()
        current = initial_adapter
        config = StrategyConfig(name=strategy)  # type: ignore[arg-type]
        while (
            len(nodes := sorted(grid.get_node_ids())) < min_nodes
        ):  # nodes register after the app starts
            time.sleep(0.2)
        for round_ in range(1, rounds + 1):
            began = time.perf_counter()
            start = parse_global_adapter(current)
            content = RecordDict(
                {
                    "global": _bytes_record("adapter", current),
                    "round": ConfigRecord({"round": round_}),
                }
            )
            messages = [
                Message(content, dst_node_id=n, message_type=MessageType.TRAIN) for n in nodes
            ]
            replies = [r for r in grid.send_and_receive(messages) if not r.has_error()]
            updates = []
            for reply in replies:
                parsed = parse_update(
                    _record_bytes(reply.content.array_records["update"], "update")
                )
                meta = parsed.metadata
                updates.append(
                    ClientUpdate.in_memory(
                        meta.node,
                        parsed.tensors,
                        num_examples=meta.num_examples,
                        rank=meta.peft.aggregation_shape[0],
                        alpha=meta.peft.aggregation_shape[1],
                    )
                )
            combined = combine(config, updates, start.tensors, start.metadata.peft)
            current = pack_next_global(
                combined.tensors, start, round_=round_, num_updates=len(updates)
            )
            log.rounds.append(BaselineRound(round_, len(replies), time.perf_counter() - began))
        log.final_adapter = current
        on_done(log)

    return server
