"""Low-rank maths: factored SVD with the canonical sign rule, norms and distances of products
without the dense matrix. Property tests over shapes, ranks and spectra."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loraledger.lowrank import canonical_signs, factored_svd, product_distance, product_norm

shapes = st.tuples(st.integers(1, 24), st.integers(1, 24), st.integers(1, 10))


def factors(seed: int, out: int, inner: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(out, rank, generator=g, dtype=torch.float64),
        torch.randn(rank, inner, generator=g, dtype=torch.float64),
    )


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_product_norm_and_distance_equal_the_dense_ones(
    shape: tuple[int, int, int], seed: int
) -> None:
    out, inner, rank = shape
    b1, a1 = factors(seed, out, inner, rank)
    b2, a2 = factors(seed + 1, out, inner, max(1, rank - 1))
    assert product_norm(b1, a1) == pytest.approx(
        float(torch.linalg.matrix_norm(b1 @ a1)), rel=1e-10
    )
    dense = float(torch.linalg.matrix_norm(b1 @ a1 - b2 @ a2))
    assert product_distance(b1, a1, b2, a2) == pytest.approx(dense, rel=1e-9, abs=1e-12)


def test_product_distance_resolves_tiny_differences_that_a_gram_matrix_would_cancel() -> None:
    b, a = factors(0, 64, 48, 8)
    eps = 1e-9
    b2 = b.clone()
    b2[0, 0] += eps
    want = eps * float(torch.linalg.vector_norm(a[0]))
    assert product_distance(b, a, b2, a) == pytest.approx(want, rel=1e-4)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_factored_svd_is_canonical_under_any_factorisation_of_the_same_product(
    shape: tuple[int, int, int], seed: int
) -> None:
    # B Q and Q^-1 A (signs, permutations and rotations of the rank components) have the same
    # product: the canonical triplets must be the same
    out, inner, rank = shape
    b, a = factors(seed, out, inner, rank)
    q, _ = torch.linalg.qr(
        torch.randn(rank, rank, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    first = factored_svd(b, a)
    second = factored_svd(b @ q, q.T @ a)
    values = first.values
    assert torch.allclose(values, second.values, rtol=1e-9, atol=1e-9)
    inf = torch.tensor([float("inf")], dtype=values.dtype)
    gaps = values[:-1] - values[1:]
    nearest = torch.minimum(torch.cat([inf, gaps]), torch.cat([gaps, inf]))
    distinct = (nearest > 1e-6 * values[0]) & (values > 0)  # a singular pair unique up to sign
    for k in torch.nonzero(distinct).flatten().tolist():
        assert torch.allclose(first.left[:, k], second.left[:, k], atol=1e-7)
        assert torch.allclose(first.right[k], second.right[k], atol=1e-7)
    recon = first.left * first.values @ first.right
    assert torch.allclose(recon, b @ a, atol=1e-8 * (1 + float((b @ a).abs().max())))


def test_the_largest_entry_of_each_left_vector_is_positive_and_flips_carry_to_the_right() -> None:
    b, a = factors(3, 20, 16, 5)
    svd = factored_svd(b, a)
    for k in range(svd.values.numel()):
        column = svd.left[:, k]
        assert column[column.abs().argmax()] > 0
    left, right = canonical_signs(-svd.left, -svd.right)
    assert torch.equal(left, svd.left) and torch.equal(right, svd.right)


def test_float32_and_float64_give_the_same_signs() -> None:
    b, a = factors(7, 96, 80, 12)
    wide = factored_svd(b, a)
    narrow = factored_svd(b.float(), a.float())
    assert torch.allclose(narrow.left.double(), wide.left, atol=1e-4)
    assert torch.allclose(narrow.right.double(), wide.right, atol=1e-4)


def test_rank_deficient_products_have_exactly_zero_components() -> None:
    b, a = factors(5, 12, 10, 6)
    b[:, 3:] = b[:, :3] * 2.0  # rank 3 in 6 components
    svd = factored_svd(b, a)
    assert int((svd.values > 0).sum()) == 3
    assert torch.count_nonzero(svd.left[:, 3:]) == 0 and torch.count_nonzero(svd.right[3:]) == 0
    assert factored_svd(torch.zeros(4, 2), torch.zeros(2, 5)).values.abs().sum() == 0
    assert svd.tail_energy(3) == pytest.approx(0.0, abs=1e-12)


def test_keep_truncates_and_tail_energy_is_the_error_of_the_truncation() -> None:
    b, a = factors(9, 30, 25, 8)
    svd = factored_svd(b, a, keep=3)
    assert svd.values.shape == (3,) and svd.left.shape == (30, 3) and svd.right.shape == (3, 25)
    error = float(torch.linalg.matrix_norm(b @ a - svd.left * svd.values @ svd.right)) ** 2
    assert svd.tail_energy(3) == pytest.approx(error, rel=1e-9)


def test_shapes_that_do_not_multiply_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot multiply"):
        factored_svd(torch.zeros(4, 3), torch.zeros(2, 5))
