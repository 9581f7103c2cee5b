"""Low-rank maths shared by the node and the aggregator: one home for rank projection.

A LoRA module's weight change is ``scaling * B @ A`` (``B`` ``[out, r]``, ``A`` ``[r, in]``).
Everything here works on the factors and never forms the dense ``[out, in]`` matrix:

- :func:`factored_svd` gives the singular triplets of ``B @ A`` from a reduced QR of each
  factor and the SVD of the small ``R x R`` core (``O((out + in) R^2 + R^3)``), with the
  **canonical sign rule** applied, so that the same inputs give the same factors whatever
  sign the LAPACK routine of the machine happened to return;
- :func:`product_norm` and :func:`product_distance` give ``||B A||_F`` and
  ``||B1 A1 - B2 A2||_F`` through the same QR trick (numerically stable: no Gram matrix, so no
  cancellation when the two products are nearly equal).

The canonical sign rule. A singular vector is unique only up to sign (and, for a repeated
singular value, up to a rotation inside its group). The rule: each left singular vector
``u_k`` is multiplied by ``+1`` or ``-1`` so that its entry of largest magnitude is positive
(the first such entry when several have exactly that magnitude), and ``v_k`` by the same
sign, so that ``u_k s_k v_k^T`` is unchanged. This is scikit-learn's ``svd_flip``. Components
whose singular value is at most :data:`RANK_TOLERANCE` times the largest (numerically zero:
a rank-deficient product) are set to exactly zero vectors, since their directions are noise.
A rotation inside a group of equal singular values cannot be fixed by any rule; it leaves the
product ``U S V^T`` of the group unchanged, which is why audits compare weight changes, not
factors (``docs/audit.md``).
"""

from __future__ import annotations

import torch

__all__ = [
    "RANK_TOLERANCE",
    "FactoredSVD",
    "canonical_signs",
    "factored_svd",
    "product_distance",
    "product_norm",
]

RANK_TOLERANCE = 1e-6  # singular values below this times the largest count as zero


class FactoredSVD:
    """Singular triplets of ``B @ A``: ``left [out, k]``, ``values [k]``, ``right [k, in]``.

    ``values`` are sorted in decreasing order; ``all_values`` holds every singular value of
    the core (``min(out, in, R)`` of them), which :meth:`tail_energy` uses.
    """

    __slots__ = ("all_values", "left", "right", "values")

    def __init__(
        self,
        left: torch.Tensor,
        values: torch.Tensor,
        right: torch.Tensor,
        all_values: torch.Tensor,
    ) -> None:
        self.left = left
        self.values = values
        self.right = right
        self.all_values = all_values

    def tail_energy(self, rank: int) -> float:
        """``sum_{i > rank} s_i^2``: the squared error of the best rank-``rank`` approximation."""
        tail = self.all_values[rank:].double()
        return float((tail * tail).sum())


def canonical_signs(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``left`` and ``right`` with each pair ``(u_k, v_k)`` flipped by the canonical rule."""
    if left.numel() == 0:
        return left, right
    largest = left.abs().argmax(dim=0)  # the first index of the largest magnitude
    signs = torch.sign(left.gather(0, largest[None, :])[0])
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return left * signs[None, :], right * signs[:, None]


def factored_svd(b: torch.Tensor, a: torch.Tensor, keep: int | None = None) -> FactoredSVD:
    """The leading ``keep`` (default: all) singular triplets of ``b @ a``, canonical signs.

    ``b`` is ``[out, R]``, ``a`` is ``[R, in]``; the dtype and device of the inputs are kept.
    Numerically zero components (see :data:`RANK_TOLERANCE`) come back as zero vectors with
    a zero singular value.
    """
    if b.dim() != 2 or a.dim() != 2 or b.shape[1] != a.shape[0]:
        raise ValueError(f"cannot multiply B {tuple(b.shape)} by A {tuple(a.shape)}")
    q_b, r_b = torch.linalg.qr(b)
    q_a, r_a = torch.linalg.qr(a.T)
    u, s, vh = torch.linalg.svd(r_b @ r_a.T, full_matrices=False)
    k = s.shape[0] if keep is None else min(keep, s.shape[0])
    left, right = canonical_signs(q_b @ u[:, :k], vh[:k] @ q_a.T)
    values = s[:k]
    if values.numel():
        live = values > values[0] * RANK_TOLERANCE if float(values[0]) > 0 else values > 0
        left = left * live[None, :]
        right = right * live[:, None]
        values = values * live
    return FactoredSVD(left, values, right, s)


def product_norm(b: torch.Tensor, a: torch.Tensor) -> float:
    """``||b @ a||_F`` without forming the product (float64)."""
    b, a = b.double(), a.double()
    if b.shape[1] == 0:
        return 0.0
    _, r_b = torch.linalg.qr(b)
    _, r_a = torch.linalg.qr(a.T)
    return float(torch.linalg.matrix_norm(r_b @ r_a.T))


def product_distance(
    b1: torch.Tensor, a1: torch.Tensor, b2: torch.Tensor, a2: torch.Tensor
) -> float:
    """``||b1 @ a1 - b2 @ a2||_F`` without forming either product (float64).

    The difference is the product of the stacked factors ``[b1 | -b2] @ [a1; a2]``, whose
    norm is that of the small core after a QR of each stack.
    """
    b = torch.cat([b1.double(), -b2.double()], dim=1)
    a = torch.cat([a1.double(), a2.double()], dim=0)
    return product_norm(b, a)
