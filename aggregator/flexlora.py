"""Heterogeneous LoRA ranks: FlexLoRA (through QR of stacked factors) and zero-padding.

FlexLoRA (Bai et al., 2024). Node ``i`` sends ``A_i`` ``[r_i, in]`` and ``B_i`` ``[out, r_i]``
with scaling ``s_i = alpha_i / r_i`` and weight ``p_i = n_i / sum_j n_j``. Per module the
full-size aggregate is ``W = sum_i p_i s_i B_i A_i``; each target (rank ``r``, alpha) gets
the best rank-``r`` approximation of ``W`` (truncated SVD, Eckart-Young).

The QR path never forms ``W`` nor a dense SVD. With ``c_i = sqrt(p_i s_i)``,
``B_s = [c_1 B_1 | ... | c_n B_n]`` ``[out, R]`` and ``A_s = [c_1 A_1; ...; c_n A_n]``
``[R, in]`` (``R = sum_i r_i``) give ``W = B_s A_s``. With ``B_s = Q_B R_B`` and
``A_s^T = Q_A R_A`` (reduced QR), ``W = Q_B (R_B R_A^T) Q_A^T``; the SVD of the small core
``R_B R_A^T = U S V^T`` gives ``W = (Q_B U) S (Q_A V)^T``, which *is* an SVD of ``W``
(orthonormal columns times orthonormal columns). Cost ``O((out + in) R^2 + R^3)`` instead of
``O(out * in * min(out, in))``.

Split of scaling: a target with scaling ``s = alpha / r`` gets
``B' = U_r sqrt(S_r / s)`` and ``A' = sqrt(S_r / s) V_r^T``, so that ``s B' A' = W_r``:
the singular values and the scaling are divided evenly (square root) between A and B.

Zero-padding (HetLoRA-style baseline): pad every ``A_i``/``B_i`` with zero rows/columns to
the largest rank, average the factors by examples with ``sqrt(s_i / s)`` folded into each,
and keep the first ``r`` rows/columns. Equal to FedAvg when all ranks and scalings agree.

Keys that are not LoRA factors (e.g. ``modules_to_save``) are averaged by examples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from aggregator.client_update import (
    LORA_A,
    LORA_B,
    ClientUpdate,
    Tensors,
    check_finite,
    example_weights,
    lora_modules,
    ordered,
)
from aggregator.device import Compute
from aggregator.errors import REASON_RANK, REASON_SHAPE_MISMATCH
from loraledger.errors import ConfigError, UpdateRejected
from loraledger.lowrank import canonical_signs, factored_svd, product_distance

Method = Literal["qr", "dense"]


@dataclass(frozen=True)
class RankTarget:
    """An adapter shape to produce: LoRA rank and alpha (scaling ``alpha / rank``)."""

    rank: int
    alpha: float

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise ConfigError(f"target rank must be positive, got {self.rank}")
        if not math.isfinite(self.alpha) or self.alpha <= 0:
            raise ConfigError(f"target alpha must be a positive number, got {self.alpha}")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


@dataclass(frozen=True)
class HeteroResult:
    """Per target, a peft LoRA state dict (CPU, float32); the weights and spectra used."""

    adapters: dict[RankTarget, dict[str, torch.Tensor]]
    weights: dict[str, float]
    singular_values: dict[str, torch.Tensor]


def flexlora(
    updates: Sequence[ClientUpdate],
    targets: Iterable[RankTarget],
    *,
    method: Method = "qr",
    compute: Compute | None = None,
) -> HeteroResult:
    """FlexLoRA aggregate truncated to each target; ``method="dense"`` forms ``W`` (baseline).

    Stacks the factors in ``compute``'s dtype (float64 by default) and factorises in float64
    always. ``singular_values[module]`` holds the leading singular values of ``W`` (as many as
    the largest target rank).
    """
    if method not in ("qr", "dense"):
        raise ConfigError(f"method must be 'qr' or 'dense', got {method!r}")
    compute = compute or Compute(dtype=torch.float64)
    targets = _targets(targets)
    updates, loaded, modules, others, weights = _prepare(updates)
    keep = max(t.rank for t in targets)
    adapters: dict[RankTarget, dict[str, torch.Tensor]] = {t: {} for t in targets}
    spectra: dict[str, torch.Tensor] = {}
    for module in modules:
        b_stack, a_stack = _stacks(module, updates, loaded, weights, compute)
        # factorised in float64 whatever the compute dtype: rounding in an SVD turns into a
        # choice of directions where singular values are close (docs/audit.md)
        left, values, right = (_svd_qr if method == "qr" else _svd_dense)(
            b_stack.double(), a_stack.double(), keep
        )
        spectra[module] = values.cpu()
        for target in targets:
            a, b = _split(left, values, right, target)
            adapters[target][module + LORA_A] = a
            adapters[target][module + LORA_B] = b
    _average_others(others, loaded, weights, compute, adapters)
    return HeteroResult(
        adapters, {u.node: p for u, p in zip(updates, weights, strict=True)}, spectra
    )


def zero_pad(
    updates: Sequence[ClientUpdate],
    targets: Iterable[RankTarget],
    *,
    compute: Compute | None = None,
) -> HeteroResult:
    """Zero-padding baseline: factor-wise FedAvg at the largest rank, first ``r`` kept."""
    compute = compute or Compute(dtype=torch.float64)
    targets = _targets(targets)
    updates, loaded, modules, others, weights = _prepare(updates)
    adapters: dict[RankTarget, dict[str, torch.Tensor]] = {t: {} for t in targets}
    for module in modules:
        for target in targets:
            a_parts, b_parts = [], []
            for update, tensors, p in zip(updates, loaded, weights, strict=True):
                factor = p * math.sqrt(update.scaling / target.scaling)
                a_parts.append(
                    _fit_rows(_on(tensors[module + LORA_A], compute), target.rank) * factor
                )
                b_parts.append(
                    _fit_rows(_on(tensors[module + LORA_B], compute).T, target.rank).T * factor
                )
            a_sum = torch.stack(a_parts).sum(0)
            b_sum = torch.stack(b_parts).sum(0)
            adapters[target][module + LORA_A] = a_sum.to(torch.float32).cpu().contiguous()
            adapters[target][module + LORA_B] = b_sum.to(torch.float32).cpu().contiguous()
    _average_others(others, loaded, weights, compute, adapters)
    return HeteroResult(adapters, {u.node: p for u, p in zip(updates, weights, strict=True)}, {})


def _targets(targets: Iterable[RankTarget]) -> list[RankTarget]:
    result = sorted(set(targets), key=lambda t: (t.rank, t.alpha))
    if not result:
        raise ConfigError("give at least one target rank")
    return result


def _prepare(
    updates: Sequence[ClientUpdate],
) -> tuple[list[ClientUpdate], list[Tensors], list[str], list[str], list[float]]:
    updates = ordered(updates)
    loaded = [u.load() for u in updates]
    modules, others = lora_modules(loaded[0].keys())
    for update, tensors in zip(updates, loaded, strict=True):
        if lora_modules(tensors.keys()) != (modules, others):
            raise UpdateRejected(
                "key_mismatch", f"update of {update.node} adapts other modules than the round's"
            )
        check_finite(update.node, tensors)
        for module in modules:
            a, b = tensors[module + LORA_A], tensors[module + LORA_B]
            a0, b0 = loaded[0][module + LORA_A], loaded[0][module + LORA_B]
            if (
                a.dim() != 2
                or b.dim() != 2
                or a.shape[1] != a0.shape[1]
                or b.shape[0] != b0.shape[0]
            ):
                raise UpdateRejected(
                    REASON_SHAPE_MISMATCH,
                    f"update of {update.node}: {module} has A {tuple(a.shape)} and B "
                    f"{tuple(b.shape)}, the round has A [r, {a0.shape[1]}] "
                    f"and B [{b0.shape[0]}, r]",
                )
            if a.shape[0] != update.rank or b.shape[1] != update.rank:
                raise UpdateRejected(
                    REASON_RANK,
                    f"update of {update.node}: {module} has rank {a.shape[0]}/{b.shape[1]}, "
                    f"declared {update.rank}",
                )
        for key in others:
            if tensors[key].shape != loaded[0][key].shape:
                raise UpdateRejected(
                    REASON_SHAPE_MISMATCH, f"update of {update.node}: {key} has another shape"
                )
    return updates, loaded, modules, others, example_weights(updates)


def _on(tensor: torch.Tensor, compute: Compute) -> torch.Tensor:
    return tensor.to(device=compute.device, dtype=compute.dtype)


def _stacks(
    module: str,
    updates: Sequence[ClientUpdate],
    loaded: Sequence[Tensors],
    weights: Sequence[float],
    compute: Compute,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``B_s = [c_i B_i]`` (columns) and ``A_s = [c_i A_i]`` (rows), ``c_i = sqrt(p_i s_i)``."""
    factors = [math.sqrt(p * u.scaling) for u, p in zip(updates, weights, strict=True)]
    b_stack = torch.cat(
        [_on(t[module + LORA_B], compute) * c for t, c in zip(loaded, factors, strict=True)], 1
    )
    a_stack = torch.cat(
        [_on(t[module + LORA_A], compute) * c for t, c in zip(loaded, factors, strict=True)], 0
    )
    return b_stack, a_stack


def _svd_qr(
    b_stack: torch.Tensor, a_stack: torch.Tensor, keep: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Leading ``keep`` singular triplets of ``B_s A_s`` from QR of both factors (canonical
    signs, numerically zero components zeroed: :func:`loraledger.lowrank.factored_svd`)."""
    svd = factored_svd(b_stack, a_stack, keep)
    return svd.left, svd.values, svd.right


def _svd_dense(
    b_stack: torch.Tensor, a_stack: torch.Tensor, keep: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Leading ``keep`` singular triplets of the dense ``W = B_s A_s`` (reference path)."""
    u, s, vh = torch.linalg.svd(b_stack @ a_stack, full_matrices=False)
    k = min(keep, s.shape[0])
    left, right = canonical_signs(u[:, :k], vh[:k])
    return left, s[:k], right


def _split(
    left: torch.Tensor, values: torch.Tensor, right: torch.Tensor, target: RankTarget
) -> tuple[torch.Tensor, torch.Tensor]:
    """``A' [r, in]``, ``B' [out, r]`` with ``scaling * B' A' = W_r`` (zero-padded past rank W)."""
    k = min(target.rank, values.shape[0])
    root = torch.sqrt(values[:k] / target.scaling)
    a = _fit_rows(root[:, None] * right[:k], target.rank)
    b = _fit_rows((left[:, :k] * root[None, :]).T, target.rank).T
    return a.to(torch.float32).cpu().contiguous(), b.to(torch.float32).cpu().contiguous()


def _fit_rows(matrix: torch.Tensor, rows: int) -> torch.Tensor:
    """The first ``rows`` rows of ``matrix``, zero rows appended when it has fewer."""
    if matrix.shape[0] >= rows:
        return matrix[:rows]
    padding = matrix.new_zeros((rows - matrix.shape[0], matrix.shape[1]))
    return torch.cat([matrix, padding], 0)


def _average_others(
    others: Sequence[str],
    loaded: Sequence[Tensors],
    weights: Sequence[float],
    compute: Compute,
    adapters: dict[RankTarget, dict[str, torch.Tensor]],
) -> None:
    for key in others:
        mean = torch.stack(
            [_on(t[key], compute) * p for t, p in zip(loaded, weights, strict=True)]
        ).sum(0)
        for adapter in adapters.values():
            adapter[key] = mean.to(torch.float32).cpu()


def truncation_excess(
    updates: Sequence[ClientUpdate],
    module: str,
    a: torch.Tensor,
    b: torch.Tensor,
    target: RankTarget,
) -> tuple[float, float]:
    """How much worse than a best rank-``r`` approximation ``scaling * b @ a`` is, in float64.

    Returns ``(||W - scaling * b @ a||_F^2 - sum_{i > r} s_i^2, ||W||_F^2)`` for the FlexLoRA
    aggregate ``W`` of ``module`` (Eckart-Young: the first term is ``>= 0`` for any rank-``r``
    matrix, and ``0`` exactly for the best approximations). When singular values tie at the
    truncation, every choice of the tied directions is a best approximation; this is how an
    audit accepts any of them while refusing anything worse.
    """
    compute = Compute(dtype=torch.float64)
    updates, loaded, _, _, weights = _prepare(updates)
    b_stack, a_stack = _stacks(module, updates, loaded, weights, compute)
    svd = factored_svd(b_stack, a_stack)
    distance = product_distance(b_stack, a_stack, b.double() * target.scaling, a.double())
    energy = float((svd.all_values.double() ** 2).sum())
    return distance * distance - svd.tail_energy(target.rank), energy
