from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from aggregator.client_update import (
    ClientUpdate,
    TensorSpec,
    example_weights,
    lora_modules,
    ordered,
)
from aggregator.errors import AggregationError
from loraledger.errors import ConfigError, UpdateRejected


def _update(node: str = "0xa", **overrides) -> ClientUpdate:
    fields = {"num_examples": 5, "rank": 4, "alpha": 8.0} | overrides
    return ClientUpdate.in_memory(node, {"w": torch.zeros(2)}, **fields)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_examples": 0}, "num_examples of 0xa must be positive, got 0"),
        ({"rank": -1}, "rank of 0xa must be positive, got -1"),
        ({"alpha": float("nan")}, "alpha of 0xa must be a positive number, got nan"),
        ({"alpha": 0.0}, "alpha of 0xa must be a positive number, got 0.0"),
    ],
)
def test_client_update_rejects_bad_fields_naming_the_value(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _update(**overrides)


def test_client_update_rejects_empty_node():
    with pytest.raises(ConfigError, match="node address must not be empty"):
        _update("")


def test_scaling_is_alpha_over_rank():
    assert _update(rank=16, alpha=32.0).scaling == 2.0


def test_ordered_sorts_by_node_address_case_insensitively():
    updates = [_update("0xC"), _update("0xa"), _update("0xB")]
    assert [u.node for u in ordered(updates)] == ["0xa", "0xB", "0xC"]


def test_ordered_rejects_two_updates_from_one_node():
    with pytest.raises(UpdateRejected) as info:
        ordered([_update("0xAB"), _update("0xab")])
    assert info.value.reason == "duplicate_node"


def test_ordered_rejects_an_empty_round():
    with pytest.raises(AggregationError, match="no update to aggregate"):
        ordered([])


@given(st.lists(st.integers(1, 10**9), min_size=1, max_size=50))
def test_example_weights_are_proportional_and_sum_to_one(counts):
    updates = [_update(f"0x{i}", num_examples=n) for i, n in enumerate(counts)]
    weights = example_weights(updates)
    assert math.isclose(math.fsum(weights), 1.0, rel_tol=1e-12)
    for weight, n in zip(weights, counts, strict=True):
        assert math.isclose(weight * sum(counts), n, rel_tol=1e-9)


def test_tensor_spec_rejects_other_keys_shapes_and_integer_dtypes():
    spec = TensorSpec.of({"a": torch.zeros(2, 3)})
    with pytest.raises(UpdateRejected) as info:
        spec.check("0xn", {"b": torch.zeros(2, 3)})
    assert info.value.reason == "key_mismatch"
    with pytest.raises(UpdateRejected, match=r"a has shape \(3, 2\), expected \(2, 3\)") as info:
        spec.check("0xn", {"a": torch.zeros(3, 2)})
    assert info.value.reason == "shape_mismatch"
    with pytest.raises(UpdateRejected) as info:
        spec.check("0xn", {"a": torch.zeros(2, 3, dtype=torch.int64)})
    assert info.value.reason == "dtype"


def test_lora_modules_pairs_a_and_b_and_lists_other_keys():
    keys = ["m.lora_A.weight", "m.lora_B.weight", "head.weight"]
    assert lora_modules(keys) == (["m"], ["head.weight"])
    with pytest.raises(UpdateRejected, match="without both A and B"):
        lora_modules(["m.lora_A.weight"])
