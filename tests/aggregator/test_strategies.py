from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from aggregator.client_update import ClientUpdate
from aggregator.device import Compute
from aggregator.errors import AggregationError
from aggregator.strategies import WeightedSum, fedavg, raise_for_non_finite
from loraledger.errors import UpdateRejected
from tests.aggregator.lora_builders import addr, lora_tensors


def _numpy_fedavg(updates: list[ClientUpdate]) -> dict[str, np.ndarray]:
    """Independent reference: float64 numpy, weights from the raw example counts."""
    total = sum(u.num_examples for u in updates)
    result: dict[str, np.ndarray] = {}
    for update in updates:
        for key, value in update.load().items():
            term = value.double().numpy() * (update.num_examples / total)
            result[key] = result[key] + term if key in result else term
    return result


def test_fedavg_equals_a_numpy_weighted_average(make_update):
    updates = [make_update(addr(i), seed=i, num_examples=n) for i, n in enumerate([3, 50, 7, 1])]
    result = fedavg(updates)
    reference = _numpy_fedavg(updates)
    assert result.tensors.keys() == reference.keys()
    for key, expected in reference.items():
        np.testing.assert_allclose(result.tensors[key].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert result.weights == {addr(0): 3 / 61, addr(1): 50 / 61, addr(2): 7 / 61, addr(3): 1 / 61}


def test_fedavg_in_float64_matches_numpy_to_double_precision(make_update):
    updates = [
        make_update(addr(i), seed=i, num_examples=i + 1, dtype=torch.float64) for i in range(3)
    ]
    result = fedavg(updates, compute=Compute(dtype=torch.float64))
    for key, expected in _numpy_fedavg(updates).items():
        np.testing.assert_allclose(result.tensors[key].numpy(), expected, rtol=1e-13)


@settings(max_examples=30, deadline=None)
@given(
    counts=st.lists(st.integers(1, 1000), min_size=1, max_size=6),
    permutation_seed=st.randoms(use_true_random=False),
)
def test_fedavg_is_bitwise_permutation_invariant_and_weights_sum_to_one(counts, permutation_seed):
    updates = [
        ClientUpdate.in_memory(
            addr(i), lora_tensors(i, layers=1), num_examples=n, rank=4, alpha=8.0
        )
        for i, n in enumerate(counts)
    ]
    shuffled = list(updates)
    permutation_seed.shuffle(shuffled)
    first, second = fedavg(updates), fedavg(shuffled)
    assert all(torch.equal(first.tensors[k], second.tensors[k]) for k in first.tensors)
    assert sum(first.weights.values()) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(copies=st.integers(1, 8), counts=st.lists(st.integers(1, 10**6), min_size=8, max_size=8))
def test_fedavg_of_identical_updates_gives_the_update_back(copies, counts):
    tensors = lora_tensors(7, layers=1)
    updates = [
        ClientUpdate.in_memory(addr(i), tensors, num_examples=counts[i], rank=4, alpha=8.0)
        for i in range(copies)
    ]
    result = fedavg(updates)
    for key, value in tensors.items():
        torch.testing.assert_close(result.tensors[key], value, rtol=1e-6, atol=1e-6)


def test_fedavg_with_explicit_weights_normalises_them(make_update):
    updates = [make_update(addr(i), seed=i) for i in range(2)]
    result = fedavg(updates, weights={addr(0): 3.0, addr(1): 1.0})
    assert result.weights == {addr(0): 0.75, addr(1): 0.25}
    with pytest.raises(AggregationError, match="no weight given for node"):
        fedavg(updates, weights={addr(0): 1.0})
    with pytest.raises(AggregationError, match="non-negative with a positive sum"):
        fedavg(updates, weights={addr(0): 0.0, addr(1): 0.0})


def test_fedavg_rejects_a_nan_update_naming_its_node(make_update):
    poisoned = lora_tensors(2)
    next(iter(poisoned.values()))[0, 0] = float("nan")
    updates = [make_update(addr(i), seed=i) for i in range(2)]
    updates.append(ClientUpdate.in_memory(addr(2), poisoned, num_examples=10, rank=4, alpha=8.0))
    with pytest.raises(UpdateRejected, match=addr(2)) as info:
        fedavg(updates)
    assert info.value.reason == "non_finite"


def test_fedavg_rejects_a_wrong_shape_naming_its_node(make_update):
    updates = [make_update(addr(0), seed=0), make_update(addr(1), seed=1, rank=5)]
    with pytest.raises(UpdateRejected, match=f"update of {addr(1)}") as info:
        fedavg(updates)
    assert info.value.reason == "shape_mismatch"


def test_non_finite_search_blames_no_node_when_every_update_is_finite(make_update):
    """The failure path after an overflow says so instead of rejecting an innocent node."""
    updates = [make_update(addr(i), seed=i) for i in range(2)]
    with pytest.raises(AggregationError, match="overflowed to inf although every update is finite"):
        raise_for_non_finite(updates)


def test_fedavg_streams_from_files_holding_one_update_at_a_time(tmp_path):
    """Each update is loaded once and released before the next is loaded."""
    paths, expected_updates = [], []
    for i in range(4):
        tensors = lora_tensors(i)
        path = tmp_path / f"{i}.safetensors"
        save_file(tensors, str(path))
        paths.append(path)
        expected_updates.append(
            ClientUpdate.in_memory(addr(i), tensors, num_examples=i + 1, rank=4, alpha=8.0)
        )
    alive: list[weakref.ref] = []
    loads = []

    def tracking_loader(i: int):
        def load():
            gc.collect()
            loads.append((i, sum(ref() is not None for ref in alive)))
            tensors = ClientUpdate.from_safetensors(
                addr(i), paths[i], num_examples=i + 1, rank=4, alpha=8.0
            ).load()
            alive.extend(weakref.ref(t) for t in tensors.values())
            return tensors

        return load

    streamed = [ClientUpdate(addr(i), i + 1, 4, 8.0, tracking_loader(i)) for i in range(4)]
    result = fedavg(streamed)
    assert loads == [(0, 0), (1, 0), (2, 0), (3, 0)]
    reference = fedavg(expected_updates)
    assert all(torch.equal(result.tensors[k], reference.tensors[k]) for k in reference.tensors)


@settings(max_examples=20, deadline=None)
@given(weights=st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=5))
def test_adding_tensor_by_tensor_equals_adding_update_by_update_bitwise(weights):
    updates = [lora_tensors(i, layers=1) for i in range(len(weights))]
    one_by_one, tensor_by_tensor = WeightedSum(), WeightedSum()
    for i, (tensors, weight) in enumerate(zip(updates, weights, strict=True)):
        one_by_one.add(addr(i), tensors, weight)
    tensor_by_tensor.add_many(
        [(addr(i), t, w) for i, (t, w) in enumerate(zip(updates, weights, strict=True))]
    )
    first, second = one_by_one.result(), tensor_by_tensor.result()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert one_by_one.total_weight == pytest.approx(tensor_by_tensor.total_weight)
