"""The update format: the one home of what a node pins and what the aggregator reads.

Two kinds of artifact share one container, a single safetensors file (never pickle):

* an **update** - one node's adapter tensors for one round, plus who made it, from which
  base model, with which peft settings, on how many examples, with which local metrics;
* a **global adapter** - the aggregated adapter the next round starts from, plus the exact
  ``adapter_config.json`` that ``PeftModel.from_pretrained`` needs, so the same bytes
  unpack into a folder peft loads as is.

The metadata travels as canonical JSON (sorted keys, no spaces) under the single
safetensors metadata key :data:`METADATA_KEY`, so the bytes are a pure function of the
tensors and the metadata. The digest pinned and committed on chain is the sha256 of those
exact bytes (:func:`sha256_hex`).

Everything that reads bytes from another party goes through :func:`parse_update` or
:func:`parse_global_adapter`, which reject anything malformed with
:class:`~loraledger.errors.UpdateRejected` and one of the stable ``REASON_*`` codes below.
Their first step, :func:`check_structure`, reads only the header (JSON with depth and size
limits, :func:`load_json_limited`) and never touches torch, so an aggregator can run it in an
isolated worker first (:mod:`aggregator.isolate`). A task's caps on an update's bytes and
header come from its start adapter (:meth:`Expected.capped_for`).
The format itself is documented in ``docs/update-format.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from loraledger.errors import ConfigError, UpdateRejected

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bumped on any change a reader of the previous version would misread."""

METADATA_KEY = "loraledger"
"""The one safetensors ``__metadata__`` key that carries the JSON metadata."""

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"

DEFAULT_MAX_BYTES = 1 << 30
"""Largest artifact :func:`parse_update` accepts unless told otherwise (1 GiB)."""

DEFAULT_MAX_HEADER_BYTES = 8 << 20
"""Largest safetensors header read unless :class:`Expected` says otherwise (8 MiB: a LoRA on
every linear layer of a 70B model has ~1,100 tensors, a ~250 KiB header). A task's own cap,
:func:`header_budget`, is kilobytes."""

MAX_RANK = 4096
"""Largest LoRA rank the format allows (:class:`PeftSpec`); the size cap of a task without a
``max_rank`` assumes it."""

HEADER_MAX_DEPTH = 3
"""JSON nesting of a safetensors header: ``{name: {"shape": [...]}}``; deeper is malformed."""

METADATA_MAX_DEPTH = 16
"""JSON nesting allowed in the metadata (updates need 4, a peft ``adapter_config`` ~5)."""

METADATA_BUDGET = 64 << 10
"""Header bytes allowed for ``__metadata__`` (64 KiB). A real update's metadata is < 1 KiB:
``base_model`` <= 512 and ``node`` <= 128 characters, at most 7 bytes each once escaped twice
(``\\uXXXX``), five software versions, the metrics and the task's target modules."""

_HEADER_ENTRY_BYTES = 136
"""Header bytes of one tensor besides its name, written compactly at the widest values:
``"":{"dtype":"BF16","shape":[,],"data_offsets":[,]},`` (55) + four 20-digit integers (80)."""

_HEADER_SLACK = 2
"""Factor on the tensor entries of :func:`header_budget`, for writers that add spaces."""

_ELEMENT_BYTES = {"F32": 4, "F16": 2, "BF16": 2}
"""The safetensors dtypes an artifact may hold, with their element sizes."""

# Stable reason codes (the aggregator and the chain reports reuse them; never rename).
REASON_TOO_LARGE = "too_large"
REASON_NOT_SAFETENSORS = "not_safetensors"
REASON_BAD_METADATA = "bad_metadata"
REASON_WRONG_VERSION = "wrong_version"
REASON_WRONG_KIND = "wrong_kind"
REASON_NO_TENSORS = "no_tensors"
REASON_BAD_TENSOR_NAME = "bad_tensor_name"
REASON_BAD_DTYPE = "bad_dtype"
REASON_BAD_SHAPE = "bad_shape"
REASON_MISSING_TENSORS = "missing_tensors"
REASON_NON_FINITE = "non_finite"
REASON_WRONG_TASK = "wrong_task"
REASON_WRONG_ROUND = "wrong_round"
REASON_WRONG_BASE_MODEL = "wrong_base_model"
REASON_RANK_TOO_LARGE = "rank_too_large"
REASON_DIGEST_MISMATCH = "digest_mismatch"

REASONS: frozenset[str] = frozenset(
    {
        REASON_TOO_LARGE,
        REASON_NOT_SAFETENSORS,
        REASON_BAD_METADATA,
        REASON_WRONG_VERSION,
        REASON_WRONG_KIND,
        REASON_NO_TENSORS,
        REASON_BAD_TENSOR_NAME,
        REASON_BAD_DTYPE,
        REASON_BAD_SHAPE,
        REASON_MISSING_TENSORS,
        REASON_NON_FINITE,
        REASON_WRONG_TASK,
        REASON_WRONG_ROUND,
        REASON_WRONG_BASE_MODEL,
        REASON_RANK_TOO_LARGE,
        REASON_DIGEST_MISMATCH,
    }
)

ALLOWED_DTYPES: frozenset[torch.dtype] = frozenset({torch.float32, torch.float16, torch.bfloat16})
# Python string tokens (escapes included) and brackets; a lone quote is an unterminated string.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|["\[\]{}]', re.DOTALL)
_MODULE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
_LORA_KEY = re.compile(r"^(?P<module>[A-Za-z0-9_.]+)\.lora_(?P<part>[AB])\.weight$")
PROMPT_EMBEDDINGS_KEY = "prompt_embeddings"

Method = Literal["lora", "prompt_tuning", "prefix_tuning"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class MethodTraits:
    """What the rest of the code needs to know of a PEFT method, in one place.

    ``low_rank``: the adapter is LoRA factors ``A [r, in]``, ``B [out, r]`` per module, its
    weight change ``scaling * B @ A`` (so ranks can differ between nodes, FlexLoRA applies,
    and a global adapter can be re-ranked); otherwise it is one tensor
    (:data:`PROMPT_EMBEDDINGS_KEY`) averaged as is. ``peft_type`` is peft's name for it.
    """

    peft_type: str
    low_rank: bool


METHODS: dict[Method, MethodTraits] = {
    "lora": MethodTraits("LORA", low_rank=True),
    "prompt_tuning": MethodTraits("PROMPT_TUNING", low_rank=False),
    "prefix_tuning": MethodTraits("PREFIX_TUNING", low_rank=False),
}


LORA_ONLY = ("rank", "alpha", "dropout", "target_modules")
"""The :class:`PeftSpec` settings only low-rank methods have."""


class PeftSpec(BaseModel):
    """Which parameter-efficient method a node trained, with its shape-defining settings.

    ``rank``/``alpha``/``dropout``/``target_modules`` apply to LoRA;
    ``num_virtual_tokens`` to prompt and prefix tuning.
    """

    model_config = _FROZEN

    method: Method = "lora"
    rank: int = Field(default=8, ge=1, le=MAX_RANK)
    alpha: float = Field(default=16.0, gt=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = Field(
        default=("k_proj", "o_proj", "q_proj", "v_proj"), validate_default=True
    )
    num_virtual_tokens: int = Field(default=16, ge=1, le=4096)

    @field_validator("target_modules")
    @classmethod
    def _targets_are_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("target_modules must name at least one module")
        for name in value:
            if not _MODULE_NAME.match(name):
                raise ValueError(f"target module {name!r} is not a module name")
        if len(set(value)) != len(value):
            raise ValueError(f"target_modules has duplicates: {list(value)}")
        return tuple(sorted(value))

    @model_serializer(mode="wrap")
    def _only_the_methods_settings(self, handler: SerializerFunctionWrapHandler) -> Any:
        """A file carries the settings its method uses: LoRA no ``num_virtual_tokens``, prompt
        and prefix tuning no rank, alpha, dropout or target modules."""
        data = handler(self)
        unused = ("num_virtual_tokens",) if self.traits.low_rank else LORA_ONLY
        return {key: value for key, value in data.items() if key not in unused}

    @property
    def traits(self) -> MethodTraits:
        """What this spec's method is (:data:`METHODS`)."""
        return METHODS[self.method]

    def shape_settings(self) -> tuple[object, ...]:
        """The settings that matter for ``method`` (LoRA fields mean nothing to prompt tuning)."""
        if self.traits.low_rank:
            return (self.method, self.rank, self.alpha, self.dropout, self.target_modules)
        return (self.method, self.num_virtual_tokens)

    @property
    def scaling(self) -> float:
        """LoRA's ``alpha / rank``: the factor applied to ``B @ A``."""
        return self.alpha / self.rank

    @property
    def delta_scaling(self) -> float:
        """The factor of the adapter's weight change: ``alpha / rank`` for low-rank methods,
        1 for methods whose tensors are the change itself."""
        return self.scaling if self.traits.low_rank else 1.0

    @property
    def aggregation_shape(self) -> tuple[int, float]:
        """``(rank, alpha)`` an aggregation weighs this adapter with (``(1, 1.0)`` for a method
        without factors, whose scaling is then 1)."""
        return (self.rank, self.alpha) if self.traits.low_rank else (1, 1.0)

    def rank_above(self, max_rank: int | None) -> bool:
        """Whether this adapter's rank exceeds ``max_rank`` (never for a method without one)."""
        return max_rank is not None and self.traits.low_rank and self.rank > max_rank


class PrivacyRecord(BaseModel):
    """How a node made an update differentially private (:mod:`loraledger.privacy`).

    - ``mode="example"`` (DP-SGD): each step clipped every example's gradient to ``clip_norm``
      and added Gaussian noise of ``noise_multiplier * clip_norm`` to their sum, over a Poisson
      sample of the node's examples at ``sample_rate``; ``epsilon`` is what this round's
      ``steps`` spent alone, at ``delta``, by ``accountant``.
    - ``mode="node"`` (a node-level noise share): the update's change from the round's start
      adapter was clipped to an L2 norm of ``clip_norm`` and Gaussian noise of
      ``noise_multiplier * clip_norm`` added to each weight (``sample_rate`` 1, ``steps`` 1);
      ``epsilon`` is what this update alone spends about its node (the global adapter spends
      less: the shares of several nodes add up).

    Stated by the node: noise cannot be checked from outside (a node-level update's norm can,
    :func:`loraledger.privacy.clip_allowance`)."""

    model_config = _FROZEN

    mode: Literal["example", "node"] = "example"
    noise_multiplier: float = Field(gt=0, allow_inf_nan=False)
    clip_norm: float = Field(gt=0, allow_inf_nan=False)
    sample_rate: float = Field(gt=0, le=1)
    steps: int = Field(ge=0)
    delta: float = Field(gt=0, lt=1)
    accountant: Literal["rdp", "prv"] = "rdp"
    epsilon: float = Field(ge=0, allow_inf_nan=False)


class LocalMetrics(BaseModel):
    """What a node measured locally; ``None`` where there was nothing to measure
    (``privacy``: the update was trained without differential privacy)."""

    model_config = _FROZEN

    eval_loss_before: float | None = None
    eval_loss_after: float | None = None
    train_loss_first: float | None = None
    train_loss_last: float | None = None
    steps: int = Field(default=0, ge=0)
    train_tokens: int = Field(default=0, ge=0)
    privacy: PrivacyRecord | None = None

    @field_validator(
        "eval_loss_before",
        "eval_loss_after",
        "train_loss_first",
        "train_loss_last",
    )
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"metric must be finite, got {value}")
        return value


class _Header(BaseModel):
    model_config = _FROZEN

    format_version: int
    task_id: int = Field(ge=0)
    round: int = Field(ge=0)
    base_model: str = Field(min_length=1, max_length=512)
    peft: PeftSpec
    software: dict[str, str] = Field(default_factory=dict)


class UpdateMetadata(_Header):
    """Metadata of one node's update for one round."""

    kind: Literal["update"] = "update"
    node: str = Field(min_length=1, max_length=128)
    num_examples: int = Field(ge=1)
    metrics: LocalMetrics = LocalMetrics()

    @property
    def epsilon(self) -> float | None:
        """The epsilon the node states this update spent (``None``: no DP)."""
        return None if self.metrics.privacy is None else self.metrics.privacy.epsilon


class GlobalAdapterMetadata(_Header):
    """Metadata of a global adapter; ``adapter_config`` is peft's ``adapter_config.json``."""

    kind: Literal["global"] = "global"
    adapter_config: dict[str, Any]
    num_updates: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _config_is_peft(self) -> GlobalAdapterMetadata:
        if not isinstance(self.adapter_config.get("peft_type"), str):
            raise ValueError("adapter_config has no peft_type")
        return self


_M = TypeVar("_M", bound=_Header)


@dataclass(frozen=True)
class Expected:
    """What a reader requires of an artifact; ``None`` fields are not checked.

    ``digest`` is a sha256 hex string (``0x`` prefix allowed); ``max_rank`` the task's
    largest allowed LoRA rank. ``max_bytes`` caps the artifact (with the parser's own
    ``max_bytes``, the smaller wins) and ``max_header_bytes`` its safetensors header
    (default :data:`DEFAULT_MAX_HEADER_BYTES`); :meth:`capped_for` derives both from a task.
    """

    task_id: int | None = None
    round: int | None = None
    base_model: str | None = None
    max_rank: int | None = None
    digest: str | None = None
    max_bytes: int | None = None
    max_header_bytes: int | None = None

    def capped_for(self, start: GlobalAdapter) -> Expected:
        """These expectations with the caps of an update to the task whose start adapter is
        ``start`` (:func:`header_budget`, :func:`update_budget` at ``max_rank``); caps already
        set are kept where smaller."""
        header = header_budget(start)
        total = update_budget(start, self.max_rank)
        return replace(
            self,
            max_bytes=total if self.max_bytes is None else min(total, self.max_bytes),
            max_header_bytes=(
                header if self.max_header_bytes is None else min(header, self.max_header_bytes)
            ),
        )


@dataclass(frozen=True)
class ParsedUpdate:
    """A validated update: its metadata, tensors (CPU) and the sha256 of its bytes."""

    metadata: UpdateMetadata
    tensors: dict[str, torch.Tensor]
    digest: str


@dataclass(frozen=True)
class GlobalAdapter:
    """A validated global adapter: its metadata, tensors (CPU) and the sha256 of its bytes."""

    metadata: GlobalAdapterMetadata
    tensors: dict[str, torch.Tensor]
    digest: str


# --------------------------------------------------------------------------- digests


def sha256_hex(data: bytes) -> str:
    """The digest committed for an artifact: sha256 of its exact bytes, 64 lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def normalize_digest(digest: str) -> str:
    """``digest`` as 64 lowercase hex characters (accepts a ``0x`` prefix and upper case)."""
    text = digest.strip().lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise UpdateRejected(
            REASON_DIGEST_MISMATCH, f"expected digest {digest!r} is not a sha256 hex string"
        )
    return text


def verify_digest(data: bytes, expected: str) -> str:
    """Return the digest of ``data``, or raise ``digest_mismatch`` if it is not ``expected``."""
    actual = sha256_hex(data)
    _check_digest(actual, expected)
    return actual


# --------------------------------------------------------------------------- caps


def header_budget(start: GlobalAdapter) -> int:
    """Largest safetensors header an update to ``start``'s task needs, in bytes.

    An update holds the start adapter's tensor names (a different set is ``spec_mismatch``),
    each entry at most ``len(name)`` + :data:`_HEADER_ENTRY_BYTES` bytes when written
    compactly; the entries count :data:`_HEADER_SLACK` times, plus :data:`METADATA_BUDGET`
    for ``__metadata__`` and 8 bytes of alignment padding. Kilobytes for a real adapter
    (~160 KiB for SmolLM2-135M with LoRA on four projections of 30 layers).
    """
    entries = sum(len(name.encode()) + _HEADER_ENTRY_BYTES for name in start.tensors)
    return _HEADER_SLACK * entries + METADATA_BUDGET + 8


def update_budget(start: GlobalAdapter, max_rank: int | None) -> int:
    """Largest update to ``start``'s task, in bytes: 8 + :func:`header_budget` + the tensors
    at the largest element size (4 bytes, F32).

    For a low-rank method every ``lora_A [r, in]`` counts ``in * max_rank`` elements and every
    ``lora_B [out, r]`` ``out * max_rank`` (:data:`MAX_RANK` without a ``max_rank``); for
    other methods the update has the start adapter's shapes.
    """
    largest = max(_ELEMENT_BYTES.values())
    low_rank = start.metadata.peft.traits.low_rank
    rank = max_rank if max_rank is not None else MAX_RANK
    elements = 0
    for name, tensor in start.tensors.items():
        match = _LORA_KEY.match(name) if low_rank else None
        if match is None or tensor.ndim != 2:
            elements += tensor.numel()
        else:
            elements += (tensor.shape[1] if match["part"] == "A" else tensor.shape[0]) * rank
    return 8 + header_budget(start) + elements * largest


# --------------------------------------------------------------------------- building


def build_update(tensors: Mapping[str, torch.Tensor], metadata: UpdateMetadata) -> bytes:
    """Serialize an update to its exact bytes (deterministic for equal inputs).

    ``tensors`` is a peft adapter state dict (``get_peft_model_state_dict``); they are
    validated against ``metadata`` the same way a reader will, so a node cannot pin an
    update the aggregator would reject for its shape.
    """
    prepared = _prepare_tensors(tensors)
    _check_tensors(prepared, metadata.peft)
    return _serialize(prepared, metadata)


def build_global_adapter(
    tensors: Mapping[str, torch.Tensor], metadata: GlobalAdapterMetadata
) -> bytes:
    """Serialize a global adapter (tensors + peft ``adapter_config``) to its exact bytes."""
    prepared = _prepare_tensors(tensors)
    _check_tensors(prepared, metadata.peft)
    return _serialize(prepared, metadata)


def pack_global_adapter(
    tensors: Mapping[str, torch.Tensor],
    *,
    task_id: int,
    round_: int,
    base_model: str,
    peft: PeftSpec,
    adapter_config: Mapping[str, Any] | None = None,
    num_updates: int = 0,
) -> bytes:
    """A task's global adapter as published after ``round_`` (0: the initial one): the one way
    the sponsor, the aggregator, the Flower baseline, experiments and benchmarks pack one.

    ``adapter_config`` defaults to :func:`peft_adapter_config` of ``peft``; the software
    versions are recorded (:func:`loraledger.versions.software_versions`).
    """
    from loraledger.versions import software_versions

    metadata = GlobalAdapterMetadata(
        format_version=FORMAT_VERSION,
        task_id=task_id,
        round=round_,
        base_model=base_model,
        peft=peft,
        adapter_config=dict(adapter_config or peft_adapter_config(peft, base_model)),
        num_updates=num_updates,
        software=software_versions(),
    )
    return build_global_adapter(tensors, metadata)


def pack_next_global(
    tensors: Mapping[str, torch.Tensor], start: GlobalAdapter, *, round_: int, num_updates: int
) -> bytes:
    """The global adapter a round publishes: the start adapter's task, base model, peft
    settings and adapter config, with the round's aggregate."""
    meta = start.metadata
    return pack_global_adapter(
        tensors,
        task_id=meta.task_id,
        round_=round_,
        base_model=meta.base_model,
        peft=meta.peft,
        adapter_config=meta.adapter_config,
        num_updates=num_updates,
    )


def peft_adapter_config(spec: PeftSpec, base_model: str) -> dict[str, Any]:
    """A minimal peft ``adapter_config.json`` for ``spec`` (peft fills in its defaults)."""
    common: dict[str, Any] = {
        "base_model_name_or_path": base_model,
        "inference_mode": True,
        "task_type": "CAUSAL_LM",
    }
    if spec.traits.low_rank:
        return {
            **common,
            "peft_type": spec.traits.peft_type,
            "r": spec.rank,
            "lora_alpha": spec.alpha,
            "lora_dropout": spec.dropout,
            "target_modules": list(spec.target_modules),
            "bias": "none",
        }
    return {
        **common,
        "peft_type": spec.traits.peft_type,
        "num_virtual_tokens": spec.num_virtual_tokens,
    }


def peft_spec_from_adapter_config(config: Mapping[str, Any]) -> PeftSpec:
    """Read the shape-defining settings back out of a peft ``adapter_config.json``."""
    peft_type = config.get("peft_type")
    method = next((m for m, t in METHODS.items() if t.peft_type == peft_type), None)
    if method is None:
        raise UpdateRejected(REASON_BAD_METADATA, f"unsupported peft_type {peft_type!r}")
    try:
        if METHODS[method].low_rank:
            targets = config.get("target_modules")
            if isinstance(targets, str):
                raise ValueError(f"target_modules as a regex ({targets!r}) is not supported")
            return PeftSpec(
                method=method,
                rank=config["r"],
                alpha=config.get("lora_alpha", config["r"]),
                dropout=config.get("lora_dropout", 0.0),
                target_modules=tuple(targets or ()),
            )
        return PeftSpec(
            method=method,
            num_virtual_tokens=config["num_virtual_tokens"],
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise UpdateRejected(REASON_BAD_METADATA, f"adapter_config is invalid: {exc}") from None


def pack_adapter_folder(
    folder: Path, *, task_id: int, round: int, base_model: str, num_updates: int = 0
) -> bytes:
    """Pack a peft adapter folder (as written by ``save_pretrained``) to global-adapter bytes."""
    config_path, weights_path = folder / ADAPTER_CONFIG_NAME, folder / ADAPTER_WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ConfigError(
                f"{path} does not exist",
                hint="an adapter folder holds adapter_config.json and adapter_model.safetensors",
            )
    try:
        adapter_config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UpdateRejected(REASON_BAD_METADATA, f"{config_path} is not JSON: {exc}") from None
    if not isinstance(adapter_config, dict):
        raise UpdateRejected(REASON_BAD_METADATA, f"{config_path} is not a JSON object")
    tensors = _load_tensors(weights_path.read_bytes())
    metadata = GlobalAdapterMetadata(
        format_version=FORMAT_VERSION,
        task_id=task_id,
        round=round,
        base_model=base_model,
        peft=peft_spec_from_adapter_config(adapter_config),
        adapter_config=adapter_config,
        num_updates=num_updates,
    )
    return build_global_adapter(tensors, metadata)


def check_adapter_folder(folder: Path, *, replace: bool) -> tuple[Path, Path]:
    """The two files an adapter folder at ``folder`` is written as; a
    :class:`~loraledger.errors.ConfigError` when ``folder`` is a file, or already holds an
    adapter and ``replace`` is False (nothing is written)."""
    targets = (folder / ADAPTER_CONFIG_NAME, folder / ADAPTER_WEIGHTS_NAME)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder")
    if not replace and any(path.exists() for path in targets):
        raise ConfigError(
            f"{folder} already holds an adapter",
            hint="pass --force to replace it, or pick another --out",
        )
    return targets


def unpack_global_adapter(adapter: GlobalAdapter, folder: Path) -> Path:
    """Write ``adapter`` as a folder that ``PeftModel.from_pretrained(model, folder)`` loads."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ADAPTER_CONFIG_NAME).write_text(
        json.dumps(adapter.metadata.adapter_config, indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    (folder / ADAPTER_WEIGHTS_NAME).write_bytes(st_save(adapter.tensors, metadata={"format": "pt"}))
    return folder


# --------------------------------------------------------------------------- parsing


def parse_update(
    data: bytes, expected: Expected | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> ParsedUpdate:
    """Validate update bytes from anyone; raise :class:`UpdateRejected` if anything is off."""
    digest, meta_json, tensors = _parse_container(data, expected, max_bytes)
    metadata = _validate_metadata(meta_json, UpdateMetadata, "update")
    _check_tensors(tensors, metadata.peft)
    _check_expected(metadata, expected)
    return ParsedUpdate(metadata=metadata, tensors=tensors, digest=digest)


def parse_global_adapter(
    data: bytes, expected: Expected | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> GlobalAdapter:
    """Validate global-adapter bytes; raise :class:`UpdateRejected` if anything is off."""
    digest, meta_json, tensors = _parse_container(data, expected, max_bytes)
    metadata = _validate_metadata(meta_json, GlobalAdapterMetadata, "global")
    from_config = peft_spec_from_adapter_config(metadata.adapter_config)
    if from_config.shape_settings() != metadata.peft.shape_settings():
        raise UpdateRejected(REASON_BAD_METADATA, "adapter_config disagrees with the peft settings")
    _check_tensors(tensors, metadata.peft)
    _check_expected(metadata, expected)
    return GlobalAdapter(metadata=metadata, tensors=tensors, digest=digest)


def read_metadata_json(data: bytes) -> dict[str, Any]:
    """The raw metadata object of an artifact, without validating tensors (for display)."""
    return check_structure(data).metadata


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the safetensors header declares it (offsets into the data section)."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Container:
    """A safetensors artifact read structurally: its metadata object and tensor entries."""

    metadata: dict[str, Any]
    entries: dict[str, TensorEntry]


def check_structure(
    data: bytes, expected: Expected | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Container:
    """The first step of :func:`parse_update` / :func:`parse_global_adapter`: size caps, then
    the header read with :func:`load_json_limited` (depth, size, duplicate keys), every tensor
    entry (dtype, shape, offsets tiling the data exactly) and the metadata JSON object.

    Pure Python on the header's bytes: no torch, no copy of the tensor data, memory bounded
    by the header cap; so an aggregator can run it in an isolated worker before parsing for
    real (:mod:`aggregator.isolate`). Raises :class:`UpdateRejected`, never anything else.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UpdateRejected(REASON_NOT_SAFETENSORS, f"expected bytes, got {type(data).__name__}")
    view = memoryview(data).cast("B")
    limit = max_bytes
    if expected is not None and expected.max_bytes is not None:
        limit = min(limit, expected.max_bytes)
    if len(view) > limit:
        raise UpdateRejected(REASON_TOO_LARGE, f"{len(view)} bytes, the limit is {limit}")
    header_cap = DEFAULT_MAX_HEADER_BYTES
    if expected is not None and expected.max_header_bytes is not None:
        header_cap = expected.max_header_bytes
    if len(view) < 8:
        raise UpdateRejected(REASON_NOT_SAFETENSORS, f"only {len(view)} bytes")
    (size,) = struct.unpack("<Q", view[:8])
    if size < 2 or 8 + size > len(view):
        raise UpdateRejected(
            REASON_NOT_SAFETENSORS, f"header length {size} does not fit {len(view)} bytes"
        )
    if size > header_cap:
        raise UpdateRejected(REASON_TOO_LARGE, f"header of {size} bytes, the limit is {header_cap}")
    header = load_json_limited(
        bytes(view[8 : 8 + size]),
        max_bytes=header_cap,
        max_depth=HEADER_MAX_DEPTH,
        reason=REASON_NOT_SAFETENSORS,
        what="header",
    )
    if not isinstance(header, dict) or not all(isinstance(v, dict) for v in header.values()):
        raise UpdateRejected(REASON_NOT_SAFETENSORS, "header is not a safetensors header")
    extra = header.pop("__metadata__", {})
    if not all(isinstance(v, str) for v in extra.values()):
        raise UpdateRejected(REASON_NOT_SAFETENSORS, "__metadata__ holds a value that is no string")
    metadata = _metadata_object(extra.get(METADATA_KEY), header_cap)
    entries = {name: _tensor_entry(name, info) for name, info in header.items()}
    if not entries:
        raise UpdateRejected(REASON_NO_TENSORS, "the artifact holds no tensors")
    _check_offsets(entries, len(view) - 8 - size)
    return Container(metadata, entries)


def load_json_limited(
    text: str | bytes,
    *,
    max_bytes: int,
    max_depth: int,
    reason: str = REASON_BAD_METADATA,
    what: str = "metadata",
) -> Any:
    """JSON from another party, parsed only within limits: at most ``max_bytes`` (UTF-8),
    nesting at most ``max_depth`` (``{}`` is 1), no duplicate keys, strict UTF-8.

    The depth is counted by a linear scan of string and bracket tokens *before*
    :func:`json.loads`, whose C scanner recurses once per level: under the recursion limit of
    100,000 that ``py_ecc`` sets at import (``sys.setrecursionlimit``, pulled in by
    ``eth_account`` -> ``eth_keyfile``; ``py-evm``'s ``eth`` sets 12,288), deep nesting
    overflows the C stack and kills the process with SIGSEGV instead of a ``RecursionError``.
    Raises :class:`UpdateRejected`: ``too_large`` above ``max_bytes``, else ``reason``.
    """
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > max_bytes:
        raise UpdateRejected(REASON_TOO_LARGE, f"{what} of {size} bytes, the limit is {max_bytes}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UpdateRejected(reason, f"{what} is not UTF-8: {exc}") from None
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                raise UpdateRejected(reason, f"{what} nests JSON deeper than {max_depth} levels")
        elif char in "]}":
            depth -= 1
            if depth < 0:
                raise UpdateRejected(reason, f"{what} is not JSON: unbalanced brackets")
        elif char == '"':
            raise UpdateRejected(reason, f"{what} is not JSON: unterminated string")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, too many digits, duplicates
        raise UpdateRejected(reason, f"{what} is not JSON: {exc}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        twice = next(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
        raise ValueError(f"duplicate key {twice[:64]!r}")
    return out


def _tensor_entry(name: str, info: dict[str, Any]) -> TensorEntry:
    if set(info) != {"dtype", "shape", "data_offsets"}:
        raise UpdateRejected(
            REASON_NOT_SAFETENSORS,
            f"tensor {name[:128]!r} has fields {sorted(info)[:5]}, need dtype/shape/data_offsets",
        )
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in _ELEMENT_BYTES:
        raise UpdateRejected(
            REASON_BAD_DTYPE, f"tensor {name[:128]} has dtype {str(dtype)[:32]}, need F32/F16/BF16"
        )
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise UpdateRejected(REASON_NOT_SAFETENSORS, f"tensor {name[:128]} has a malformed shape")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise UpdateRejected(REASON_NOT_SAFETENSORS, f"tensor {name[:128]} has malformed offsets")
    begin, end = offsets
    if end < begin or end - begin != _byte_count(shape, _ELEMENT_BYTES[dtype], end - begin):
        raise UpdateRejected(
            REASON_NOT_SAFETENSORS,
            f"tensor {name[:128]} spans bytes [{begin}, {end}), not what its shape and dtype need",
        )
    return TensorEntry(dtype, tuple(shape), begin, end)


def _is_count(value: object) -> bool:
    """A non-negative integer that fits safetensors' ``usize`` (u64)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64


def _byte_count(shape: list[int], element: int, span: int) -> int:
    """Bytes of a tensor of ``shape``, or ``span + 1`` once it exceeds ``span`` (so crafted
    shapes never make a product of thousands of huge integers)."""
    if 0 in shape:
        return 0
    total = element
    for dim in shape:
        total *= dim
        if total > span:
            return span + 1
    return total


def _check_offsets(entries: Mapping[str, TensorEntry], data_bytes: int) -> None:
    """The tensors tile the data section exactly: in offset order, each starts where the one
    before ends, the last ends at the end of the file (as safetensors itself requires)."""
    position = 0
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != position:
            raise UpdateRejected(
                REASON_NOT_SAFETENSORS,
                f"tensor {name[:128]} starts at byte {entry.begin}, expected {position} "
                "(overlapping or a gap)",
            )
        position = entry.end
    if position != data_bytes:
        raise UpdateRejected(
            REASON_NOT_SAFETENSORS, f"the tensors span {position} bytes, the data has {data_bytes}"
        )


# --------------------------------------------------------------------------- internals


def _prepare_tensors(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    prepared: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise UpdateRejected(REASON_BAD_DTYPE, f"{name} is a {type(tensor).__name__}")
        prepared[name] = tensor.detach().to("cpu").contiguous()
    return prepared


def _serialize(tensors: dict[str, torch.Tensor], metadata: BaseModel) -> bytes:
    meta_json = json.dumps(
        metadata.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return st_save(tensors, metadata={METADATA_KEY: meta_json})


def _parse_container(
    data: bytes, expected: Expected | None, max_bytes: int
) -> tuple[str, dict[str, Any], dict[str, torch.Tensor]]:
    """Structure (:func:`check_structure`), then the digest, then the tensors: the header is
    known to be sound before safetensors and torch see the bytes."""
    container = check_structure(data, expected, max_bytes=max_bytes)
    data = bytes(data)
    digest = sha256_hex(data)
    if expected is not None and expected.digest is not None:
        _check_digest(digest, expected.digest)
    return digest, container.metadata, _load_tensors(data)


def _check_digest(actual: str, expected: str) -> None:
    if actual != normalize_digest(expected):
        raise UpdateRejected(
            REASON_DIGEST_MISMATCH,
            f"content has sha256 {actual}, expected {normalize_digest(expected)}",
            hint="the content was corrupted or replaced; fetch it again from its CID",
        )


def _metadata_object(raw: object, max_bytes: int) -> dict[str, Any]:
    if not isinstance(raw, str):
        raise UpdateRejected(
            REASON_BAD_METADATA, f"no {METADATA_KEY!r} metadata: not a LoRA Ledger artifact"
        )
    obj = load_json_limited(raw, max_bytes=max_bytes, max_depth=METADATA_MAX_DEPTH)
    if not isinstance(obj, dict):
        raise UpdateRejected(REASON_BAD_METADATA, "metadata is not a JSON object")
    return obj


def _load_tensors(data: bytes) -> dict[str, torch.Tensor]:
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as exc:
        raise UpdateRejected(
            REASON_NOT_SAFETENSORS, f"not a valid safetensors file: {exc}"
        ) from None
    if not tensors:
        raise UpdateRejected(REASON_NO_TENSORS, "the artifact holds no tensors")
    return _in_name_order(tensors)


def _validate_metadata(obj: dict[str, Any], model: type[_M], kind: str) -> _M:
    version = obj.get("format_version")
    if version != FORMAT_VERSION:
        raise UpdateRejected(
            REASON_WRONG_VERSION,
            f"format_version {version!r}, this software reads {FORMAT_VERSION}",
            hint="upgrade loraledger on the side that reads it",
        )
    if obj.get("kind") != kind:
        raise UpdateRejected(REASON_WRONG_KIND, f"kind {obj.get('kind')!r}, expected {kind!r}")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "metadata"
        raise UpdateRejected(REASON_BAD_METADATA, f"{where}: {first['msg']}") from None


def _check_tensors(tensors: Mapping[str, torch.Tensor], spec: PeftSpec) -> None:
    if not tensors:
        raise UpdateRejected(REASON_NO_TENSORS, "the artifact holds no tensors")
    for name, tensor in tensors.items():
        if tensor.dtype not in ALLOWED_DTYPES:
            raise UpdateRejected(REASON_BAD_DTYPE, f"tensor {name} has dtype {tensor.dtype}")
        if tensor.ndim != 2 or tensor.numel() == 0:
            raise UpdateRejected(
                REASON_BAD_SHAPE, f"tensor {name} has shape {tuple(tensor.shape)}, need 2-D"
            )
    if spec.traits.low_rank:
        _check_lora(tensors, spec)
    else:
        if set(tensors) != {PROMPT_EMBEDDINGS_KEY}:
            raise UpdateRejected(
                REASON_BAD_TENSOR_NAME,
                f"{spec.method} holds exactly {PROMPT_EMBEDDINGS_KEY!r}, got {sorted(tensors)[:5]}",
            )
        rows = tensors[PROMPT_EMBEDDINGS_KEY].shape[0]
        if rows % spec.num_virtual_tokens:
            raise UpdateRejected(
                REASON_BAD_SHAPE,
                f"{PROMPT_EMBEDDINGS_KEY} has {rows} rows for {spec.num_virtual_tokens} tokens",
            )
    for name, tensor in tensors.items():
        if not all_finite(tensor):
            raise UpdateRejected(REASON_NON_FINITE, f"tensor {name} holds NaN or infinity")


def _in_name_order(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors`` ordered by name. safetensors' ``load(bytes)`` returns a file's tensors in a
    hash map's order, which changes from call to call; everything that walks an adapter's
    tensors (sums over modules, random draws per tensor) must see one order, or the same bytes
    give different floats in another process."""
    return {name: tensors[name] for name in sorted(tensors)}


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether every value is finite. A NaN or inf anywhere makes the sum non-finite, and one
    reduction is ~10x faster than the element-wise test; only when the sum is not finite (which
    a huge finite tensor can also cause) is the element-wise test run."""
    if bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def _check_lora(tensors: Mapping[str, torch.Tensor], spec: PeftSpec) -> None:
    modules: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        match = _LORA_KEY.match(name)
        if match is None:
            raise UpdateRejected(REASON_BAD_TENSOR_NAME, f"{name!r} is not a LoRA A/B weight")
        module = match["module"]
        if module.rsplit(".", 1)[-1] not in spec.target_modules:
            raise UpdateRejected(
                REASON_BAD_TENSOR_NAME,
                f"{name!r} adapts a module outside target_modules {list(spec.target_modules)}",
            )
        modules.setdefault(module, {})[match["part"]] = tensor
    for module, parts in sorted(modules.items()):
        if set(parts) != {"A", "B"}:
            missing = "B" if "A" in parts else "A"
            raise UpdateRejected(REASON_MISSING_TENSORS, f"{module} has no lora_{missing}")
        a, b = parts["A"], parts["B"]
        if a.shape[0] != spec.rank or b.shape[1] != spec.rank:
            raise UpdateRejected(
                REASON_BAD_SHAPE,
                f"{module}: lora_A {tuple(a.shape)} / lora_B {tuple(b.shape)} "
                f"do not have rank {spec.rank}",
            )


def _check_expected(metadata: _Header, expected: Expected | None) -> None:
    if expected is None:
        return
    if expected.task_id is not None and metadata.task_id != expected.task_id:
        raise UpdateRejected(
            REASON_WRONG_TASK, f"task {metadata.task_id}, expected {expected.task_id}"
        )
    if expected.round is not None and metadata.round != expected.round:
        raise UpdateRejected(
            REASON_WRONG_ROUND, f"round {metadata.round}, expected {expected.round}"
        )
    if expected.base_model is not None and metadata.base_model != expected.base_model:
        raise UpdateRejected(
            REASON_WRONG_BASE_MODEL,
            f"made for base model {metadata.base_model!r}, expected {expected.base_model!r}",
            hint="train and aggregate on the task's base model",
        )
    if metadata.peft.rank_above(expected.max_rank):
        raise UpdateRejected(
            REASON_RANK_TOO_LARGE,
            f"rank {metadata.peft.rank} exceeds the task's {expected.max_rank}",
        )
