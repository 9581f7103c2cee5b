"""Server optimizers: FedAvgM, FedAdam, FedYogi (Reddi et al., "Adaptive Federated Optimization").

The round's aggregate ``y`` (e.g. :func:`~aggregator.strategies.fedavg`) and the current
global adapter ``x`` give the pseudo-gradient ``d = y - x``; per tensor, element-wise:

- FedAvgM: ``v <- mu * v + d``;  ``x <- x + lr * v``  (``lr=1, mu=0`` is plain FedAvg).
- FedAdam: ``m <- b1 * m + (1 - b1) * d``;  ``v <- b2 * v + (1 - b2) * d^2``;
  ``x <- x + lr * m / (sqrt(v) + tau)``.
- FedYogi: as FedAdam but ``v <- v - (1 - b2) * d^2 * sign(v - d^2)``.

``m`` starts at 0 and ``v`` at ``tau^2`` (as in the paper); no bias correction. The state
is tensors plus a step count, carried across rounds and saved as safetensors (never pickle)
with the optimizer's name and hyper-parameters in the metadata.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from aggregator.client_update import Tensors, TensorSpec
from aggregator.device import Compute
from loraledger.errors import ConfigError, StorageError

STATE_FORMAT = "loraledger-server-optimizer"
STATE_FORMAT_VERSION = "1"


@dataclass(frozen=True)
class ServerState:
    """What a server optimizer carries from round to round (``m/<key>``, ``v/<key>``)."""

    optimizer: str
    step: int
    tensors: dict[str, torch.Tensor]


@dataclass(frozen=True)
class _ServerOptimizer:
    server_lr: float

    name: ClassVar[str] = "base"
    _slots: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for field_name, value in asdict(self).items():
            if not math.isfinite(value):
                raise ConfigError(f"{self.name} {field_name} must be finite, got {value}")
        if not self.server_lr > 0:
            raise ConfigError(f"{self.name} server_lr must be positive, got {self.server_lr}")

    def step(
        self,
        current: Tensors,
        aggregate: Tensors,
        state: ServerState | None = None,
        compute: Compute | None = None,
    ) -> tuple[dict[str, torch.Tensor], ServerState]:
        """The next global adapter (CPU, float32) and the optimizer state after this round."""
        spec = TensorSpec.of(current)
        spec.check("aggregate", aggregate)
        if state is not None and state.optimizer != self.name:
            raise ConfigError(f"state belongs to {state.optimizer}, not {self.name}")
        compute = compute or Compute()
        new_global: dict[str, torch.Tensor] = {}
        new_state: dict[str, torch.Tensor] = {}
        for key in spec.shapes:
            x = current[key].to(device=compute.device, dtype=compute.dtype)
            d = aggregate[key].to(device=compute.device, dtype=compute.dtype) - x
            slots = {
                slot: (
                    state.tensors[f"{slot}/{key}"].to(device=compute.device, dtype=compute.dtype)
                    if state is not None
                    else None
                )
                for slot in self._slots
            }
            step_value, updated = self._update(d, slots)
            new_global[key] = (x + self.server_lr * step_value).to(torch.float32).cpu()
            for slot, value in updated.items():
                new_state[f"{slot}/{key}"] = value.to(torch.float32).cpu()
        step = 1 if state is None else state.step + 1
        return new_global, ServerState(self.name, step, new_state)

    def _update(
        self, d: torch.Tensor, slots: dict[str, torch.Tensor | None]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError


@dataclass(frozen=True)
class FedAvgM(_ServerOptimizer):
    """Server momentum (Hsu et al., 2019)."""

    server_lr: float = 1.0
    momentum: float = 0.9

    name: ClassVar[str] = "fedavgm"
    _slots: ClassVar[tuple[str, ...]] = ("v",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"fedavgm momentum must be in [0, 1), got {self.momentum}")

    def _update(
        self, d: torch.Tensor, slots: dict[str, torch.Tensor | None]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        v = d if slots["v"] is None else self.momentum * slots["v"] + d
        return v, {"v": v}


@dataclass(frozen=True)
class FedAdam(_ServerOptimizer):
    """Adam on the server."""

    server_lr: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3

    name: ClassVar[str] = "fedadam"
    _slots: ClassVar[tuple[str, ...]] = ("m", "v")

    def __post_init__(self) -> None:
        super().__post_init__()
        for field_name in ("beta1", "beta2"):
            if not 0 <= getattr(self, field_name) < 1:
                raise ConfigError(
                    f"{self.name} {field_name} must be in [0, 1), got {getattr(self, field_name)}"
                )
        if not self.tau > 0:
            raise ConfigError(f"{self.name} tau must be positive, got {self.tau}")

    def _second_moment(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return self.beta2 * v + (1 - self.beta2) * d2

    def _update(
        self, d: torch.Tensor, slots: dict[str, torch.Tensor | None]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        m = slots["m"] if slots["m"] is not None else torch.zeros_like(d)
        v = slots["v"] if slots["v"] is not None else torch.full_like(d, self.tau**2)
        m = self.beta1 * m + (1 - self.beta1) * d
        v = self._second_moment(v, d * d)
        return m / (v.sqrt() + self.tau), {"m": m, "v": v}


@dataclass(frozen=True)
class FedYogi(FedAdam):
    """Yogi on the server: the second moment moves additively, by the sign of its error."""

    name: ClassVar[str] = "fedyogi"

    def _second_moment(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return v - (1 - self.beta2) * d2 * torch.sign(v - d2)


ServerOptimizer = FedAvgM | FedAdam | FedYogi


def save_state(state: ServerState, optimizer: ServerOptimizer, path: Path) -> None:
    """Write the state as safetensors; metadata records the optimizer and its settings."""
    metadata = {
        "format": STATE_FORMAT,
        "format_version": STATE_FORMAT_VERSION,
        "optimizer": state.optimizer,
        "step": str(state.step),
        "hyperparameters": json.dumps(asdict(optimizer), sort_keys=True),
    }
    save_file({k: v.contiguous() for k, v in state.tensors.items()}, str(path), metadata=metadata)


def load_state(path: Path, optimizer: ServerOptimizer) -> ServerState:
    """Read a state written by :func:`save_state` for this optimizer (same name and settings)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise StorageError(f"cannot read server optimizer state {path}: {error}") from None
    if metadata.get("format") != STATE_FORMAT:
        raise StorageError(
            f"{path} is not a server optimizer state (format {metadata.get('format')})"
        )
    if metadata.get("format_version") != STATE_FORMAT_VERSION:
        raise StorageError(f"{path} has state format version {metadata.get('format_version')}")
    if metadata.get("optimizer") != optimizer.name:
        raise ConfigError(
            f"{path} holds {metadata.get('optimizer')} state, not {optimizer.name}",
            hint="start the optimizer afresh or use the one the state was written by",
        )
    saved = json.loads(metadata.get("hyperparameters", "{}"))
    if saved != asdict(optimizer):
        raise ConfigError(f"{path} was written with {saved}, not {asdict(optimizer)}")
    return ServerState(optimizer.name, int(metadata["step"]), tensors)
