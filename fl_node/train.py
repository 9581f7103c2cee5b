"""One round of local training: global adapter in, verified update bytes out.

:func:`train_round` is the whole node-side round in one call:

1. verify the global adapter (sha256 against the expected digest, task, base model) and
   load it into a fresh peft model, re-ranked by SVD when the node uses another LoRA rank;
2. evaluate on the held-out split, train (LoRA, prompt or prefix tuning; optional FedProx
   proximal term), evaluate again;
3. serialize the adapter with its metadata (:mod:`loraledger.update`) and return the bytes
   and their digest - what the node pins and commits.

The base model is left as it was found (the LoRA layers are removed again), so a node can
call it round after round on one loaded model. Progress goes to an optional callback; this
module never prints.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import torch
from pydantic import Field, ValidationInfo, field_validator, model_validator

from fl_node.data import IGNORE_INDEX, DataError, Encoded, NodeData, encode_all
from fl_node.model import LoadedModel
from loraledger.errors import ConfigError, TrainingError, UpdateRejected
from loraledger.lowrank import factored_svd
from loraledger.privacy import Stretch, TaskPrivacy, clip_and_noise, epsilon
from loraledger.settings import Invalid, Settings
from loraledger.update import (
    FORMAT_VERSION,
    REASON_BAD_SHAPE,
    REASON_BAD_TENSOR_NAME,
    Expected,
    GlobalAdapter,
    LocalMetrics,
    PeftSpec,
    PrivacyRecord,
    UpdateMetadata,
    build_update,
    parse_global_adapter,
    sha256_hex,
)
from loraledger.versions import software_versions

logger = logging.getLogger(__name__)


class ExampleDP(Settings):
    """Example-level DP-SGD (Opacus): every optimizer step draws a Poisson sample of the node's
    examples at rate ``batch_size / examples``, clips each example's gradient of the trainable
    parameters to ``clip_norm`` and adds Gaussian noise of ``noise_multiplier * clip_norm`` to
    their sum. ``epsilon_budget`` is the most the node spends over all its rounds of a task (at
    ``delta``, by ``accountant``): a round that would exceed it is refused before training.

    The samples and the noise must be secret for the guarantee to hold (who knows them can
    replay the noise and see which examples a step used): with ``noise_seed=None`` (the
    default) they come from a seed drawn from the operating system's secret randomness for
    each round. A fixed ``noise_seed`` makes a run reproducible, for tests and benchmarks
    only: it voids the guarantee against anyone who knows the seed."""

    noise_multiplier: float
    clip_norm: float = 1.0
    delta: float = 1e-5
    accountant: Literal["rdp", "prv"] = "rdp"
    epsilon_budget: float | None = None
    noise_seed: int | None = None

    @field_validator("noise_multiplier", "clip_norm", "epsilon_budget")
    @classmethod
    def _positive_finite(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and not (value > 0 and math.isfinite(value)):
            name = str(info.field_name).replace("_", " ")
            raise ValueError(f"{name} must be positive, got {value}")
        return value

    @field_validator("delta")
    @classmethod
    def _probability(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"delta must be in (0, 1), got {value}")
        return value


class NodeShare(Settings):
    """Node-level DP-FedAvg's share of a task whose policy (``policy``, mode ``"node"``) asks
    for it: once trained, the update's change from the round's start adapter is clipped to an
    L2 norm of ``policy.clip_norm`` and Gaussian noise of ``policy.share_multiplier *
    policy.clip_norm`` is added to every weight (:func:`loraledger.privacy.clip_and_noise`).
    The noise must be secret (whoever knows it can take it out of the update): with
    ``noise_seed=None`` (the default) it comes from the operating system's secret randomness
    every round; a fixed seed is for tests and experiments only."""

    policy: TaskPrivacy
    noise_seed: int | None = None

    @field_validator("policy")
    @classmethod
    def _node_level(cls, value: TaskPrivacy) -> TaskPrivacy:
        if value.mode != "node":
            raise ValueError(f"a noise share follows a node-level policy, got mode {value.mode!r}")
        return value


class TrainSettings(Settings):
    """How long and how to train. ``max_steps``, when set, overrides ``epochs``.

    ``fedprox_mu`` > 0 adds FedProx's ``mu/2 * ||w - w_global||^2`` over the trained
    parameters. ``max_grad_norm=None`` disables clipping. ``privacy`` trains with example-level
    DP-SGD (:class:`ExampleDP`; its per-example clipping replaces ``max_grad_norm``);
    ``node_share`` clips and noises the trained update for a task with node-level DP
    (:class:`NodeShare`). A round takes one of the two.
    """

    max_steps: int | None = None
    epochs: float = 1.0
    learning_rate: float = 2e-4
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 256
    seed: int = 0
    fedprox_mu: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    eval_batch_size: int = 8
    gradient_checkpointing: bool = False
    privacy: ExampleDP | None = None
    node_share: NodeShare | None = None

    @model_validator(mode="after")
    def _private_training_is_one_batch_a_step(self) -> Self:
        if self.privacy is None:
            return self
        if self.node_share is not None:
            raise Invalid(
                "a round trains with example-level DP-SGD or adds a node-level noise share, "
                "not both",
                hint="a task with node-level DP takes no --dp-noise-multiplier",
            )
        if self.grad_accum != 1:
            raise Invalid(
                "DP-SGD takes one Poisson-sampled batch per step, got "
                f"grad_accum={self.grad_accum}",
                hint="use --grad-accum 1 and a larger --batch-size",
            )
        if self.fedprox_mu > 0:
            raise Invalid(
                "FedProx's proximal term is not clipped or noised, so it cannot be combined "
                "with DP-SGD",
                hint="leave --fedprox-mu at 0 with differential privacy",
            )
        if self.gradient_checkpointing:
            raise Invalid("DP-SGD's per-example gradients do not work with gradient checkpointing")
        return self

    @field_validator("max_steps", "batch_size", "grad_accum", "eval_batch_size", "max_grad_norm")
    @classmethod
    def _positive(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"{info.field_name} must be positive, got {value}")
        return value

    @field_validator("epochs", "learning_rate")
    @classmethod
    def _positive_finite(cls, value: float, info: ValidationInfo) -> float:
        if not (value > 0 and math.isfinite(value)):
            name = "learning rate" if info.field_name == "learning_rate" else info.field_name
            raise ValueError(f"{name} must be positive, got {value}")
        return value

    @field_validator("max_length")
    @classmethod
    def _room_for_a_target(cls, value: int) -> int:
        if value < 2:
            raise ValueError(f"max_length must be at least 2, got {value}")
        return value

    @field_validator("fedprox_mu", "weight_decay")
    @classmethod
    def _not_negative(cls, value: float, info: ValidationInfo) -> float:
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{info.field_name} must be >= 0, got {value}")
        return value


class NodeTrainConfig(Settings):
    """One node's round: which task/round/node, the peft settings, the schedule.

    ``max_rank`` is the task's largest LoRA rank; a node may pick any rank up to it.
    """

    task_id: int
    round: int
    node: str
    peft: PeftSpec = Field(default_factory=PeftSpec)
    train: TrainSettings = Field(default_factory=TrainSettings)
    max_rank: int | None = None

    @model_validator(mode="after")
    def _fits_the_task(self) -> Self:
        if self.task_id < 0 or self.round < 0:
            raise ValueError(f"task and round must be >= 0, got {self.task_id}/{self.round}")
        if not self.node:
            raise ValueError("node address must not be empty")
        if self.peft.rank_above(self.max_rank):
            raise Invalid(
                f"LoRA rank {self.peft.rank} exceeds the task's maximum {self.max_rank}",
                hint=f"pick a rank of at most {self.max_rank}",
            )
        return self


@dataclass(frozen=True)
class StepReport:
    """Passed to the progress callback after every optimizer step."""

    step: int
    total_steps: int
    loss: float
    tokens: int


ProgressCallback = Callable[[StepReport], None]


@dataclass(frozen=True)
class TrainResult:
    """What a node pins (``update``) and commits (``digest``), with its metadata.

    ``train_seconds`` (the training loop's wall time) is kept out of the update so that the
    same inputs give the same bytes.
    """

    update: bytes
    digest: str
    metadata: UpdateMetadata
    losses: tuple[float, ...]
    train_seconds: float

    @property
    def metrics(self) -> LocalMetrics:
        return self.metadata.metrics


def train_round(
    config: NodeTrainConfig,
    model: LoadedModel,
    data: NodeData,
    global_adapter: bytes | None = None,
    expected_digest: str | None = None,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train one round locally and return the update bytes, their digest and metadata.

    ``global_adapter`` (packed global-adapter bytes, see :mod:`loraledger.update`) must come
    with ``expected_digest``; a digest, task or base-model mismatch raises
    :class:`~loraledger.errors.UpdateRejected` before any training.
    """
    settings = config.train
    start = None
    if global_adapter is not None:
        if expected_digest is None:
            raise ConfigError(
                "a global adapter was given without its expected digest",
                hint="pass the digest recorded on chain for the round",
            )
        start = parse_global_adapter(
            global_adapter,
            Expected(task_id=config.task_id, base_model=model.model_id, digest=expected_digest),
        )
        if start.metadata.peft.method != config.peft.method:
            raise ConfigError(
                f"the task trains {start.metadata.peft.method}, this node is set to "
                f"{config.peft.method}"
            )
    share_start = None
    if settings.node_share is not None:
        share_start = _check_share_start(start, config.peft)
    train_set = encode_all(model.tokenizer, data.train, settings.max_length)
    if not train_set:
        raise DataError(
            f"none of the {len(data.train)} training examples has reply tokens within "
            f"max_length={settings.max_length}",
            hint="raise max_length",
        )
    eval_set = encode_all(model.tokenizer, data.eval, settings.max_length)

    torch.manual_seed(settings.seed)
    peft_model = attach_adapter(model, config.peft, settings.gradient_checkpointing)
    try:
        if start is not None:
            load_global_tensors(peft_model, start, config.peft)
        before = evaluate(peft_model, model, eval_set, settings.eval_batch_size)
        began = time.perf_counter()
        losses, tokens = _train_loop(peft_model, model, train_set, settings, progress)
        train_seconds = time.perf_counter() - began
        if settings.node_share is not None and share_start is not None:
            _add_noise_share(peft_model, share_start, settings.node_share)
        after = evaluate(peft_model, model, eval_set, settings.eval_batch_size)
        tensors = adapter_tensors(peft_model)
    finally:
        detach_adapter(peft_model, model, settings.gradient_checkpointing)
    metadata = UpdateMetadata(
        format_version=FORMAT_VERSION,
        task_id=config.task_id,
        round=config.round,
        node=config.node,
        base_model=model.model_id,
        peft=config.peft,
        num_examples=len(train_set),
        metrics=LocalMetrics(
            eval_loss_before=before,
            eval_loss_after=after,
            train_loss_first=losses[0],
            train_loss_last=losses[-1],
            steps=len(losses),
            train_tokens=tokens,
            privacy=privacy_record(settings, len(train_set), len(losses)),
        ),
        software=software_versions(),
    )
    update = build_update(tensors, metadata)
    logger.info(
        "round %s: %s steps, eval loss %s -> %s, update %s bytes",
        config.round,
        len(losses),
        before,
        after,
        len(update),
    )
    return TrainResult(
        update=update,
        digest=sha256_hex(update),
        metadata=metadata,
        losses=tuple(losses),
        train_seconds=train_seconds,
    )


# --------------------------------------------------------------------------- peft plumbing


def peft_config_for(spec: PeftSpec) -> Any:
    """The peft config object for ``spec`` (causal LM)."""
    from peft import LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType

    if spec.traits.low_rank:
        return LoraConfig(
            r=spec.rank,
            lora_alpha=spec.alpha,  # type: ignore[arg-type]  # peft annotates int, uses alpha / r
            lora_dropout=spec.dropout,
            target_modules=list(spec.target_modules),
            bias="none",
            task_type=TaskType.CAUSAL_LM,
        )
    virtual = {"PROMPT_TUNING": PromptTuningConfig, "PREFIX_TUNING": PrefixTuningConfig}
    return virtual[spec.traits.peft_type](
        task_type=TaskType.CAUSAL_LM, num_virtual_tokens=spec.num_virtual_tokens
    )


def attach_adapter(model: LoadedModel, spec: PeftSpec, gradient_checkpointing: bool = False) -> Any:
    """Wrap the base model in a fresh peft model (undo with :func:`detach_adapter`)."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    base = model.model
    if model.quantized:
        base = prepare_model_for_kbit_training(
            base, use_gradient_checkpointing=gradient_checkpointing
        )
    elif gradient_checkpointing:
        base.gradient_checkpointing_enable()
        base.enable_input_require_grads()
    try:
        return get_peft_model(base, peft_config_for(spec))
    except ValueError as exc:
        raise ConfigError(
            f"cannot attach {spec.method} to {model.model_id}: {str(exc).splitlines()[0]}",
            hint="check target_modules against the model's layer names (e.g. q_proj, v_proj)",
        ) from None


def detach_adapter(
    peft_model: Any, model: LoadedModel, gradient_checkpointing: bool = False
) -> None:
    """Remove the adapter layers again, leaving ``model.model`` as it was loaded."""
    from peft import PeftType

    if peft_model.peft_config["default"].peft_type == PeftType.LORA:
        peft_model.unload()
    if gradient_checkpointing:
        model.model.gradient_checkpointing_disable()
        if not model.quantized:
            model.model.disable_input_require_grads()
    model.model.eval()


def adapter_tensors(peft_model: Any) -> dict[str, torch.Tensor]:
    """The trained adapter as a CPU state dict (peft's key names)."""
    from peft import get_peft_model_state_dict

    return {
        name: tensor.detach().to("cpu", copy=True).contiguous()
        for name, tensor in get_peft_model_state_dict(peft_model).items()
    }


def load_global_tensors(peft_model: Any, start: GlobalAdapter, spec: PeftSpec) -> None:
    """Load the global adapter into ``peft_model``, re-ranked to the node's LoRA rank."""
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    local = get_peft_model_state_dict(peft_model)
    if spec.traits.low_rank:
        incoming = rerank_lora(start.tensors, start.metadata.peft, spec, local)
    else:
        incoming = dict(start.tensors)
    merged: dict[str, torch.Tensor] = {}
    for name, tensor in local.items():
        if name not in incoming:
            merged[name] = tensor
            continue
        if incoming[name].shape != tensor.shape:
            raise UpdateRejected(
                REASON_BAD_SHAPE,
                f"global adapter tensor {name} has shape {tuple(incoming[name].shape)}, "
                f"this model needs {tuple(tensor.shape)}",
                hint="the global adapter was made for another base model or peft setting",
            )
        merged[name] = incoming[name].to(tensor.dtype)
    if not set(incoming) & set(local):
        raise UpdateRejected(
            REASON_BAD_TENSOR_NAME,
            "the global adapter shares no tensor with this model's adapter",
            hint="the global adapter was made for another base model",
        )
    set_peft_model_state_dict(peft_model, merged)


def rerank_lora(
    tensors: dict[str, torch.Tensor],
    source: PeftSpec,
    target: PeftSpec,
    local: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Express the global LoRA delta at the node's rank and scaling.

    Same rank and scaling: unchanged. Otherwise each module's ``s_g * B_g @ A_g`` is
    factored exactly (QR + SVD of the small core) and cut to the node's rank: the best
    rank-``r`` approximation. Components the global delta does not use (ranks above its own,
    zero singular values, or zero A rows with zero B columns, as in a fresh or zero-padded
    adapter) keep the node's fresh random ``A`` rows with zero ``B`` columns: they add nothing
    yet but can learn (with both zero, neither factor would ever get a gradient).
    """
    out: dict[str, torch.Tensor] = {}
    same = source.rank == target.rank and source.scaling == target.scaling
    for name_a, a_g in tensors.items():
        if not name_a.endswith(".lora_A.weight"):
            continue
        name_b = name_a.replace(".lora_A.weight", ".lora_B.weight")
        if name_a not in local:
            out[name_a], out[name_b] = a_g, tensors[name_b]
            continue
        a_local = local[name_a].clone().float()
        b_local = torch.zeros_like(local[name_b], dtype=torch.float32)
        if same:
            live = (a_g.float().abs().sum(1) > 0) | (tensors[name_b].float().abs().sum(0) > 0)
            a_local[live] = a_g.float()[live]
            b_local[:, live] = tensors[name_b].float()[:, live]
            out[name_a], out[name_b] = a_local, b_local
            continue
        svd = factored_svd(tensors[name_b].float(), a_g.float(), target.rank)
        s = svd.values * source.scaling  # numerically zero components are exactly zero
        k = int((s > 0).sum())
        root = torch.sqrt(s[:k] / target.scaling)
        a_local[:k] = root[:, None] * svd.right[:k]
        b_local[:, :k] = svd.left[:, :k] * root
        out[name_a], out[name_b] = a_local, b_local
    for name, tensor in tensors.items():  # keys that are not LoRA factors pass through
        if not name.endswith((".lora_A.weight", ".lora_B.weight")):
            out[name] = tensor
    return out


# --------------------------------------------------------------------------- loops


def batches(
    examples: Sequence[Encoded], batch_size: int, pad_id: int, generator: torch.Generator | None
) -> Iterator[dict[str, torch.Tensor]]:
    """Right-padded batches (shuffled when a generator is given)."""
    order = (
        torch.randperm(len(examples), generator=generator).tolist()
        if generator is not None
        else list(range(len(examples)))
    )
    for begin in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[begin : begin + batch_size]]
        width = max(len(e.input_ids) for e in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, example in enumerate(chunk):
            n = len(example.input_ids)
            ids[row, :n] = torch.tensor(example.input_ids)
            labels[row, :n] = torch.tensor(example.labels)
            mask[row, :n] = 1
        yield {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _targets(batch: dict[str, torch.Tensor]) -> int:
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def evaluate(
    peft_model: Any, model: LoadedModel, examples: Sequence[Encoded], batch_size: int
) -> float | None:
    """Token-weighted mean loss on the assistant replies; ``None`` without examples."""
    if not examples:
        return None
    peft_model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches(examples, batch_size, model.tokenizer.pad_token_id, None):
            n = _targets(batch)
            if n == 0:
                continue
            out = peft_model(**{k: v.to(model.device) for k, v in batch.items()})
            total += float(out.loss) * n
            count += n
    return total / count if count else None


def total_steps(settings: TrainSettings, num_examples: int) -> int:
    """Optimizer steps for the schedule (``max_steps``, else ``epochs`` over the data)."""
    if settings.max_steps is not None:
        return settings.max_steps
    per_epoch = math.ceil(num_examples / settings.batch_size) / settings.grad_accum
    return max(1, math.ceil(per_epoch * settings.epochs))


def _micro_batches(
    examples: Sequence[Encoded], settings: TrainSettings, pad_id: int
) -> Iterator[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(settings.seed)
    while True:
        yield from batches(examples, settings.batch_size, pad_id, generator)


def _train_loop(
    peft_model: Any,
    model: LoadedModel,
    examples: Sequence[Encoded],
    settings: TrainSettings,
    progress: ProgressCallback | None,
) -> tuple[list[float], int]:
    if settings.privacy is not None:
        return _private_train_loop(
            peft_model, model, examples, settings, settings.privacy, progress
        )
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    anchor = [p.detach().clone() for p in params] if settings.fedprox_mu > 0 else None
    steps = total_steps(settings, len(examples))
    stream = _micro_batches(examples, settings, model.tokenizer.pad_token_id)
    losses: list[float] = []
    tokens = 0
    peft_model.train()
    for step in range(1, steps + 1):
        window = [next(stream) for _ in range(settings.grad_accum)]
        counts = [_targets(b) for b in window]
        n_window = max(1, sum(counts))
        step_loss = 0.0
        for batch, n in zip(window, counts, strict=True):
            if n == 0:
                continue
            out = peft_model(**{k: v.to(model.device, non_blocking=True) for k, v in batch.items()})
            loss = out.loss * (n / n_window)
            if anchor is not None:
                prox = sum(((p - p0) ** 2).sum() for p, p0 in zip(params, anchor, strict=True))
                loss = loss + (settings.fedprox_mu / 2) * prox * (n / n_window)
            loss.backward()
            step_loss += float(out.loss.detach()) * n / n_window
            tokens += int(batch["attention_mask"].sum())
        if not math.isfinite(step_loss):
            raise TrainingError(
                f"training loss became {step_loss} at step {step}",
                hint="lower the learning rate",
            )
        if settings.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
        if progress is not None:
            progress(StepReport(step=step, total_steps=steps, loss=step_loss, tokens=tokens))
    peft_model.eval()
    return losses, tokens


def _check_share_start(start: GlobalAdapter | None, spec: PeftSpec) -> GlobalAdapter:
    """The start adapter a node-level noise share is measured from, checked before training."""
    if start is None:
        raise ConfigError("a node-level noise share is measured from the round's start adapter")
    task = start.metadata.peft
    if spec.aggregation_shape != task.aggregation_shape:
        raise ConfigError(
            f"node-level DP clips updates at the task's rank and alpha ({task.rank}, "
            f"{task.alpha:g}); this node trains ({spec.rank}, {spec.alpha:g})",
            hint="train at the task's --rank and --alpha",
        )
    return start


def _add_noise_share(peft_model: Any, start: GlobalAdapter, share: NodeShare) -> None:
    """Replace the trained adapter in ``peft_model`` by its clipped and noised version
    (:class:`NodeShare`), so that what the node evaluates is what it publishes."""
    from peft import set_peft_model_state_dict

    seed = share.noise_seed if share.noise_seed is not None else secrets.randbits(63)
    generator = torch.Generator().manual_seed(seed)
    noised = clip_and_noise(adapter_tensors(peft_model), start.tensors, share.policy, generator)
    set_peft_model_state_dict(peft_model, noised)


def privacy_record(settings: TrainSettings, num_examples: int, steps: int) -> PrivacyRecord | None:
    """What a round trained with ``settings`` on ``num_examples`` examples for ``steps`` steps
    spent (``None`` without DP): DP-SGD's steps, or a node-level share's one release."""
    if settings.node_share is not None:
        policy = settings.node_share.policy
        share = Stretch(policy.share_multiplier, 1.0, 1)
        return PrivacyRecord(
            mode="node",
            noise_multiplier=policy.share_multiplier,
            clip_norm=policy.clip_norm,
            sample_rate=1.0,
            steps=1,
            delta=policy.delta,
            accountant=policy.accountant,
            epsilon=epsilon([share], policy.delta, policy.accountant),
        )
    dp = settings.privacy
    if dp is None:
        return None
    rate = sample_rate(settings, num_examples)
    spent = epsilon([Stretch(dp.noise_multiplier, rate, steps)], dp.delta, dp.accountant)
    return PrivacyRecord(
        noise_multiplier=dp.noise_multiplier,
        clip_norm=dp.clip_norm,
        sample_rate=rate,
        steps=steps,
        delta=dp.delta,
        accountant=dp.accountant,
        epsilon=spent,
    )


def sample_rate(settings: TrainSettings, num_examples: int) -> float:
    """DP-SGD's Poisson sampling rate: the batch size over the examples (at most 1)."""
    return min(1.0, settings.batch_size / max(1, num_examples))


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each example's token-mean loss on its targets (0 for an example without targets)."""
    shifted, targets = logits[:, :-1], labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(targets.shape)
    mask = (targets != IGNORE_INDEX).to(per_token.dtype)
    return (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def _private_train_loop(
    peft_model: Any,
    model: LoadedModel,
    examples: Sequence[Encoded],
    settings: TrainSettings,
    dp: ExampleDP,
    progress: ProgressCallback | None,
) -> tuple[list[float], int]:
    """DP-SGD with Opacus: per-example gradients of the trainable parameters
    (``GradSampleModule``), clipped, summed and noised by ``DPOptimizer`` around AdamW, over
    Poisson samples of ``examples``. The samples and the noise come from generators seeded by
    ``dp.noise_seed``, or by a secret seed drawn for this call when it is ``None``."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    params = [p for p in peft_model.parameters() if p.requires_grad]
    rate = sample_rate(settings, len(examples))
    steps = total_steps(settings, len(examples))
    seed = dp.noise_seed if dp.noise_seed is not None else secrets.randbits(62)
    sampler = torch.Generator().manual_seed(seed)
    noise = torch.Generator(device=model.device).manual_seed(seed + 1)
    wrapped = GradSampleModule(peft_model, loss_reduction="mean")
    optimizer = DPOptimizer(
        torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay),
        noise_multiplier=dp.noise_multiplier,
        max_grad_norm=dp.clip_norm,
        expected_batch_size=max(1, round(rate * len(examples))),
        loss_reduction="mean",
        generator=noise,
    )
    pad_id = model.tokenizer.pad_token_id
    losses: list[float] = []
    tokens = 0
    wrapped.train()
    try:
        for step in range(1, steps + 1):
            chosen = (torch.rand(len(examples), generator=sampler) < rate).nonzero().flatten()
            step_loss = 0.0
            if len(chosen):
                batch = next(batches([examples[int(i)] for i in chosen], len(chosen), pad_id, None))
                batch = {k: v.to(model.device, non_blocking=True) for k, v in batch.items()}
                out = wrapped(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                per_example = per_example_loss(out.logits, batch["labels"])
                with warnings.catch_warnings():
                    # the first LoRA layer's input needs no gradient: Opacus reads the outputs'
                    warnings.filterwarnings("ignore", message="Full backward hook is firing")
                    per_example.mean().backward()
                step_loss = float(per_example.detach().mean())
                tokens += int(batch["attention_mask"].sum())
            else:  # an empty sample still takes its noisy step, as the accountant assumes
                for p in params:
                    p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
            if not math.isfinite(step_loss):
                raise TrainingError(
                    f"training loss became {step_loss} at step {step}",
                    hint="lower the learning rate",
                )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(step_loss)
            if progress is not None:
                progress(StepReport(step=step, total_steps=steps, loss=step_loss, tokens=tokens))
    finally:
        wrapped._close()  # hooks and per-example gradients go: the peft model is as it was
    peft_model.eval()
    return losses, tokens
