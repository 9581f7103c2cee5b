"""The training node as a Flower ``ClientApp``: the same training, pinning and on-chain
commitment as ``loraledger node train`` (:func:`fl_node.node.submit_round`).

``query`` joins the task (stake + join, with the node's own account); ``train`` trains the round
the server opened and replies with the CID, digest and metrics it committed. Weights never travel
in messages. A process that handles several messages (a simulation's Ray actor) keeps each node's
chain connection, store and data in :data:`_WORKERS`, keyed by the node's whole configuration, and
one base model per source in :data:`_MODELS`, shared by the nodes it simulates (training attaches
and detaches its own adapter): Flower gives a ClientApp no other place to keep them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from flower_app.config import NodeConfig
from flower_app.messages import Instruction, JoinReply, TrainReply
from loraledger.errors import LoRALedgerError

logger = logging.getLogger(__name__)


class NodeDroppedOut(LoRALedgerError):
    """The node is configured (``drop-out``) to leave the round without submitting."""


@dataclass
class _Worker:
    """One node's live parts: chain session, store, model and data, loaded once per process."""

    config: NodeConfig
    session: Any  # chain.session.Session
    model: Any  # fl_node.model.LoadedModel
    data: Any  # fl_node.data.NodeData

    @classmethod
    def load(cls, config: NodeConfig) -> _Worker:
        from chain.network import parse_network
        from chain.session import open_session
        from flower_app.accounts import resolve_account

        network = parse_network(config.ledger.network)
        account = resolve_account(config.account, network)
        session = open_session(
            network,
            account=account,
            ipfs=config.ledger.ipfs,
            ledger=config.ledger.ledger,
            from_block=config.ledger.from_block,
            state_root=config.work_dir / "nodes" if config.work_dir else None,
            timeout=30,
        )
        model, data = load_model_and_data(config)
        logger.info(
            "node %s: %s on %s examples, rank %s",
            account.address,
            model.model_id,
            len(data.train),
            config.rank,
        )
        return cls(config, session, model, data)


def load_model_and_data(config: NodeConfig) -> tuple[Any, Any]:
    """The node's base model and its data: its own file, or its shard of the bundled sample."""
    from fl_node.data import load_examples, sample_examples, split_shards, train_eval_split
    from fl_node.model import ModelConfig, load_base_model

    if config.data is not None:
        examples = load_examples(config.data)
    else:
        shards = split_shards(
            sample_examples(),
            config.num_partitions,
            config.shard_strategy,  # type: ignore[arg-type]
            seed=config.ledger.task_id,
        )
        examples = shards[config.partition_id]
    data = train_eval_split(examples, config.eval_fraction, seed=config.partition_id)
    model = _MODELS.get(config.model)
    if model is None:
        model = _MODELS[config.model] = load_base_model(ModelConfig(source=config.model))
    return model, data


_WORKERS: dict[NodeConfig, _Worker] = {}
_MODELS: dict[str, Any] = {}  # fl_node.model.LoadedModel by source


def _worker(context: Context, overrides: Mapping[str, Any]) -> _Worker:
    config = NodeConfig.from_config(
        {**dict(context.run_config), **overrides}, dict(context.node_config)
    )
    worker = _WORKERS.get(config)
    if worker is None:
        worker = _WORKERS[config] = _Worker.load(config)
    return worker


def handle_join(message: Message, context: Context, overrides: Mapping[str, Any]) -> Message:
    from fl_node.node import join

    worker = _worker(context, overrides)
    session, config = worker.session, worker.config
    Instruction.from_record(message.content).check_against(
        session.ledger.address, session.ledger.chain.chain_id, config.ledger.task_id
    )
    joined_now = False
    if not session.ledger.member(config.ledger.task_id, session.address).joined:
        join(session, config.ledger.task_id)
        joined_now = True
    return Message(
        JoinReply(session.address, config.rank, joined_now).to_record(), reply_to=message
    )


def handle_train(message: Message, context: Context, overrides: Mapping[str, Any]) -> Message:
    from fl_node.node import submit_round

    worker = _worker(context, overrides)
    session, config = worker.session, worker.config
    instruction = Instruction.from_record(message.content)
    instruction.check_against(
        session.ledger.address, session.ledger.chain.chain_id, config.ledger.task_id
    )
    if config.drop_out:
        raise NodeDroppedOut(
            f"node {session.address} is configured to drop out of round {instruction.round}"
        )
    open_round = session.ledger.open_round(config.ledger.task_id)
    if open_round != instruction.round:
        raise LoRALedgerError(
            f"the server asks for round {instruction.round} but the chain has round "
            f"{open_round or 'none'} open"
        )
    began = time.perf_counter()
    peft, settings = config.training()
    submitted = submit_round(
        session, config.ledger.task_id, worker.model, worker.data, peft=peft, settings=settings
    )
    reply = TrainReply(
        node=session.address,
        round=submitted.round,
        cid=submitted.cid or "",  # hidden until the reveal (``handle_reveal``)
        digest=submitted.digest,
        num_examples=submitted.num_examples,
        rank=config.rank,
        resumed=submitted.resumed,
        train_seconds=round(time.perf_counter() - began, 3),
        eval_loss_before=submitted.eval_loss_before,
        eval_loss_after=submitted.eval_loss_after,
    )
    return Message(reply.to_record(), reply_to=message)


def handle_reveal(message: Message, context: Context, overrides: Mapping[str, Any]) -> Message:
    """Pin and reveal the update committed in the instruction's round (the round is
    ``REVEALING``: every node committed, or the commit window passed)."""
    from fl_node.node import reveal_round

    worker = _worker(context, overrides)
    session, config = worker.session, worker.config
    instruction = Instruction.from_record(message.content)
    instruction.check_against(
        session.ledger.address, session.ledger.chain.chain_id, config.ledger.task_id
    )
    revealed = reveal_round(session, config.ledger.task_id, instruction.round)
    reply = TrainReply(
        node=session.address,
        round=revealed.round,
        cid=revealed.cid or "",
        digest=revealed.digest,
        num_examples=revealed.num_examples,
        rank=config.rank,
        resumed=revealed.resumed,
        train_seconds=0.0,
        eval_loss_before=revealed.eval_loss_before,
        eval_loss_after=revealed.eval_loss_after,
    )
    return Message(reply.to_record(), reply_to=message)


def build_client_app(overrides: Mapping[str, Any] | None = None) -> ClientApp:
    """The ClientApp; ``overrides`` are laid over the run config (the simulation passes its own,
    since Flower's simulation API starts runs with an empty run config)."""
    extra = dict(overrides or {})
    client = ClientApp()

    @client.query()
    def _query(message: Message, context: Context) -> Message:
        return handle_join(message, context, extra)

    @client.train()
    def _train(message: Message, context: Context) -> Message:
        return handle_train(message, context, extra)

    @client.evaluate()
    def _reveal(message: Message, context: Context) -> Message:
        return handle_reveal(message, context, extra)

    return client


app = build_client_app()
"""The ClientApp that ``flwr run`` loads (``[tool.flwr.app.components] clientapp``)."""
