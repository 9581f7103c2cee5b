"""Personalization: a short local fine-tune of a task's global adapter, kept for the node's own use.

What FederatedScope-LLM calls personalized federated learning: the federation's global adapter is
the starting point, and a node fine-tunes it for a few steps on its own data. The result is the
node's private model: it is never pinned, committed or revealed, so it earns nothing and costs
nothing on chain. The start is the published global adapter checked against the digest the chain
recorded (as every round's start is), and the result has the global adapter's LoRA settings
and adapter config, so it can be written as a folder that plain peft loads
(:func:`~loraledger.update.unpack_global_adapter`).

Training is :func:`~fl_node.train.train_round` (the same loop, seeds and checks as a round), with
the node's settings and the global adapter's peft settings; the node's own held-out split
measures the global adapter and the personalized one on the same examples.
"""

from __future__ import annotations

from dataclasses import dataclass

from fl_node.data import NodeData
from fl_node.model import LoadedModel
from fl_node.train import NodeTrainConfig, ProgressCallback, TrainSettings, train_round
from loraledger.update import (
    Expected,
    GlobalAdapter,
    pack_next_global,
    parse_global_adapter,
    parse_update,
)

PERSONALIZATION_NAME = "personalization.json"
"""What a personalized adapter's folder records besides the peft files: where it started, how
it was trained and how both adapters did on the node's held-out split."""

PERSONAL_NODE = "personal"
"""The node name recorded in the (never submitted) training metadata."""


@dataclass(frozen=True)
class Personalized:
    """A node's personalized adapter and how it compares with the global one it started from.

    ``adapter`` is packed like a global adapter of the start's task and round (same peft
    settings and adapter config; its digest is not on chain: it is nobody's result).
    ``eval_loss_global`` and ``eval_loss_personal`` are on the node's own held-out split
    (``None`` without one).
    """

    adapter: GlobalAdapter
    adapter_bytes: bytes
    start: GlobalAdapter
    eval_loss_global: float | None
    eval_loss_personal: float | None
    train_loss_first: float
    train_loss_last: float
    steps: int
    num_examples: int
    train_seconds: float


def personalize(
    model: LoadedModel,
    data: NodeData,
    global_adapter: bytes,
    expected_digest: str,
    *,
    task_id: int,
    settings: TrainSettings,
    progress: ProgressCallback | None = None,
) -> Personalized:
    """Fine-tune ``global_adapter`` (bytes of task ``task_id``'s published global adapter, checked
    against ``expected_digest`` and the loaded base model before any training) on ``data.train``
    with ``settings``; evaluate both adapters on ``data.eval``.

    Raises :class:`~loraledger.errors.UpdateRejected` for an adapter that is not the expected
    one (digest, task or base model), :class:`~fl_node.data.DataError` for data with nothing to
    train on, and the training errors of :func:`~fl_node.train.train_round`.
    """
    start = parse_global_adapter(
        global_adapter,
        Expected(task_id=task_id, base_model=model.model_id, digest=expected_digest),
    )
    meta = start.metadata
    config = NodeTrainConfig(
        task_id=task_id, round=meta.round, node=PERSONAL_NODE, peft=meta.peft, train=settings
    )
    result = train_round(config, model, data, global_adapter, expected_digest, progress)
    tensors = parse_update(result.update).tensors
    packed = pack_next_global(tensors, start, round_=meta.round, num_updates=meta.num_updates)
    metrics = result.metrics
    return Personalized(
        adapter=parse_global_adapter(packed),
        adapter_bytes=packed,
        start=start,
        eval_loss_global=metrics.eval_loss_before,
        eval_loss_personal=metrics.eval_loss_after,
        train_loss_first=result.losses[0],
        train_loss_last=result.losses[-1],
        steps=len(result.losses),
        num_examples=result.metadata.num_examples,
        train_seconds=result.train_seconds,
    )
