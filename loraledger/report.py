"""The round report: what an aggregator decided in a round, pinned to IPFS, its CID on chain.

One home for the format that the aggregator writes and nodes (claims) and auditors read:
every submission with its verdict and reason, the aggregation weights, metrics, and the reward
table with each node's Merkle proof. Serialized as canonical JSON (sorted keys, no spaces), so
the same report always has the same bytes, CID and digest.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
)

from loraledger.errors import UpdateRejected
from loraledger.privacy import TaskPrivacy, global_epsilon

REPORT_VERSION: Literal[1] = 1
REASON_BAD_REPORT = "bad_report"
REPORT_MAX_BYTES = 64 * 1024**2  # the largest report anyone fetches (thousands of nodes fit)

_HEX32 = r"^[0-9a-f]{64}$"


_UINT256_DIGITS = 78


def _amount(value: object) -> object:
    """A token amount as the report carries it: a decimal string of base units (what is
    written), or a JSON integer (reports written before amounts were strings)."""
    if isinstance(value, bool):
        raise ValueError("a token amount is a number of base units, not a boolean")
    if isinstance(value, int):
        return value
    if (
        isinstance(value, str)
        and 0 < len(value) <= _UINT256_DIGITS
        and value.isascii()
        and value.isdigit()
        and (value == "0" or value[0] != "0")
    ):
        return int(value)
    raise ValueError('a token amount is a decimal string of base units, such as "1500"')


TokenAmount = Annotated[
    int,
    BeforeValidator(_amount),
    PlainSerializer(str, return_type=str, when_used="json"),
]
"""Base units of the reward token. Written as a decimal string: JSON numbers above 2^53 lose
digits in JavaScript's ``JSON.parse`` (a claim built from such a number would revert)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SubmissionVerdict(_Frozen):
    node: str
    cid: str
    digest: str = Field(pattern=_HEX32)
    num_examples: int = Field(ge=1)
    verdict: Literal["accepted", "rejected"]
    reason: str | None = None  # a stable reason code when rejected
    detail: str | None = None  # a human sentence: what differed
    weight: float = Field(ge=0.0, le=1.0)  # aggregation weight (0 when rejected)
    quality: float = Field(ge=0.0)  # reward quality factor (see the README's reward rule)
    block: int | None = None  # block of the on-chain commitment
    tensor_digest: str | None = Field(default=None, pattern=_HEX32)  # replay detection
    norm: float | None = None  # weight-change norm against the start adapter
    z_score: float | None = None  # robust z-score of that norm in the round
    eval_loss: float | None = None  # loss on the aggregator's validation data (update alone)
    train_eval_loss: float | None = None  # the node's own eval loss after training (self-reported)
    tx_index: int | None = None  # transaction index of the commitment in its block
    weight_examples: int | None = None  # examples it weighs with (claim capped at the median)
    loss_without: float | None = None  # validation loss of the aggregate without it
    score: float | None = None  # contribution score (aggregator.contribution); None: unscored
    epsilon: float | None = None  # epsilon its update states it spent (self-reported)


class RewardLine(_Frozen):
    node: str
    amount: TokenAmount = Field(ge=1)
    proof: tuple[str, ...]

    @field_validator("proof")
    @classmethod
    def _hex_hashes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if len(item) != 64 or any(c not in "0123456789abcdef" for c in item):
                raise ValueError(f"proof entries are 32-byte lowercase hex, got {item!r}")
        return value


class RewardTable(_Frozen):
    rule: str
    pool: TokenAmount = Field(ge=0)  # the most this round may pay (the task's reward per round)
    total: TokenAmount = Field(ge=0)
    root: str = Field(pattern=_HEX32)
    lines: tuple[RewardLine, ...]


class Slash(_Frozen):
    """A stake the aggregator slashes for proven cheating; the evidence is this report."""

    node: str
    reason: str  # a reason code (aggregator.errors.SLASH_CODES gives its on-chain number)
    code: int = Field(ge=1, le=65535)
    amount: TokenAmount = Field(ge=1)


class ValidatorLine(_Frozen):
    """A validator whose score sheet the round used: where the sheet is, how far its scores
    were from the consensus (``agreement`` in [0, 1]) and what it earns for its work."""

    validator: str
    sheet_cid: str
    sheet_digest: str = Field(pattern=_HEX32)
    agreement: float = Field(ge=0.0, le=1.0)
    reward: TokenAmount = Field(ge=0)


class RoundPrivacy(_Frozen):
    """What a round of a task with node-level DP spent (:mod:`loraledger.privacy`): its
    global adapter sums ``summed`` updates' noise shares (0: fewer than the task's minimum were
    accepted and the round kept the task's adapter), which spends ``epsilon`` about any one
    node; ``total`` is what the task's global adapters spent through this round."""

    mode: Literal["node"] = "node"
    summed: int = Field(ge=0)
    epsilon: float = Field(ge=0, allow_inf_nan=False)
    total: float = Field(ge=0, allow_inf_nan=False)


def node_round_privacy(
    policy: TaskPrivacy, previous: Sequence[RoundReport], summed: int
) -> RoundPrivacy | None:
    """What a round whose global adapter sums ``summed`` updates spends under the task's
    node-level ``policy``, composed with the task's earlier finalized rounds (``previous``, their
    reports); ``None`` for a task without node-level DP. The aggregator writes it and an audit
    recomputes it with this function."""
    if policy.mode != "node":
        return None
    earlier = [r.privacy.summed for r in previous if r.privacy is not None]
    return RoundPrivacy(
        summed=summed,
        epsilon=global_epsilon(policy, [summed]),
        total=global_epsilon(policy, [*earlier, summed]),
    )


class RoundReport(_Frozen):
    version: Literal[1] = REPORT_VERSION
    task_id: int = Field(ge=1)
    round: int = Field(ge=1)
    base_model: str
    start_digest: str = Field(pattern=_HEX32)
    start_cid: str | None = None
    global_cid: str
    global_digest: str = Field(pattern=_HEX32)
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)  # strategy and verification settings
    submissions: tuple[SubmissionVerdict, ...]
    unrevealed: tuple[str, ...] = ()  # nodes that committed and never revealed (paid nothing)
    slashes: tuple[Slash, ...] = ()  # proven cheating the aggregator slashes after finalizing
    rewards: RewardTable
    # validators whose sheets decided the validation-based verdicts and scores (their median)
    validators: tuple[ValidatorLine, ...] = ()
    metrics: dict[str, float] = Field(default_factory=dict)
    software: dict[str, str] = Field(default_factory=dict)
    privacy: RoundPrivacy | None = None  # node-level DP only: what the global adapter spent

    def to_bytes(self) -> bytes:
        """Canonical JSON: the bytes that are pinned and digested (``privacy`` left out when
        the task has no node-level DP, as reports were before it existed)."""
        data = self.model_dump(mode="json")
        if data["privacy"] is None:
            del data["privacy"]
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RoundReport:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "report"
            raise UpdateRejected(
                REASON_BAD_REPORT, f"malformed round report at {where}: {first['msg']}"
            ) from None

    def reward_for(self, node: str) -> RewardLine | None:
        wanted = node.lower()
        return next((line for line in self.rewards.lines if line.node.lower() == wanted), None)


class ContentSource(Protocol):
    """What fetching a report needs of a store (:class:`ipfs.ContentStore` is one): the bytes
    under a CID, verified against it, at most ``max_size`` of them."""

    def get_bytes(self, cid: str, *, max_size: int = ...) -> bytes: ...


def fetch_report(store: ContentSource, cid: str) -> RoundReport:
    """The report pinned under ``cid``: fetched (verified against the CID by the store, at most
    :data:`REPORT_MAX_BYTES`) and parsed. The one way the aggregator, nodes and audits read
    reports.

    Raises the store's ``StorageError`` when it cannot be fetched, :class:`UpdateRejected`
    (``bad_report``) when it is not a valid report.
    """
    return RoundReport.from_bytes(store.get_bytes(cid, max_size=REPORT_MAX_BYTES))


SHEET_VERSION: Literal[1] = 1
SHEET_MAX_BYTES = 16 * 1024**2
REASON_BAD_SHEET = "bad_sheet"


class SheetEntry(_Frozen):
    """One validator's view of one revealed update: its own verdict (with its own validation
    data), the losses it measured and its contribution score (``None``: not scored)."""

    node: str
    verdict: Literal["accepted", "rejected"]
    reason: str | None = None
    eval_loss: float | None = None  # the update alone, on the validator's held-out data
    loss_without: float | None = None  # the aggregate of the others
    score: float | None = None  # aggregator.contribution's score; None when not scored

    @field_validator("eval_loss", "loss_without", "score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"sheet numbers are finite (None when unknown), got {value}")
        return value


class ScoreSheet(_Frozen):
    """What a validator measured in a round on its own private held-out data, pinned before
    any result is proposed; its sha256 goes on chain (``postScores``) and into the validator's
    signature. Rounds decide validation-based verdicts and scores by the median over sheets
    (:mod:`aggregator.consensus`), so one lying validator moves nothing."""

    version: Literal[1] = SHEET_VERSION
    task_id: int = Field(ge=1)
    round: int = Field(ge=1)
    validator: str
    rule: str  # the reward rule it scored for
    start_loss: float | None = None
    all_loss: float | None = None
    entries: tuple[SheetEntry, ...]

    @field_validator("start_loss", "all_loss")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"sheet numbers are finite (None when unknown), got {value}")
        return value

    def to_bytes(self) -> bytes:
        """Canonical JSON (as :meth:`RoundReport.to_bytes`): the bytes pinned and digested."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()

    @property
    def digest(self) -> bytes:
        """sha256 of :meth:`to_bytes`: the ``scoresDigest`` posted on chain and signed."""
        return hashlib.sha256(self.to_bytes()).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> ScoreSheet:
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "sheet"
            raise UpdateRejected(
                REASON_BAD_SHEET, f"malformed score sheet at {where}: {first['msg']}"
            ) from None

    def entry(self, node: str) -> SheetEntry | None:
        wanted = node.lower()
        return next((e for e in self.entries if e.node.lower() == wanted), None)


def fetch_sheet(store: ContentSource, cid: str, digest: bytes) -> ScoreSheet:
    """The score sheet pinned under ``cid``, checked against the ``digest`` posted on chain.

    Raises the store's ``StorageError`` when it cannot be fetched, :class:`UpdateRejected`
    (``bad_sheet``) when it is not a valid sheet or its bytes are not the posted ones.
    """
    data = store.get_bytes(cid, max_size=SHEET_MAX_BYTES)
    if hashlib.sha256(data).digest() != digest:
        raise UpdateRejected(
            REASON_BAD_SHEET, f"the sheet {cid} does not have the digest posted on chain"
        )
    return ScoreSheet.from_bytes(data)
