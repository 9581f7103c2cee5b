"""Verification of a round's submissions against their on-chain commitments.

Every commitment gets a verdict; a rejection carries a stable reason code and a sentence
saying what differed. Checks, in order:

1. *One update alone* (concurrently, bounded): the CID fetches (``unavailable``), its bytes
   have the committed sha256 (``digest_mismatch``), they are a valid update of this task,
   round and base model within the task's largest rank, all values finite
   (:func:`loraledger.update.parse_update`'s codes), made by the node that committed it
   (``wrong_node``), on the number of examples it committed (``examples_mismatch``), with the
   task's peft method, target modules and layer shapes (``spec_mismatch``), meeting the task's
   privacy policy (``privacy_policy``; under node-level DP a change within the clipping
   allowance, ``clip_bound``: :func:`privacy_breach`).
2. *Against the others* (:mod:`aggregator.screening`, on weight changes): the same tensors as
   an earlier round's or an earlier commitment's update (``replayed_update``); (near) no
   weight change, or the start or an earlier global adapter again (``free_rider``); (near)
   the weight change of an earlier commitment, in chain order and across the last
   ``lookback`` rounds (``copied_update``).
3. *Optionally, on the aggregator's own validation data*: the update's loss is not worse
   than the start adapter's by more than ``max_loss_increase`` (``validation_worse``).
4. The norm of the weight change against a reference median/MAD (``norm_outlier``): the
   updates that improve the validation loss when there is validation (a reference no
   submitter controls), else every update.

Accepted updates are kept as files in a work folder, so aggregation streams them from disk.

Memory does not grow with the number of updates, beyond a little bookkeeping each: at most
``fetch_workers`` updates are fetched and parsed at once (:func:`check_all`), screening reads
one update at a time from its file (the copy screen keeps a small sketch of each, spilled to a
temporary file past 16 MB: :func:`aggregator.screening.find_copies`), and FedAvg streams them.
A whole round (a validator's sheet, the result, the validator's review) peaks at about
``100 MB + (2 fetch_workers + 4) x update + 0.2 MB x updates`` above the process's baseline
(measured in docs/results/load/README.md, checked by tests/bench/test_load.py).
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
from aggregator.consensus import Consensus
from aggregator.device import single_threaded
from aggregator.errors import (
    REASON_CHECK_FAILED,
    REASON_CLIP_BOUND,
    REASON_COPY,
    REASON_EXAMPLES_MISMATCH,
    REASON_FREE_RIDER,
    REASON_NO_CONTRIBUTION,
    REASON_NORM_OUTLIER,
    REASON_PRIVACY_POLICY,
    REASON_REPLAYED,
    REASON_SPEC_MISMATCH,
    REASON_UNAVAILABLE,
    REASON_VALIDATION_WORSE,
    REASON_WRONG_NODE,
)
from aggregator.isolate import IsolationLimits, run_isolated, worker_memory
from aggregator.screening import Candidate, Change, find_copies, free_rider, trusted_outliers
from aggregator.stats import OutlierPolicy, lora_delta_norm
from ipfs import ContentStore, ContentTooLarge
from loraledger.errors import ConfigError, ServiceUnavailable, StorageError, UpdateRejected
from loraledger.privacy import (
    NO_PRIVACY,
    TaskPrivacy,
    change_norm,
    clip_allowance,
    example_breach,
)
from loraledger.settings import Settings
from loraledger.update import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    REASON_TOO_LARGE,
    Expected,
    GlobalAdapter,
    PeftSpec,
    UpdateMetadata,
    check_structure,
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
    block: int = 0  # block of the commitment
    tx_index: int = 0  # its transaction's index in that block

    @property
    def order(self) -> tuple[int, int]:
        """Where the commitment stands in the chain's order (earlier first)."""
        return (self.block, self.tx_index)


class VerifyPolicy(Settings):
    """How strict verification is. ``outliers=None`` turns the norm check off;
    ``max_loss_increase=None`` the validation check (it needs an evaluator anyway)."""

    max_rank: int | None = 64
    max_bytes: int = DEFAULT_MAX_BYTES
    outliers: OutlierPolicy | None = Field(default_factory=OutlierPolicy)
    max_loss_increase: float | None = 0.5
    fetch_workers: int = 4
    isolate: bool = True  # read each update's header in a worker process first (isolate.py)
    check_timeout_s: float = 30.0  # that worker's time limit (checker_timeout past it)
    # what earns nothing (aggregator.screening); None turns a check off
    free_rider_rtol: float | None = 1e-3  # of the start / an earlier global's weight change
    min_change_rms: float = 1e-7  # a weight change below this RMS per weight is no change
    copy_rtol: float | None = 0.1  # of the earlier update's own step
    lookback: int = 3  # earlier rounds whose globals and updates are compared against
    trusted_gain: float | None = 0.001  # relative validation gain that makes a norm reference

    @field_validator("fetch_workers")
    @classmethod
    def _workers_positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"fetch_workers must be positive, got {value}")
        return value

    @field_validator("check_timeout_s")
    @classmethod
    def _timeout_positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError(f"check_timeout_s must be positive, got {value}")
        return value

    @field_validator("free_rider_rtol", "copy_rtol", "trusted_gain")
    @classmethod
    def _tolerance_fraction(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value < 1:
            raise ValueError(f"tolerances are fractions in [0, 1), got {value}")
        return value

    @field_validator("min_change_rms")
    @classmethod
    def _rms_not_negative(cls, value: float) -> float:
        if not value >= 0:
            raise ValueError(f"min_change_rms must be >= 0, got {value}")
        return value

    @field_validator("lookback")
    @classmethod
    def _lookback_not_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"lookback must be >= 0, got {value}")
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


@dataclass(frozen=True)
class Prior:
    """What earlier rounds left that screening compares a round's updates with (the last
    ``lookback`` rounds): their global adapters (free riders) and accepted updates (copies)."""

    globals: tuple[tuple[str, Change], ...] = ()  # (label, adapter)
    updates: tuple[Candidate, ...] = ()


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
    prior: Prior | None = None,
    privacy: TaskPrivacy = NO_PRIVACY,
) -> Verification:
    """Verify every commitment of a round; ``seen`` maps earlier rounds' tensor digests to
    where they were submitted (for the replay check), ``prior`` holds earlier rounds' global
    adapters and updates (free riders, copies)."""
    expected = Expected(
        task_id=task_id,
        round=round_,
        base_model=start.metadata.base_model,
        max_rank=policy.max_rank,
    )
    checked = check_all(store, commitments, expected, start, policy, workdir, privacy)
    start_loss = None
    loss_of: Callable[[Checked], float | None] | None = None
    if evaluator is not None:
        evaluate = evaluator
        start_loss = evaluate(start.tensors, start.metadata.peft)

        def loss_of(item: Checked) -> float | None:
            if item.metadata is None:  # pragma: no cover - only accepted items are evaluated
                return None
            return evaluate(item.client_update().load(), item.metadata.peft)

    checked = judge(
        checked,
        start=start,
        policy=policy,
        round_=round_,
        seen=seen or {},
        prior=prior or Prior(),
        start_loss=start_loss,
        loss_of=loss_of,
    )
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


def judge(
    checked: Sequence[Checked],
    *,
    start: GlobalAdapter,
    policy: VerifyPolicy,
    round_: int,
    seen: Mapping[str, str],
    prior: Prior,
    start_loss: float | None,
    loss_of: Callable[[Checked], float | None] | None,
) -> list[Checked]:
    """Steps 2-4 of the module docstring on updates checked one by one (in commitment order).

    ``loss_of`` gives an update's validation loss (``None``: no validation). The aggregator
    evaluates on its data; an audit passes the losses the report published, and so re-derives
    every verdict with this same code.
    """
    with single_threaded():  # small maths, update by update (see check_all)
        out = _replays(list(checked), seen)
        out = _screen(out, start, prior, policy, round_)
    if loss_of is not None:
        out = _validation(out, loss_of, start_loss, policy)
    return _outliers(out, policy, start_loss)


def structural_policy(policy: VerifyPolicy, scored: bool) -> VerifyPolicy:
    """The checks a round makes itself when validators decide what needs held-out data: with
    scores (the contribution rule), norm screening is each validator's (against the updates its
    own data says help, :func:`_outliers`), since a screen against every update is what a flood
    of sybils moves; without scores the round screens norms itself as before."""
    return policy.model_copy(update={"outliers": None}) if scored else policy


def apply_consensus(checked: Sequence[Checked], consensus: Consensus) -> list[Checked]:
    """The round's verdicts: each update that passed the checks needing no held-out data keeps
    the validators' verdict on it (:func:`aggregator.consensus.decide`) and their median loss of
    it alone. The one place the aggregator, a validator reviewing a proposal and an audit turn
    score sheets into verdicts."""
    out = []
    for item in checked:
        decided = consensus.of(item.commitment.node) if item.accepted else None
        if decided is not None:
            item = replace(item, eval_loss=decided.eval_loss)
            if not decided.accepted:
                item = item.reject(decided.reason or REASON_NO_CONTRIBUTION, decided.detail or "")
        out.append(item)
    return out


def check_all(
    store: ContentStore,
    commitments: Sequence[Commitment],
    expected: Expected,
    start: GlobalAdapter,
    policy: VerifyPolicy,
    workdir: Path,
    privacy: TaskPrivacy = NO_PRIVACY,
) -> list[Checked]:
    """:func:`check_one` of every commitment (in their order), ``policy.fetch_workers`` at
    once: fetching, hashing and parsing overlap, and each worker runs its update's maths on one
    torch thread (:func:`aggregator.device.single_threaded`), so the workers are the cores
    verification uses. ``privacy`` is the task's policy (from its ``TaskCreated`` event)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with (
        single_threaded(),
        ThreadPoolExecutor(max_workers=policy.fetch_workers, thread_name_prefix="verify") as pool,
    ):
        return list(
            pool.map(
                lambda c: check_one(store, c, expected, start, policy, workdir, privacy),
                commitments,
            )
        )


def check_one(
    store: ContentStore,
    commitment: Commitment,
    expected: Expected,
    start: GlobalAdapter,
    policy: VerifyPolicy,
    workdir: Path,
    privacy: TaskPrivacy = NO_PRIVACY,
) -> Checked:
    """Fetch and check one update on its own (step 1 of the module docstring).

    Any unexpected error becomes a ``check_failed`` rejection, so no update can stop a round
    (or an audit). The one error raised is :class:`ServiceUnavailable`: this process's own IPFS
    node (or chain) does not answer, which says nothing about the update; the loops wait it
    out. The fetch is capped to the task's update size and the header is first read in an
    isolated worker (:mod:`aggregator.isolate`, ``policy.isolate``).
    """
    try:
        return _check_one(store, commitment, expected, start, policy, workdir, privacy)
    except ServiceUnavailable:
        raise
    except Exception as exc:
        logger.warning("checking %s of %s failed", commitment.cid, commitment.node, exc_info=True)
        detail = f"{type(exc).__name__}: {exc}"
        return Checked(commitment).reject(REASON_CHECK_FAILED, detail[:1000])


def _check_one(
    store: ContentStore,
    commitment: Commitment,
    expected: Expected,
    start: GlobalAdapter,
    policy: VerifyPolicy,
    workdir: Path,
    privacy: TaskPrivacy,
) -> Checked:
    item = Checked(commitment)
    expected = replace(expected, digest=commitment.digest, max_bytes=policy.max_bytes)
    expected = expected.capped_for(start)
    cap = expected.max_bytes if expected.max_bytes is not None else policy.max_bytes
    try:
        data = store.get_bytes(commitment.cid, max_size=cap)
    except ContentTooLarge as exc:
        return item.reject(REASON_TOO_LARGE, f"over the task's cap of {cap} bytes: {exc}")
    except ServiceUnavailable:
        raise  # our own IPFS node does not answer: no verdict on the node; wait for it
    except StorageError as exc:
        return item.reject(REASON_UNAVAILABLE, f"cannot fetch {commitment.cid}: {exc}")
    try:
        if policy.isolate:
            header_cap = expected.max_header_bytes or DEFAULT_MAX_HEADER_BYTES
            limits = IsolationLimits(policy.check_timeout_s, worker_memory(header_cap))
            run_isolated(lambda: check_structure(data, expected, max_bytes=cap), limits)
        parsed = parse_update(data, expected, max_bytes=cap)
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
    breach = privacy_breach(privacy, meta, parsed.tensors, start)
    if breach is not None:
        return item.reject(*breach)
    try:
        norm = update_norm(commitment.node, parsed.tensors, meta.peft, start)
    except UpdateRejected as exc:
        return item.reject(exc.reason, _detail(exc))
    path = workdir / f"{parsed.digest}.safetensors"
    _write_atomic(path, data)
    return replace(
        item, path=path, metadata=meta, tensor_digest=tensor_digest(parsed.tensors), norm=norm
    )


def privacy_breach(
    privacy: TaskPrivacy,
    meta: UpdateMetadata,
    tensors: Mapping[str, torch.Tensor],
    start: GlobalAdapter,
) -> tuple[str, str] | None:
    """The reason code and sentence for an update that breaks the task's privacy policy, or
    ``None``: under example-level DP its stated DP-SGD record
    (:func:`loraledger.privacy.example_breach`); under node-level DP a noise-share record, the
    task's rank and alpha, and a change from the start adapter within the clipping allowance
    (:func:`loraledger.privacy.clip_allowance`: the bound plus the noise share's norm but for a
    chance of 1e-9; the noise itself cannot be checked)."""
    if privacy.mode == "example":
        why = example_breach(privacy, meta.metrics.privacy)
        return None if why is None else (REASON_PRIVACY_POLICY, why)
    if privacy.mode != "node":
        return None
    record = meta.metrics.privacy
    if record is None or record.mode != "node":
        return REASON_PRIVACY_POLICY, "states no node-level noise share; the task requires one"
    task = start.metadata.peft
    if meta.peft.aggregation_shape != task.aggregation_shape:
        return (
            REASON_PRIVACY_POLICY,
            f"rank and alpha {meta.peft.aggregation_shape}; node-level DP clips updates at the "
            f"task's {task.aggregation_shape}",
        )
    norm = change_norm(tensors, start.tensors)
    allowance = clip_allowance(privacy, sum(t.numel() for t in tensors.values()))
    if norm > allowance:
        return (
            REASON_CLIP_BOUND,
            f"its change from the start adapter has norm {norm:.6g}, past the {allowance:.6g} "
            f"that a change clipped to {privacy.clip_norm:g} plus its noise share reaches",
        )
    return None


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
    for item in sorted(checked, key=lambda c: (*c.commitment.order, c.commitment.node.lower())):
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


def _outliers(
    checked: list[Checked], policy: VerifyPolicy, start_loss: float | None
) -> list[Checked]:
    """Norm screening (:func:`aggregator.screening.trusted_outliers`): against the updates the
    validation data says help when there is validation, else against every update."""
    norms = {c.commitment.node: c.norm for c in checked if c.accepted and c.norm is not None}
    if policy.outliers is None or not norms:
        return checked
    trusted: list[str] | None = None
    reference = "the round's median/MAD"
    if start_loss is not None and policy.trusted_gain is not None:
        limit = start_loss * (1 - policy.trusted_gain)
        trusted = [
            c.commitment.node
            for c in checked
            if c.accepted and c.norm is not None and c.eval_loss is not None and c.eval_loss < limit
        ]
        reference = (
            f"the median/MAD of the {len(trusted)} updates that improve the validation loss by "
            f">= {policy.trusted_gain:g}"
        )
    verdicts = trusted_outliers(norms, trusted, policy.outliers)
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
                    f"against {reference}",
                )
        out.append(item)
    return out


def _screen(
    checked: list[Checked], start: GlobalAdapter, prior: Prior, policy: VerifyPolicy, round_: int
) -> list[Checked]:
    """Free riders, then copies (of earlier rounds' updates and of earlier commitments of this
    round), on weight changes (:mod:`aggregator.screening`)."""
    if policy.free_rider_rtol is None and policy.copy_rtol is None:
        return checked
    start_change = Change(start.tensors, start.metadata.peft.delta_scaling)
    # one update's tensors at a time: each is read from its file when a check needs it
    loaders: dict[int, Callable[[], Change]] = {}
    out = []
    for item in checked:
        if item.accepted and item.path is not None and item.metadata is not None:
            load = _change_of(item, item.metadata.peft.delta_scaling)
            loaders[id(item)] = load
            if policy.free_rider_rtol is not None:
                why = free_rider(
                    load(),
                    start_change,
                    prior.globals,
                    rtol=policy.free_rider_rtol,
                    min_change_rms=policy.min_change_rms,
                )
                if why is not None:
                    item = item.reject(REASON_FREE_RIDER, why)
        out.append(item)
    if policy.copy_rtol is None:
        return out
    current = [
        Candidate(
            node=item.commitment.node,
            order=(round_, *item.commitment.order),
            change=loaders[id(item)],
            step=item.norm or 0.0,
            label=f"of {item.commitment.node} in this round",
            current=True,
        )
        for item in out
        if item.accepted and id(item) in loaders
    ]
    copies = find_copies([*prior.updates, *current], rtol=policy.copy_rtol)
    return [
        item.reject(REASON_COPY, copies[item.commitment.node])
        if item.accepted and item.commitment.node in copies
        else item
        for item in out
    ]


def _change_of(item: Checked, scaling: float) -> Callable[[], Change]:
    """How to read ``item``'s weight change from its file (memory-mapped, released when
    dropped)."""

    def load() -> Change:
        return Change(item.client_update().load(), scaling)

    return load


def _validation(
    checked: list[Checked],
    loss_of: Callable[[Checked], float | None],
    start_loss: float | None,
    policy: VerifyPolicy,
) -> list[Checked]:
    out = []
    for item in checked:
        if item.accepted and item.path is not None and item.metadata is not None:
            loss = loss_of(item)
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
