from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.client_update import ClientUpdate
from aggregator.flexlora import RankTarget, flexlora, zero_pad
from aggregator.strategies import fedavg
from loraledger.errors import ConfigError, UpdateRejected
from tests.aggregator.lora_builders import addr, lora_tensors

MODULES = (("q_proj", 24, 18), ("o_proj", 18, 18))


def _hetero(ranks, counts, alphas=None, *, layers=1, modules=MODULES) -> list[ClientUpdate]:
    alphas = alphas or [2.0 * r for r in ranks]
    return [
        ClientUpdate.in_memory(
            addr(i),
            lora_tensors(i, rank=r, layers=layers, modules=modules),
            num_examples=n,
            rank=r,
            alpha=a,
        )
        for i, (r, n, a) in enumerate(zip(ranks, counts, alphas, strict=True))
    ]


def _numpy_full_delta(updates, module: str) -> np.ndarray:
    """Independent reference: sum_i p_i (alpha_i / r_i) B_i A_i in float64 numpy."""
    total = sum(u.num_examples for u in updates)
    w = 0
    for u in updates:
        t = u.load()
        b = t[module + ".lora_B.weight"].double().numpy()
        a = t[module + ".lora_A.weight"].double().numpy()
        w = w + (u.num_examples / total) * (u.alpha / u.rank) * b @ a
    return w


def _numpy_truncated(w: np.ndarray, r: int) -> np.ndarray:
    u, s, vh = np.linalg.svd(w, full_matrices=False)
    return (u[:, :r] * s[:r]) @ vh[:r]


def _delta(adapter, module: str, target: RankTarget) -> np.ndarray:
    b = adapter[module + ".lora_B.weight"].double().numpy()
    a = adapter[module + ".lora_A.weight"].double().numpy()
    return target.scaling * b @ a


@settings(max_examples=25, deadline=None)
@given(
    ranks=st.lists(st.integers(1, 8), min_size=1, max_size=5),
    data=st.data(),
)
def test_qr_path_equals_dense_svd_and_numpy_within_1e_4(ranks, data):
    counts = data.draw(st.lists(st.integers(1, 100), min_size=len(ranks), max_size=len(ranks)))
    alphas = data.draw(st.lists(st.floats(0.5, 64), min_size=len(ranks), max_size=len(ranks)))
    target_rank = data.draw(st.integers(1, 10))
    updates = _hetero(ranks, counts, alphas)
    target = RankTarget(target_rank, 16.0)
    qr = flexlora(updates, [target]).adapters[target]
    dense = flexlora(updates, [target], method="dense").adapters[target]
    for module in ("q_proj", "o_proj"):
        prefix = f"base_model.model.model.layers.0.self_attn.{module}"
        w = _numpy_full_delta(updates, prefix)
        # a truncation is unique only with a gap after the r-th singular value
        s = np.linalg.svd(w, compute_uv=False)
        if target_rank < len(s) and s[target_rank - 1] - s[target_rank] < 1e-6 * s[0]:
            continue
        expected = _numpy_truncated(w, target_rank)
        np.testing.assert_allclose(
            _delta(qr, prefix, target), _delta(dense, prefix, target), atol=1e-4
        )
        np.testing.assert_allclose(_delta(qr, prefix, target), expected, atol=1e-4)


def test_each_target_gets_its_own_rank_and_scaling_split_evenly():
    updates = _hetero([2, 4, 8], [5, 10, 20], layers=2)
    targets = [RankTarget(2, 4.0), RankTarget(8, 32.0), RankTarget(20, 20.0)]
    result = flexlora(updates, targets)
    prefix = "base_model.model.model.layers.1.self_attn.q_proj"
    w = _numpy_full_delta(updates, prefix)
    for target in targets:
        adapter = result.adapters[target]
        a = adapter[prefix + ".lora_A.weight"].double().numpy()
        b = adapter[prefix + ".lora_B.weight"].double().numpy()
        assert a.shape == (target.rank, 18) and b.shape == (24, target.rank)
        np.testing.assert_allclose(
            _delta(adapter, prefix, target), _numpy_truncated(w, target.rank), atol=1e-5
        )
        # balanced split: A's rows and B's columns have equal norms sqrt(sigma_k / scaling)
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=0), rtol=1e-5)
    # rank 20 > sum of ranks (14): exact, padded with zero factors
    full = result.adapters[targets[2]]
    assert torch.count_nonzero(full[prefix + ".lora_A.weight"][14:]) == 0
    np.testing.assert_allclose(_delta(full, prefix, targets[2]), w, atol=1e-5)
    assert result.singular_values[prefix].shape == (14,)


@settings(max_examples=15, deadline=None)
@given(copies=st.integers(1, 5), rank=st.integers(1, 6), order=st.randoms(use_true_random=False))
def test_identical_updates_give_their_delta_back_in_any_order(copies, rank, order):
    tensors = lora_tensors(3, rank=rank, layers=1, modules=MODULES)
    updates = [
        ClientUpdate.in_memory(addr(i), tensors, num_examples=i + 1, rank=rank, alpha=2.0 * rank)
        for i in range(copies)
    ]
    shuffled = list(updates)
    order.shuffle(shuffled)
    target = RankTarget(rank, 2.0 * rank)
    first = flexlora(updates, [target])
    second = flexlora(shuffled, [target])
    assert sum(first.weights.values()) == pytest.approx(1.0)
    assert all(torch.equal(first.adapters[target][k], second.adapters[target][k]) for k in tensors)
    for module in ("q_proj", "o_proj"):
        prefix = f"base_model.model.model.layers.0.self_attn.{module}"
        expected = (
            tensors[prefix + ".lora_B.weight"].double().numpy()
            @ tensors[prefix + ".lora_A.weight"].double().numpy()
        )
        np.testing.assert_allclose(
            _delta(first.adapters[target], prefix, target) / target.scaling, expected, atol=1e-5
        )


def test_zero_padding_equals_fedavg_when_ranks_and_scalings_agree():
    updates = _hetero([4, 4, 4], [1, 2, 3])
    target = RankTarget(4, 8.0)
    padded = zero_pad(updates, [target]).adapters[target]
    averaged = fedavg(updates).tensors
    for key, value in averaged.items():
        torch.testing.assert_close(padded[key], value)


def test_zero_padding_keeps_the_leading_rows_of_padded_factors():
    updates = _hetero([2, 6], [1, 1], alphas=[4.0, 12.0])  # equal scaling 2
    target = RankTarget(4, 8.0)
    padded = zero_pad(updates, [target]).adapters[target]
    prefix = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
    a0, a1 = updates[0].load()[prefix], updates[1].load()[prefix]
    expected = torch.cat([a0, torch.zeros(2, 18)]) * 0.5 + a1[:4] * 0.5
    torch.testing.assert_close(padded[prefix], expected)


def test_flexlora_beats_zero_padding_on_the_full_delta():
    updates = _hetero([2, 4, 8], [5, 10, 20], layers=1)
    target = RankTarget(8, 16.0)
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    w = _numpy_full_delta(updates, prefix)
    flex_error = np.linalg.norm(
        _delta(flexlora(updates, [target]).adapters[target], prefix, target) - w
    )
    pad_error = np.linalg.norm(
        _delta(zero_pad(updates, [target]).adapters[target], prefix, target) - w
    )
    assert flex_error < pad_error


def test_flexlora_rejects_a_rank_that_differs_from_the_declared_one():
    updates = _hetero([4, 4], [1, 1])
    liar = ClientUpdate.in_memory(addr(1), updates[1].load(), num_examples=1, rank=8, alpha=16.0)
    with pytest.raises(UpdateRejected, match=f"update of {addr(1)}.*declared 8") as info:
        flexlora([updates[0], liar], [RankTarget(4, 8.0)])
    assert info.value.reason == "rank_mismatch"


def test_flexlora_rejects_nan_and_other_module_shapes():
    updates = _hetero([4, 4], [1, 1])
    poisoned = dict(updates[1].load())
    key = next(iter(poisoned))
    poisoned[key] = poisoned[key].clone()
    poisoned[key][0, 0] = float("inf")
    bad = ClientUpdate.in_memory(addr(1), poisoned, num_examples=1, rank=4, alpha=8.0)
    with pytest.raises(UpdateRejected) as info:
        flexlora([updates[0], bad], [RankTarget(4, 8.0)])
    assert info.value.reason == "non_finite"
    other = _hetero([4], [1], modules=(("q_proj", 24, 17), ("o_proj", 18, 18)))[0]
    other = ClientUpdate.in_memory(addr(1), other.load(), num_examples=1, rank=4, alpha=8.0)
    with pytest.raises(UpdateRejected) as info:
        flexlora([updates[0], other], [RankTarget(4, 8.0)])
    assert info.value.reason == "shape_mismatch"


def test_flexlora_validates_targets_and_method():
    updates = _hetero([4], [1])
    with pytest.raises(ConfigError, match="target rank must be positive, got 0"):
        RankTarget(0, 1.0)
    with pytest.raises(ConfigError, match="give at least one target rank"):
        flexlora(updates, [])
    with pytest.raises(ConfigError, match="method must be 'qr' or 'dense', got 'svd'"):
        flexlora(updates, [RankTarget(4, 8.0)], method="svd")
