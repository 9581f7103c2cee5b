"""Publishing a task, as its sponsor: the initial global adapter, the task, its funded pool.

The initial adapter is built from the base model the nodes will train (LoRA: B = 0, so it
starts as the base model) for the task id it will get, pinned, and committed on chain by CID
and sha256 digest when the task is created; the sponsor then deposits the reward pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from chain.bindings import (
    DEFAULT_CHALLENGE_WINDOW,
    DEFAULT_GRACE_PERIOD,
    DEFAULT_MAX_EXAMPLES,
    DEFAULT_SLASH_WINDOW,
    Ledger,
    TaskParams,
    Token,
    base_model_hash,
)
from fl_node.model import LoadedModel
from fl_node.train import adapter_tensors, attach_adapter, detach_adapter
from ipfs import ContentStore
from loraledger.errors import ChainError
from loraledger.privacy import NO_PRIVACY, TaskPrivacy
from loraledger.update import PeftSpec, pack_global_adapter, sha256_hex


@dataclass(frozen=True)
class TaskRoles:
    """Who runs a task and on what terms (docs/accountability.md): its one aggregator, its
    validators and how many of them must sign a result (``quorum``; default: a strict
    majority), the bonds each locks, the validators' share of each round's reward, and the
    windows that hold them to account."""

    aggregator: str
    validators: tuple[str, ...]
    quorum: int | None = None
    aggregator_bond: int = 0
    validator_bond: int = 0
    validator_share_bps: int = 0
    challenge_window: int = DEFAULT_CHALLENGE_WINDOW
    slash_window: int = DEFAULT_SLASH_WINDOW
    grace_period: int = DEFAULT_GRACE_PERIOD

    @property
    def effective_quorum(self) -> int:
        return self.quorum if self.quorum is not None else len(self.validators) // 2 + 1


def initial_global_adapter(
    model: LoadedModel, spec: PeftSpec, task_id: int, *, seed: int = 0
) -> bytes:
    """A freshly initialised adapter for ``model`` (LoRA: B = 0, so it starts as the base model),
    packed as a global adapter for ``task_id``: what a sponsor publishes when creating a task."""
    import torch

    torch.manual_seed(seed)
    peft_model = attach_adapter(model, spec)
    try:
        tensors = adapter_tensors(peft_model)
    finally:
        detach_adapter(peft_model, model)
    return pack_global_adapter(
        tensors, task_id=task_id, round_=0, base_model=model.model_id, peft=spec
    )


def create_funded_task(
    ledger: Ledger,
    token: Token,
    params: TaskParams,
    sponsor: LocalAccount,
    *,
    fund: int,
    expected_id: int | None = None,
) -> int:
    """Create a task (``sponsor`` becomes its sponsor) and deposit ``fund`` tokens into its pool.

    ``expected_id``: the id the initial adapter was built for (it is written into the adapter);
    a task created by someone else in between is refused rather than left mismatched.
    """
    task_id, _ = ledger.create_task(params, sponsor)
    if expected_id is not None and task_id != expected_id:
        raise ChainError(
            f"another task was created meanwhile: the adapter was built for task {expected_id}, "
            f"got {task_id}",
            hint="create the task again",
        )
    if fund:
        token.approve(ledger.address, fund, sponsor)
        ledger.fund_task(task_id, fund, sponsor)
    return task_id


def publish_task(
    ledger: Ledger,
    token: Token,
    store: ContentStore,
    model: LoadedModel,
    spec: PeftSpec,
    sponsor: LocalAccount,
    *,
    reward_per_round: int,
    min_stake: int,
    window: int,
    max_rounds: int,
    fund: int,
    roles: TaskRoles,
    reveal_window: int | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int = 0,
    privacy: TaskPrivacy = NO_PRIVACY,
) -> tuple[int, str]:
    """The sponsor's side: build and pin the initial adapter for the next task id, create the
    task with its CID and digest, its aggregator and validators (``roles``), and fund its pool
    with ``fund`` tokens. Nodes commit during ``window`` seconds and reveal during
    ``reveal_window`` more (default: ``window``); each claims at most ``max_examples`` examples
    per round; ``privacy`` is the differential privacy the task requires
    (docs/privacy.md). Returns the task id and the initial adapter's CID."""
    task_id = ledger.task_count() + 1
    adapter = initial_global_adapter(model, spec, task_id, seed=seed)
    cid = store.put_bytes(adapter)
    store.pin(cid)
    params = TaskParams(
        base_model_hash=base_model_hash(model.model_id),
        initial_global_cid=cid,
        initial_global_digest=bytes.fromhex(sha256_hex(adapter)),
        token=token.address,
        reward_per_round=reward_per_round,
        min_stake=min_stake,
        submission_window=window,
        max_rounds=max_rounds,
        reveal_window=reveal_window,
        max_examples=max_examples,
        aggregator=roles.aggregator,
        validators=roles.validators,
        quorum=roles.effective_quorum,
        aggregator_bond=roles.aggregator_bond,
        validator_bond=roles.validator_bond,
        validator_share_bps=roles.validator_share_bps,
        challenge_window=roles.challenge_window,
        slash_window=roles.slash_window,
        grace_period=roles.grace_period,
        privacy=privacy,
    )
    create_funded_task(ledger, token, params, sponsor, fund=fund, expected_id=task_id)
    return task_id, cid
