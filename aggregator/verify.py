"""Verification of a round's submissions against their on-chain commitments.

Every commitment gets a verdict; a rejection carries a stable reason code and a sentence
saying what differed. Checks, in order:

1. *One update alone* (concurrently, bounded): the CID fetches (``unavailable``), its bytes
   have the committed sha256 (``digest_mismatch``), they are a valid update of this task,
   round and base model within the task's largest rank, all values finite
   (:func:`loraledger.update.parse_update`'s codes), made by the node that committed it
   (``wrong_node``), on the number of examples it committed (``examples_mismatch``), with the
   task's peft method, target modules and layer shapes (``spec_mismatch``).
2. *Against the others*: the same tensors as an earlier round's or an earlier submitter's
   update (``replayed_update``); the norm of the weight change against the round's
   median/MAD statistics (``norm_outlier``).
3. *Optionally, on the aggregator's own validation data*: the update's loss is not worse
   than the start adapter's by more than ``max_loss_increase`` (``validation_worse``).

Accepted updates are kept as files in a work folder, so aggregation streams them from disk.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from pydantic import Field, field_validator

from aggregator.client_update import LORA_A, LORA_B, ClientUpdate, lora_modules
from aggregator.errors import (
    REASON_EXAMPLES_MISMATCH,
    REASON_NORM_OUTLIER,
    REASON_REPLAYED,
    REASON_SPEC_MISMATCH,
    REASON_UNAVAILABLE,
    REASON_VALIDATION_WORSE,
    REASON_WRONG_NODE,
)
from aggregator.stats import OutlierPolicy, flag_outliers, lora_delta_norm
from ipfs import ContentStore
from loraledger.errors import ConfigError, StorageError, UpdateRejected
from loraledger.settings import Settings
from loraledger.update import (
    DEFAULT_MAX_BYTES,
    Expected,
    GlobalAdapter,
    PeftSpec,
    UpdateMetadata,
    parse_update,
)

logger = logging.getLogger(__name__)

Evaluator = Callable[[Mapping[str, torch.Tensor], PeftSpec], "float | None"]
"""Loss of an adapter (its tensors and peft settings) on the aggregator's validation data."""


@dataclass(frozen=True)
class Commitment:
    """What a node committed on chain for a round (from the ``UpdateSubmitted`` event)."""

    node: str
    cid: str
    digest: str  # sha256 hex
    num_examples: int
    block: int = 0


class VerifyPolicy(Settings):
    """How strict verification is. ``outliers=None`` turns the norm check off;
    ``max_loss_increase=None`` the validation check (it needs an evaluator anyway)."""

    max_rank: int | None = 64
    max_bytes: int = DEFAULT_MAX_BYTES
    outliers: OutlierPolicy | None = Field(default_factory=OutlierPolicy)
    max_loss_increase: float | None = 0.5
    fetch_workers: int = 4

    @field_validator("fetch_workers")
    @classmethod
    def _workers_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"fetch_workers must be positive, got {value}")
        return value

    @field_validator("max_loss_increase")
    @classmethod
    def _increase_not_negative(cls, value: float | None) -> float | None:
        if value is not None and not value >= 0:
            raise ValueError(f"max_loss_increase must be >= 0, got {value}")
        return value


@dataclass(frozen=True)
class Checked:
    """One commitment's verdict and what verification measured on the way."""

    commitment: Commitment
    reason: str | None = None
    detail: str | None = None
    path: Path | None = None  # the update's bytes in the work folder (accepted so far)
    metadata: UpdateMetadata | None = None
    tensor_digest: str | None = None
    norm: float | None = None
    z_score: float | None = None
    eval_loss: float | None = None

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def reject(self, reason: str, detail: str) -> Checked:
        return replace(self, reason=reason, detail=detail)

    def client_update(self) -> ClientUpdate:
        """The accepted update as the aggregation's input, read from its file when needed."""
        if self.path is None or self.metadata is None:
            raise ConfigError(f"the update of {self.commitment.node} was not accepted")
        rank, alpha = self.metadata.peft.aggregation_shape
        return ClientUpdate.from_safetensors(
            self.commitment.node,
            self.path,
            num_examples=self.commitment.num_examples,
            rank=rank,
            alpha=alpha,
        )


@dataclass(frozen=True)
class Verification:
    """Every commitment's verdict (in commitment order) and the start adapter's loss."""

    checked: tuple[Checked, ...]
    start_loss: float | None

    @property
    def accepted(self) -> list[Checked]:
        return [c for c in self.checked if c.accepted]


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw values: equal for equal tensors whatever the
    metadata around them (a re-signed copy of another update has the same tensor digest)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].contiguous()
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        if value.numel():
            h.update(value.reshape(-1).view(torch.uint8).numpy().data)  # no copy
    return h.hexdigest()


def verify_round(
    store: ContentStore,
    commitments: Sequence[Commitment],
    *,
    task_id: int,
    round_: int,
    start: GlobalAdapter,
    policy: VerifyPolicy,
    workdir: Path,
    seen: Mapping[str, str] | None = None,
    evaluator: Evaluator | None = None,
) -> Verification:
    """Verify every commitment of a round; ``seen`` maps earlier rounds' tensor digests to
    where they were submitted (for the replay check)."""
    workdir.mkdir(parents=True, exist_ok=True)
    expected = Expected(
        task_id=task_id,
        round=round_,
        base_model=start.metadata.base_model,
        max_rank=policy.max_rank,
    )
    with ThreadPoolExecutor(max_workers=policy.fetch_workers, thread_name_prefix="verify") as pool:
        checked = list(
            pool.map(lambda c: check_one(store, c, expected, start, policy, workdir), commitments)
        )
    checked = _replays(checked, seen or {})
    checked = _outliers(checked, policy, start)
    start_loss = None
    if evaluator is not None:
        start_loss = evaluator(start.tensors, start.metadata.peft)
        checked = _validation(checked, evaluator, start_loss, policy)
    for item in checked:
        if not item.accepted:
            logger.info(
                "round %s: rejected %s (%s): %s",
                round_,
                item.commitment.node,
                item.reason,
                item.detail,
            )
            _discard(item)
    return Verification(tuple(checked), start_loss)


def check_one(
    store: ContentStore,
    commitment: Commitment,
    expected: Expected,
    start: GlobalAdapter,
    policy: VerifyPolicy,
    workdir: Path,
) -> Checked:
    """Fetch and check one update on its own (step 1 of the module docstring)."""
    item = Checked(commitment)
    try:
        data = store.get_bytes(commitment.cid, max_size=policy.max_bytes)
    except StorageError as exc:
        return item.reject(REASON_UNAVAILABLE, f"cannot fetch {commitment.cid}: {exc}")
    try:
        parsed = parse_update(
            data, replace(expected, digest=commitment.digest), max_bytes=policy.max_bytes
        )
    except UpdateRejected as exc:
        return item.reject(exc.reason, _detail(exc))
    meta = parsed.metadata
    if meta.node.lower() != commitment.node.lower():
        return item.reject(
            REASON_WRONG_NODE, f"the update names node {meta.node}, {commitment.node} committed it"
        )
    if meta.num_examples != commitment.num_examples:
        return item.reject(
            REASON_EXAMPLES_MISMATCH,
            f"the update says {meta.num_examples} examples, {commitment.num_examples} were "
            "committed on chain",
        )
    mismatch = spec_mismatch(parsed.tensors, meta.peft, start)
    if mismatch is not None:
        return item.reject(REASON_SPEC_MISMATCH, mismatch)
    try:
        norm = update_norm(commitment.node, parsed.tensors, meta.peft, start)
    except UpdateRejected as exc:
        return item.reject(exc.reason, _detail(exc))
    path = workdir / f"{parsed.digest}.safetensors"
    _write_atomic(path, data)
    return replace(
        item, path=path, metadata=meta, tensor_digest=tensor_digest(parsed.tensors), norm=norm
    )


def spec_mismatch(
    tensors: Mapping[str, torch.Tensor], spec: PeftSpec, start: GlobalAdapter
) -> str | None:
    """Why an update cannot be aggregated into the task's adapter, or ``None``."""
    task = start.metadata.peft
    if spec.method != task.method:
        return f"the update trains {spec.method}, the task {task.method}"
    if not spec.traits.low_rank:
        for name, value in start.tensors.items():
            if name not in tensors or tensors[name].shape != value.shape:
                shape = tuple(tensors[name].shape) if name in tensors else None
                return f"{name} has shape {shape}, the task's is {tuple(value.shape)}"
        return None
    if spec.target_modules != task.target_modules:
        return (
            f"the update adapts {list(spec.target_modules)}, the task {list(task.target_modules)}"
        )
    modules, others = lora_modules(tensors.keys())
    task_modules, task_others = lora_modules(start.tensors.keys())
    if modules != task_modules or others != task_others:
        missing, extra = (
            sorted(set(task_modules) - set(modules)),
            sorted(set(modules) - set(task_modules)),
        )
        return (
            f"the update adapts other layers than the task: missing {missing[:3]}, unexpected "
            f"{extra[:3]}"
        )
    for module in modules:
        a, b = tensors[module + LORA_A], tensors[module + LORA_B]
        ta, tb = start.tensors[module + LORA_A], start.tensors[module + LORA_B]
        if a.shape[1] != ta.shape[1] or b.shape[0] != tb.shape[0]:
            return (
                f"{module}: A {tuple(a.shape)} / B {tuple(b.shape)} do not fit the task's layer "
                f"[{tb.shape[0]} x {ta.shape[1]}]"
            )
    return None


def update_norm(
    node: str, tensors: Mapping[str, torch.Tensor], spec: PeftSpec, start: GlobalAdapter
) -> float:
    """Norm of the weight change from the start adapter (rank-independent for LoRA)."""
    task = start.metadata.peft
    return lora_delta_norm(node, tensors, spec.delta_scaling, start.tensors, task.delta_scaling)


def _replays(checked: list[Checked], seen: Mapping[str, str]) -> list[Checked]:
    first: dict[str, str] = dict(seen)
    out = []
    for item in sorted(checked, key=lambda c: (c.commitment.block, c.commitment.node.lower())):
        digest = item.tensor_digest
        if item.accepted and digest is not None:
            where = first.get(digest)
            if where is not None:
                item = item.reject(REASON_REPLAYED, f"the same tensors as the update {where}")
            else:
                first[digest] = f"of {item.commitment.node} in this round"
        out.append(item)
    order = {id(c.commitment): i for i, c in enumerate(checked)}
    return sorted(out, key=lambda c: order[id(c.commitment)])


def _outliers(checked: list[Checked], policy: VerifyPolicy, start: GlobalAdapter) -> list[Checked]:
    norms = {c.commitment.node: c.norm for c in checked if c.accepted and c.norm is not None}
    if policy.outliers is None or not norms:
        return checked
    verdicts = {v.node: v for v in flag_outliers(norms, policy.outliers)}
    out = []
    for item in checked:
        verdict = verdicts.get(item.commitment.node)
        if verdict is not None:
            item = replace(item, z_score=verdict.z_score)
            if verdict.outlier:
                item = item.reject(
                    REASON_NORM_OUTLIER,
                    f"weight change norm {verdict.norm:.4g} has robust z-score "
                    f"{verdict.z_score:.1f} (threshold {policy.outliers.threshold}) "
                    "against the round's median/MAD",
                )
        out.append(item)
    return out


def _validation(
    checked: list[Checked], evaluator: Evaluator, start_loss: float | None, policy: VerifyPolicy
) -> list[Checked]:
    out = []
    for item in checked:
        if item.accepted and item.path is not None and item.metadata is not None:
            loss = evaluator(item.client_update().load(), item.metadata.peft)
            item = replace(item, eval_loss=loss)
            limit = policy.max_loss_increase
            if loss is not None and not math.isfinite(loss):
                item = item.reject(REASON_VALIDATION_WORSE, f"validation loss is {loss}")
            elif (
                start_loss is not None
                and loss is not None
                and limit is not None
                and loss > start_loss * (1 + limit)
            ):
                item = item.reject(
                    REASON_VALIDATION_WORSE,
                    f"validation loss {loss:.4f} is worse than the start adapter's "
                    f"{start_loss:.4f} by more than {limit:.0%}",
                )
        out.append(item)
    return out


def _detail(exc: UpdateRejected) -> str:
    return str(exc).removeprefix(f"{exc.reason}: ")


def _write_atomic(path: Path, data: bytes) -> None:
    if path.exists() and path.stat().st_size == len(data):
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".update-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _discard(item: Checked) -> None:
    if item.path is not None:
        item.path.unlink(missing_ok=True)
