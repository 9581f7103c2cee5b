"""The input of every strategy: one node's LoRA adapter, in memory or loaded on demand.

Tensors are a peft LoRA state dict (``get_peft_model_state_dict``): ``<module>.lora_A.weight``
of shape ``[r, in]`` and ``<module>.lora_B.weight`` of shape ``[out, r]``; the adapter's delta
on the module is ``(alpha / r) * B @ A``. Strategies call :attr:`ClientUpdate.load` when they
need the tensors and drop them afterwards, so updates can stream from files one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import torch

from aggregator.errors import (
    REASON_DTYPE,
    REASON_DUPLICATE_NODE,
    REASON_KEY_MISMATCH,
    REASON_NON_FINITE,
    REASON_SHAPE_MISMATCH,
    AggregationError,
)
from loraledger.errors import ConfigError, StorageError, UpdateRejected
from loraledger.update import all_finite

Tensors = Mapping[str, torch.Tensor]
LORA_A = ".lora_A.weight"
LORA_B = ".lora_B.weight"
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class ClientUpdate:
    """One node's adapter and what weights it: examples, LoRA rank and alpha.

    ``load`` returns the tensors; it may read a file each time it is called. ``resident``
    says the tensors are already held in memory, so holding every update at once costs
    nothing and strategies may visit them in the order that is fastest.
    """

    node: str
    num_examples: int
    rank: int
    alpha: float
    load: Callable[[], Tensors]
    resident: bool = False

    def __post_init__(self) -> None:
        if not self.node:
            raise ConfigError("node address must not be empty")
        if isinstance(self.num_examples, bool) or self.num_examples <= 0:
            raise ConfigError(
                f"num_examples of {self.node} must be positive, got {self.num_examples}"
            )
        if self.rank <= 0:
            raise ConfigError(f"rank of {self.node} must be positive, got {self.rank}")
        if not math.isfinite(self.alpha) or self.alpha <= 0:
            raise ConfigError(f"alpha of {self.node} must be a positive number, got {self.alpha}")

    @property
    def scaling(self) -> float:
        """peft's LoRA scaling ``alpha / r`` (the delta is ``scaling * B @ A``)."""
        return self.alpha / self.rank

    @classmethod
    def in_memory(
        cls, node: str, tensors: Tensors, *, num_examples: int, rank: int, alpha: float
    ) -> ClientUpdate:
        """An update whose tensors are already loaded."""
        frozen = dict(tensors)
        return cls(node, num_examples, rank, alpha, lambda: frozen, resident=True)

    @classmethod
    def from_safetensors(
        cls, node: str, path: Path, *, num_examples: int, rank: int, alpha: float
    ) -> ClientUpdate:
        """An update read from a safetensors file each time its tensors are needed.

        The tensors are memory-mapped (no copy); they are released when dropped.
        """
        return cls(node, num_examples, rank, alpha, lambda: read_safetensors(path))


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (memory-mapped, never unpickled).

    Raises :class:`StorageError` for a missing or malformed file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise StorageError(f"cannot read update {path}: {error}") from None


def ordered(updates: Iterable[ClientUpdate]) -> list[ClientUpdate]:
    """Updates in the canonical order (node address, case-insensitive); rejects duplicates."""
    result = sorted(updates, key=lambda u: u.node.lower())
    if not result:
        raise AggregationError("no update to aggregate", hint="accept at least one update")
    for previous, current in pairwise(result):
        if previous.node.lower() == current.node.lower():
            raise UpdateRejected(
                REASON_DUPLICATE_NODE, f"node {current.node} submitted more than one update"
            )
    return result


def example_weights(updates: Sequence[ClientUpdate]) -> list[float]:
    """FedAvg weights ``p_i = n_i / sum_j n_j`` (in float64, summing to one)."""
    total = math.fsum(u.num_examples for u in updates)
    return [u.num_examples / total for u in updates]


@dataclass(frozen=True)
class TensorSpec:
    """The keys and shapes every update of a round must have (taken from the first one)."""

    shapes: Mapping[str, tuple[int, ...]]

    @classmethod
    def of(cls, tensors: Tensors) -> TensorSpec:
        return cls({key: tuple(value.shape) for key, value in tensors.items()})

    def check(self, node: str, tensors: Tensors) -> None:
        """Raise :class:`UpdateRejected` unless ``tensors`` has exactly these keys and shapes."""
        if tensors.keys() != self.shapes.keys():
            missing = sorted(self.shapes.keys() - tensors.keys())
            extra = sorted(tensors.keys() - self.shapes.keys())
            raise UpdateRejected(
                REASON_KEY_MISMATCH,
                f"update of {node} has keys that differ from the round's: "
                f"missing {missing[:3]}, unexpected {extra[:3]}",
            )
        for key, value in tensors.items():
            if tuple(value.shape) != self.shapes[key]:
                raise UpdateRejected(
                    REASON_SHAPE_MISMATCH,
                    f"update of {node}: {key} has shape {tuple(value.shape)}, "
                    f"expected {self.shapes[key]}",
                )
            if value.dtype not in _FLOAT_DTYPES:
                raise UpdateRejected(
                    REASON_DTYPE, f"update of {node}: {key} has dtype {value.dtype}, not a float"
                )


def check_finite(node: str, tensors: Tensors) -> None:
    """Raise :class:`UpdateRejected` (``non_finite``) if any value is NaN or infinite."""
    for key, value in tensors.items():
        if not all_finite(value):
            raise UpdateRejected(
                REASON_NON_FINITE, f"update of {node}: {key} has NaN or inf values"
            )


def lora_modules(keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split state-dict keys into LoRA module prefixes (sorted) and the other keys (sorted).

    Raises :class:`UpdateRejected` when a module has ``lora_A`` without ``lora_B`` or back.
    """
    keys = set(keys)
    a_modules = {k[: -len(LORA_A)] for k in keys if k.endswith(LORA_A)}
    b_modules = {k[: -len(LORA_B)] for k in keys if k.endswith(LORA_B)}
    if a_modules != b_modules:
        odd = sorted(a_modules ^ b_modules)
        raise UpdateRejected(REASON_KEY_MISMATCH, f"LoRA modules without both A and B: {odd[:3]}")
    others = sorted(k for k in keys if not k.endswith((LORA_A, LORA_B)))
    return sorted(a_modules), others
