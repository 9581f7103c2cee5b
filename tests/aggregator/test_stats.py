from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.client_update import ClientUpdate
from aggregator.stats import OutlierPolicy, flag_outliers, robust_z_scores, update_norms
from loraledger.errors import ConfigError, UpdateRejected
from tests.aggregator.lora_builders import addr, lora_tensors


def _update(i: int, tensors) -> ClientUpdate:
    return ClientUpdate.in_memory(addr(i), tensors, num_examples=1, rank=4, alpha=8.0)


def test_update_norms_equal_numpy_norms_of_the_change_from_the_reference():
    reference = lora_tensors(99)
    tensor_list = [lora_tensors(i) for i in range(3)]
    norms = update_norms([_update(i, t) for i, t in enumerate(tensor_list)], reference)
    for i, tensors in enumerate(tensor_list):
        delta = np.concatenate(
            [(tensors[k].double() - reference[k].double()).numpy().ravel() for k in tensors]
        )
        assert norms[addr(i)] == pytest.approx(float(np.linalg.norm(delta)), rel=1e-12)


def test_update_norms_reject_nan_and_wrong_shapes():
    nan_tensors = lora_tensors(1)
    next(iter(nan_tensors.values()))[0, 0] = float("nan")
    with pytest.raises(UpdateRejected, match=addr(1)) as info:
        update_norms([_update(0, lora_tensors(0)), _update(1, nan_tensors)])
    assert info.value.reason == "non_finite"
    with pytest.raises(UpdateRejected) as info:
        update_norms([_update(0, lora_tensors(0, rank=2))], reference=lora_tensors(1))
    assert info.value.reason == "shape_mismatch"


def test_robust_z_scores_equal_hand_computed_values():
    # median 3, absolute deviations [2, 1, 0, 1, 97] -> MAD 1, scale 1.4826
    scores = robust_z_scores({"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 100.0})
    assert scores["c"] == 0.0
    assert scores["a"] == pytest.approx(-2 / 1.4826)
    assert scores["e"] == pytest.approx(97 / 1.4826)


def test_x100_scaled_update_is_flagged_and_honest_ones_are_not():
    honest = [lora_tensors(i) for i in range(7)]
    updates = [_update(i, t) for i, t in enumerate(honest)]
    updates.append(_update(7, {k: v * 100 for k, v in honest[0].items()}))
    verdicts = flag_outliers(update_norms(updates))
    assert [v.node for v in verdicts if v.outlier] == [addr(7)]
    assert [v.node for v in verdicts] == sorted(addr(i) for i in range(8))


def test_a_barely_trained_update_is_flagged_only_when_two_sided():
    norms = {addr(i): 10.0 + i * 0.1 for i in range(6)} | {addr(6): 0.001}
    assert not any(v.outlier for v in flag_outliers(norms))
    flagged = [v.node for v in flag_outliers(norms, OutlierPolicy(two_sided=True)) if v.outlier]
    assert flagged == [addr(6)]


@given(st.floats(0.0, 1e6), st.integers(3, 20))
def test_identical_norms_are_never_outliers(norm, n):
    verdicts = flag_outliers({addr(i): norm for i in range(n)})
    assert not any(v.outlier for v in verdicts)
    assert all(v.z_score == 0.0 for v in verdicts)


def test_nothing_is_flagged_below_min_updates():
    assert not any(v.outlier for v in flag_outliers({"a": 1.0, "b": 1000.0}))


def test_outlier_policy_is_validated_naming_the_value():
    with pytest.raises(ConfigError, match="outlier threshold must be positive, got -1"):
        OutlierPolicy(threshold=-1)
    with pytest.raises(ConfigError, match="min_updates must be at least 3, got 2"):
        OutlierPolicy(min_updates=2)
