from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.client_update import ClientUpdate
from aggregator.errors import AggregationError
from aggregator.robust import clipped_fedavg, coordinate_median, krum, trimmed_mean
from aggregator.strategies import fedavg
from loraledger.errors import ConfigError, UpdateRejected
from tests.aggregator.lora_builders import addr, lora_tensors


def _updates(tensor_list, counts=None) -> list[ClientUpdate]:
    counts = counts or [10] * len(tensor_list)
    return [
        ClientUpdate.in_memory(addr(i), t, num_examples=n, rank=4, alpha=8.0)
        for i, (t, n) in enumerate(zip(tensor_list, counts, strict=True))
    ]


def _flat(tensors) -> np.ndarray:
    return np.concatenate([tensors[k].double().numpy().ravel() for k in sorted(tensors)])


def _naive_krum_scores(vectors: list[np.ndarray], f: int) -> list[float]:
    """Independent reference: a double loop over numpy vectors."""
    scores = []
    for i, v in enumerate(vectors):
        distances = sorted(float(np.sum((v - w) ** 2)) for j, w in enumerate(vectors) if j != i)
        scores.append(sum(distances[: len(vectors) - f - 2]))
    return scores


@pytest.fixture(scope="module")
def honest_round():
    """Ten honest updates near a common centre, the base of the poisoning tests."""
    centre = lora_tensors(100)
    honest = []
    for i in range(10):
        noise = lora_tensors(i, scale=0.05)
        honest.append({k: centre[k] + noise[k] for k in centre})
    return centre, honest


def _poison(honest, kind: str):
    victim = honest[0]
    if kind == "scale_x100":
        return {k: v * 100 for k, v in victim.items()}
    if kind == "sign_flip":
        return {k: -v for k, v in victim.items()}
    raise ValueError(kind)


def _distance(a, b) -> float:
    return float(np.linalg.norm(_flat(a) - _flat(b)))


def test_coordinate_median_equals_numpy_median():
    tensor_list = [lora_tensors(i) for i in range(5)] + [lora_tensors(9)]
    result = coordinate_median(_updates(tensor_list))
    for key in tensor_list[0]:
        expected = np.median(np.stack([t[key].double().numpy() for t in tensor_list]), axis=0)
        np.testing.assert_allclose(result.tensors[key].numpy(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("n", "ratio"), [(7, 0.2), (10, 0.25), (4, 0.0)])
def test_trimmed_mean_equals_a_per_coordinate_python_loop(n, ratio):
    tensor_list = [lora_tensors(i, layers=1) for i in range(n)]
    result = trimmed_mean(_updates(tensor_list), trim_ratio=ratio)
    k = math.floor(ratio * n)
    for key in tensor_list[0]:
        columns = zip(*[t[key].double().reshape(-1).tolist() for t in tensor_list], strict=True)
        expected = [sum(sorted(col)[k : n - k]) / (n - 2 * k) for col in columns]
        np.testing.assert_allclose(
            result.tensors[key].reshape(-1).numpy(), expected, rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize(("f", "select"), [(1, 1), (2, 3)])
def test_krum_scores_and_selection_equal_a_naive_reference(f, select):
    tensor_list = [lora_tensors(i, scale=1 + i / 10) for i in range(8)]
    updates = _updates(tensor_list, counts=[i + 1 for i in range(8)])
    result = krum(updates, byzantine=f, select=select)
    expected_scores = _naive_krum_scores([_flat(t) for t in tensor_list], f)
    scores = [result.details[addr(i)]["score"] for i in range(8)]
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-9)
    chosen = sorted(np.argsort(expected_scores, kind="stable")[:select])
    assert [i for i in range(8) if result.weights[addr(i)] > 0] == chosen
    reference = fedavg([updates[i] for i in chosen])
    for key in tensor_list[0]:
        torch.testing.assert_close(result.tensors[key], reference.tensors[key])


def test_clipped_fedavg_equals_reference_plus_clipped_deltas():
    reference = lora_tensors(50)
    tensor_list = [lora_tensors(i) for i in range(4)]
    counts = [1, 2, 3, 4]
    result = clipped_fedavg(_updates(tensor_list, counts), reference=reference, max_norm=5.0)
    ref = _flat(reference)
    expected = ref.copy()
    for t, n in zip(tensor_list, counts, strict=True):
        delta = _flat(t) - ref
        expected += n / 10 * delta * min(1.0, 5.0 / np.linalg.norm(delta))
    np.testing.assert_allclose(_flat(result.tensors), expected, rtol=1e-5, atol=1e-6)
    assert result.details[addr(0)]["clip"] == pytest.approx(
        5.0 / np.linalg.norm(_flat(tensor_list[0]) - ref)
    )


@pytest.mark.parametrize("kind", ["scale_x100", "sign_flip"])
@pytest.mark.parametrize(
    "strategy",
    [
        pytest.param(lambda u, c: coordinate_median(u), id="median"),
        pytest.param(lambda u, c: trimmed_mean(u, trim_ratio=0.2), id="trimmed_mean"),
        pytest.param(lambda u, c: krum(u, byzantine=2, select=4), id="multi_krum"),
        pytest.param(lambda u, c: clipped_fedavg(u, reference=c), id="norm_clipping"),
    ],
)
def test_a_poisoned_update_is_neutralised(honest_round, strategy, kind):
    centre, honest = honest_round
    clean = fedavg(_updates(honest)).tensors
    poisoned_round = [*honest, _poison(honest, kind), _poison(honest, kind)]
    attacked_plain = fedavg(_updates(poisoned_round)).tensors
    robust = strategy(_updates(poisoned_round), centre).tensors
    honest_spread = max(_distance(h, clean) for h in honest)
    assert _distance(attacked_plain, clean) > 3 * honest_spread  # the attack does bite plain FedAvg
    assert _distance(robust, clean) < honest_spread  # and not the robust rule


@pytest.mark.parametrize(
    "strategy",
    [
        lambda u: coordinate_median(u),
        lambda u: trimmed_mean(u, trim_ratio=0.2),
        lambda u: krum(u, byzantine=1),
        lambda u: clipped_fedavg(u),
    ],
    ids=["median", "trimmed_mean", "krum", "norm_clipping"],
)
def test_robust_rules_reject_nan_and_wrong_shapes_instead_of_averaging_them(strategy):
    nan_update = lora_tensors(3)
    next(iter(nan_update.values()))[1, 1] = float("nan")
    with pytest.raises(UpdateRejected, match=addr(4)) as info:
        strategy(_updates([lora_tensors(i) for i in range(4)] + [nan_update]))
    assert info.value.reason == "non_finite"
    with pytest.raises(UpdateRejected, match=addr(4)) as info:
        strategy(_updates([lora_tensors(i) for i in range(4)] + [lora_tensors(4, rank=3)]))
    assert info.value.reason == "shape_mismatch"


@settings(max_examples=10, deadline=None)
@given(n=st.integers(5, 8), order=st.randoms(use_true_random=False), copies=st.booleans())
def test_robust_rules_are_permutation_invariant_and_give_identical_updates_back(n, order, copies):
    tensor_list = [lora_tensors(0 if copies else i, layers=1) for i in range(n)]
    updates = _updates(tensor_list)
    shuffled = list(updates)
    order.shuffle(shuffled)
    for rule in (
        coordinate_median,
        lambda u: trimmed_mean(u, trim_ratio=0.2),
        lambda u: krum(u, byzantine=1, select=2),
    ):
        first, second = rule(updates), rule(shuffled)
        assert all(torch.equal(first.tensors[k], second.tensors[k]) for k in first.tensors)
        assert sum(first.weights.values()) == pytest.approx(1.0)
        if copies:
            for key, value in tensor_list[0].items():
                torch.testing.assert_close(first.tensors[key], value)


def test_robust_rules_validate_their_parameters():
    updates = _updates([lora_tensors(i) for i in range(4)])
    with pytest.raises(AggregationError, match="byzantine=1 needs at least 5 updates, got 4"):
        krum(updates, byzantine=1)
    with pytest.raises(ConfigError, match="select must be between 1 and 4, got 5"):
        krum(updates, byzantine=0, select=5)
    with pytest.raises(ConfigError, match=r"trim_ratio must be in \[0, 0.5\), got 0.5"):
        trimmed_mean(updates, trim_ratio=0.5)
    with pytest.raises(ConfigError, match="max_norm must be positive, got 0"):
        clipped_fedavg(updates, max_norm=0)
