"""What makes a round's aggregation reproducible, and how a re-run is compared with it.

The aggregate is a function of the round's public inputs alone: the accepted updates (visited
in the canonical order, :func:`aggregator.client_update.ordered`), the start adapter, the
optimizer state carried in, the :class:`~aggregator.combine.StrategyConfig` and the compute
dtype. The last two are recorded in the round report (``params.strategy``,
``params.compute``), so every re-run uses them (:func:`compute_params`, :func:`recorded_compute`).

A re-run on another machine (another thread count, BLAS, CPU or CUDA, or another dtype on
purpose) gives the same result up to rounding, except where a factorisation is unique only up
to sign or rotation. So :func:`compare_adapters` compares what the model computes:

- for each LoRA module, the weight change ``scaling * B @ A`` of the published adapter against
  the re-run's, in Frobenius norm, through low-rank products (never the dense matrix):
  ``||dW_pub - dW_ref||_F <= atol + rtol * ||dW_ref||_F``;
- where the strategy truncates a spectrum (FlexLoRA), a module that fails that test still
  passes when it is an equally good best rank-``r`` approximation of the aggregate
  (``||W - dW_pub||^2 - tail^2 <= (atol + rtol * ||W||)^2``): with singular values tied at the
  truncation, every choice of the tied directions is a best approximation, and no
  deterministic rule picks the same one on every machine;
- where the factors themselves are unique (factor-wise strategies: FedAvg, the server
  optimizers, the robust rules) they are compared too, element by element
  (``|x_pub - x_ref| <= atol + rtol * |x_ref|``), so re-parametrising the factors of a module
  (``B Q``, ``Q^-1 A``) is caught although it keeps the weight change; for FlexLoRA the
  factors must be balanced as its split rule makes them (``A A^T = B^T B``, diagonal);
- every other tensor (``modules_to_save``, prompt-tuning embeddings) element by element.

``docs/audit.md`` says what is bit-identical and what is within tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

import torch
from pydantic import model_validator

from aggregator.client_update import LORA_A, LORA_B, lora_modules
from aggregator.device import Compute
from loraledger.errors import ConfigError
from loraledger.lowrank import product_distance, product_norm
from loraledger.settings import Settings

__all__ = [
    "DTYPES",
    "TOLERANCE",
    "Comparison",
    "Tolerance",
    "compare_adapters",
    "compute_params",
    "recorded_compute",
]

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
_DEFAULT_DTYPE = "float32"  # what reports written before params.compute existed ran with


class Tolerance(Settings):
    """How close a re-run must come: ``|got - ref| <= atol + rtol * |ref|``.

    Applied to each LoRA module's weight change in Frobenius norm, and element by element to
    the factors where they are unique and to the other tensors, compared in float64.
    """

    atol: float = 1e-5
    rtol: float = 1e-4

    @model_validator(mode="after")
    def _not_negative(self) -> Self:
        if not (self.atol >= 0 and self.rtol >= 0):
            raise ValueError(f"tolerances must be >= 0, got atol={self.atol} rtol={self.rtol}")
        return self

    def __str__(self) -> str:
        return f"atol {self.atol:g} + rtol {self.rtol:g}"


TOLERANCE = Tolerance()


def compute_params(compute: Compute) -> dict[str, str]:
    """The compute settings as a round report records them (``params.compute``)."""
    name = next(n for n, d in DTYPES.items() if d == compute.dtype)
    return {"dtype": name, "device": compute.device.type}


def recorded_compute(params: Mapping[str, Any], device: torch.device | None = None) -> Compute:
    """The compute a report recorded, on ``device`` (the re-runner's; CPU by default).

    The device is the re-runner's choice (CPU and CUDA agree within tolerance); the dtype is
    the report's. Reports without ``params.compute`` ran in float32.
    """
    recorded = params.get("compute")
    name = recorded.get("dtype", _DEFAULT_DTYPE) if isinstance(recorded, dict) else _DEFAULT_DTYPE
    if name not in DTYPES:
        raise ConfigError(f"the report's compute dtype {name!r} is not one of {sorted(DTYPES)}")
    return Compute(device or torch.device("cpu"), DTYPES[name])


@dataclass
class Comparison:
    """What differs between a re-run and a published adapter, and by how much.

    ``worst`` is the largest relative difference of a weight change (``||d||/||ref||``) or
    absolute difference of another tensor; ``exact`` says the tensors are bit-identical.
    """

    problems: list[str] = field(default_factory=list)
    worst: float = 0.0
    exact: bool = True
    ties: list[str] = field(default_factory=list)  # modules accepted as equally good truncations

    @property
    def ok(self) -> bool:
        return not self.problems


# ``excess(module, a, b) -> (||W - s b a||^2 - tail^2, ||W||^2)`` for a truncating strategy
Excess = Callable[[str, torch.Tensor, torch.Tensor], tuple[float, float]]


def compare_adapters(
    reference: Mapping[str, torch.Tensor],
    published: Mapping[str, torch.Tensor],
    scaling: float | None,
    tolerance: Tolerance = TOLERANCE,
    *,
    unique_factors: bool = True,
    excess: Excess | None = None,
    what: str = "the global adapter",
) -> Comparison:
    """Compare a re-run (``reference``) with a ``published`` adapter (see the module doc).

    ``scaling`` is the adapters' LoRA scaling (``None`` for a method without LoRA factors);
    ``unique_factors`` says the strategy's factors are unique (compare them element by
    element) rather than a factorisation (check them balanced); ``excess`` enables the
    best-approximation test of a truncating strategy.
    """
    out = Comparison()
    if set(reference) != set(published):
        missing = sorted(set(reference) - set(published))
        extra = sorted(set(published) - set(reference))
        out.problems.append(
            f"{what} has other tensors: missing {missing[:3]}, unexpected {extra[:3]}"
        )
        out.worst, out.exact = math.inf, False
        return out
    for name in sorted(reference):
        got, want = published[name], reference[name]
        if tuple(got.shape) != tuple(want.shape):
            out.problems.append(
                f"{what}: {name} has shape {tuple(got.shape)}, re-aggregation gives "
                f"{tuple(want.shape)}"
            )
            out.worst, out.exact = math.inf, False
    if out.problems:
        return out
    out.exact = all(torch.equal(reference[k].cpu(), published[k].cpu()) for k in reference)
    if out.exact:
        return out
    modules, others = lora_modules(reference) if scaling is not None else ([], sorted(reference))
    for module in modules:
        _compare_module(module, reference, published, scaling or 1.0, tolerance, excess, out)
        a, b = published[module + LORA_A], published[module + LORA_B]
        if unique_factors:
            for key in (module + LORA_A, module + LORA_B):
                _compare_elements(key, reference[key], published[key], tolerance, what, out)
        else:
            _check_balanced(module, a, b, tolerance, what, out)
    for key in others:
        _compare_elements(key, reference[key], published[key], tolerance, what, out)
    return out


def _compare_module(
    module: str,
    reference: Mapping[str, torch.Tensor],
    published: Mapping[str, torch.Tensor],
    scaling: float,
    tolerance: Tolerance,
    excess: Excess | None,
    out: Comparison,
) -> None:
    a_ref, b_ref = reference[module + LORA_A].double(), reference[module + LORA_B].double()
    a_pub, b_pub = published[module + LORA_A].double(), published[module + LORA_B].double()
    size = scaling * product_norm(b_ref, a_ref)
    diff = scaling * product_distance(b_pub, a_pub, b_ref, a_ref)
    out.worst = max(out.worst, diff / size if size > 0 else diff)
    if diff <= tolerance.atol + tolerance.rtol * size:
        return
    if excess is not None:
        worse, energy = excess(module, a_pub, b_pub)
        bound = tolerance.atol + tolerance.rtol * math.sqrt(energy)
        if worse <= bound * bound:
            out.ties.append(module)
            return
    out.problems.append(
        f"the weight change of {module} differs from re-aggregation by {diff:.3g} "
        f"(||dW|| = {size:.3g}; tolerance {tolerance})"
    )


def _compare_elements(
    key: str,
    reference: torch.Tensor,
    published: torch.Tensor,
    tolerance: Tolerance,
    what: str,
    out: Comparison,
) -> None:
    want, got = reference.detach().double().cpu(), published.detach().double().cpu()
    diff = float((got - want).abs().max()) if want.numel() else 0.0
    out.worst = max(out.worst, diff)
    if not torch.allclose(got, want, rtol=tolerance.rtol, atol=tolerance.atol):
        out.problems.append(
            f"{what}: {key} differs from re-aggregation by up to {diff:.3g} (tolerance {tolerance})"
        )


def _check_balanced(
    module: str, a: torch.Tensor, b: torch.Tensor, tolerance: Tolerance, what: str, out: Comparison
) -> None:
    """FlexLoRA splits ``W_r = U S V^T`` as ``B = U sqrt(S/s)``, ``A = sqrt(S/s) V^T``: then
    ``A A^T = B^T B = S/s``, diagonal, whatever the signs or a rotation inside tied values."""
    gram_a = a.double() @ a.double().T
    gram_b = b.double().T @ b.double()
    scale = float(torch.linalg.matrix_norm(gram_a)) + float(torch.linalg.matrix_norm(gram_b))
    off = gram_a - torch.diag(torch.diagonal(gram_a))
    gap = float(torch.linalg.matrix_norm(gram_a - gram_b)) + float(torch.linalg.matrix_norm(off))
    if gap > tolerance.atol + tolerance.rtol * scale:
        out.problems.append(
            f"{what}: the factors of {module} are not the balanced split of an SVD "
            f"(||AA^T - B^TB|| + off-diagonal = {gap:.3g}, scale {scale:.3g})"
        )
