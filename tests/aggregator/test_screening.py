"""Free riders, copies, trusted norm screening and the example cap, on weight changes."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.screening import (
    Candidate,
    Change,
    capped_examples,
    change_distance,
    change_norm,
    dense_size,
    find_copies,
    free_rider,
    trusted_outliers,
)
from aggregator.stats import OutlierPolicy
from tests.aggregator.lora_builders import addr, lora_tensors

SCALING = 2.0


def change(seed: int, scale: float = 1.0) -> Change:
    return Change(lora_tensors(seed, scale=scale), SCALING)


def zero_b(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: torch.zeros_like(v) if "lora_B" in k else v for k, v in tensors.items()}


def rescaled(x: Change, factor: float) -> Change:
    """The same weight change with other bytes: A * c, B / c."""
    return Change(
        {k: v * factor if "lora_A" in k else v / factor for k, v in x.tensors.items()},
        x.scaling,
    )


def permuted(x: Change, seed: int) -> Change:
    """The same weight change with its rank components permuted."""
    rank = next(v for k, v in x.tensors.items() if "lora_A" in k).shape[0]
    perm = torch.randperm(rank, generator=torch.Generator().manual_seed(seed))
    return Change(
        {k: v[perm] if "lora_A" in k else v[:, perm] for k, v in x.tensors.items()}, x.scaling
    )


def plus(a: Change, b: Change, weight: float) -> Change:
    """``a + weight * b`` factor-wise (small noise on top of ``a``)."""
    return Change({k: v + weight * b.tensors[k] for k, v in a.tensors.items()}, a.scaling)


def candidate(node: int, x: Change, order: int, step: float, current: bool = True) -> Candidate:
    return Candidate(addr(node), (1, order, 0), x, step, f"of {addr(node)}", current)


# ----------------------------------------------------------------------------- distances


def test_rescaled_and_permuted_factors_are_the_same_weight_change() -> None:
    x = change(1)
    assert change_distance(x, rescaled(x, 3.0)) <= 1e-6 * change_norm(x)
    assert change_distance(x, permuted(x, 0)) <= 1e-6 * change_norm(x)
    assert change_distance(x, change(2)) > 0.5 * change_norm(x)


def test_dense_size_counts_the_weights_a_lora_adapter_changes() -> None:
    # 2 layers x (q 12x10 + v 8x10)
    assert dense_size(lora_tensors(0)) == 2 * (12 * 10 + 8 * 10)


# ----------------------------------------------------------------------------- free riders


def test_the_start_adapter_resubmitted_is_a_free_rider() -> None:
    start = change(1)
    why = free_rider(start, start, rtol=1e-3, min_change_rms=1e-7)
    assert why is not None and "no" not in why.split()[0]


def test_the_start_plus_tiny_noise_is_a_free_rider_and_a_trained_update_is_not() -> None:
    start = change(1)
    noisy = plus(start, change(9), 1e-6)
    assert free_rider(noisy, start, rtol=1e-3, min_change_rms=1e-7) is not None
    trained = plus(start, change(9), 0.1)
    assert free_rider(trained, start, rtol=1e-3, min_change_rms=1e-7) is None


def test_a_zero_change_from_a_zero_start_is_a_free_rider() -> None:
    start = Change(zero_b(lora_tensors(1)), SCALING)  # round 1: B = 0, no weight change
    why = free_rider(start, start, rtol=1e-3, min_change_rms=1e-7)
    assert why is not None and "floor" in why


def test_an_earlier_global_adapter_resubmitted_is_a_free_rider() -> None:
    old, start = change(1), change(2)
    why = free_rider(
        rescaled(old, 0.5),
        start,
        [("the global adapter of round 1", old)],
        rtol=1e-3,
        min_change_rms=1e-7,
    )
    assert why is not None and "round 1" in why


# ----------------------------------------------------------------------------- copies


@pytest.mark.parametrize(
    "disguise",
    [
        lambda x: rescaled(x, 2.0),
        lambda x: permuted(x, 3),
        lambda x: plus(x, change(77), 1e-7),  # ULP-level noise
        lambda x: Change({k: v.half().float() for k, v in x.tensors.items()}, x.scaling),
    ],
    ids=["rescaled", "permuted", "noise", "float16"],
)
def test_a_copy_with_other_bytes_is_caught_and_the_earlier_one_keeps_its_verdict(
    disguise: Callable[[Change], Change],
) -> None:
    original = change(5)
    step = change_norm(original)
    # the copier has the LOWER address but committed LATER: order decides, not the address
    copies = find_copies(
        [candidate(9, original, order=1, step=step), candidate(1, disguise(original), 2, step)],
        rtol=0.1,
    )
    assert set(copies) == {addr(1)}
    assert addr(9) in copies[addr(1)]


def test_honest_updates_from_the_same_start_are_not_copies() -> None:
    start = change(1)
    items = [
        candidate(
            i, plus(start, change(100 + i), 0.3), order=i, step=0.3 * change_norm(change(100 + i))
        )
        for i in range(6)
    ]
    assert find_copies(items, rtol=0.1) == {}


def test_a_copy_of_an_earlier_rounds_update_is_caught_but_earlier_rounds_keep_theirs() -> None:
    old = change(5)
    earlier = Candidate(addr(3), (1, 10, 0), old, change_norm(old), "of 3 in round 1", False)
    again = Candidate(addr(3), (1, 11, 0), rescaled(old, 4.0), 1.0, "x", False)
    now = Candidate(addr(4), (2, 1, 0), rescaled(old, 0.25), 1.0, "y", True)
    copies = find_copies([now, again, earlier], rtol=0.1)
    assert copies == {addr(4): copies[addr(4)]}
    assert "round 1" in copies[addr(4)]


@settings(max_examples=30, deadline=None)
@given(factor=st.floats(0.01, 100.0), seed=st.integers(0, 1000))
def test_any_rescaling_or_permutation_is_a_copy(factor: float, seed: int) -> None:
    x = change(seed % 7)
    disguised = permuted(rescaled(x, factor), seed)
    copies = find_copies(
        [candidate(2, x, 1, change_norm(x)), candidate(1, disguised, 2, change_norm(x))],
        rtol=1e-5,
    )
    assert set(copies) == {addr(1)}


# ----------------------------------------------------------------------------- norm screening


def test_a_sybil_majority_of_small_updates_cannot_push_honest_ones_out() -> None:
    norms = {addr(i): 0.01 for i in range(4)} | {addr(10 + i): 0.57 + 0.01 * i for i in range(3)}
    honest = [addr(10 + i) for i in range(3)]
    # the old rule, against every update: the honest ones are the outliers
    plain = trusted_outliers(norms, None, OutlierPolicy())
    assert {n for n, v in plain.items() if v.outlier} == set(honest)
    # against the updates that help on the aggregator's own data: nobody honest is flagged
    trusted = trusted_outliers(norms, honest, OutlierPolicy())
    assert not any(trusted[n].outlier for n in honest)
    assert not any(v.outlier for v in trusted.values())  # small norms are no threat either


def test_a_boosted_update_is_still_flagged_against_the_trusted_reference() -> None:
    norms = {addr(i): 1.0 + 0.01 * i for i in range(4)} | {addr(9): 50.0}
    verdicts = trusted_outliers(norms, [addr(i) for i in range(4)], OutlierPolicy())
    assert [n for n, v in verdicts.items() if v.outlier] == [addr(9)]


def test_too_few_trusted_updates_flag_nothing() -> None:
    norms = {addr(0): 1.0, addr(1): 100.0, addr(2): 1.1}
    verdicts = trusted_outliers(norms, [addr(0)], OutlierPolicy())
    assert not any(v.outlier for v in verdicts.values())


# ----------------------------------------------------------------------------- example cap


def test_an_inflated_claim_weighs_no_more_than_the_median_claim() -> None:
    claims = {"a": 1000, "b": 1000, "c": 1000, "d": 2**63}
    assert capped_examples(claims) == {"a": 1000, "b": 1000, "c": 1000, "d": 1000}


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=3), st.integers(1, 2**64 - 1), min_size=1))
def test_no_capped_weight_exceeds_the_median_claim(claims: dict[str, int]) -> None:
    capped = capped_examples(claims)
    median = sorted(claims.values())[(len(claims) - 1) // 2]
    assert max(capped.values()) == median
    assert all(capped[n] <= claims[n] for n in claims)
    # no single node's share of the weight exceeds 1 / (number of nodes at or above the median)
    at_or_above = sum(1 for v in claims.values() if v >= median)
    assert max(capped.values()) / sum(capped.values()) <= 1 / at_or_above + 1e-12
    assert math.isfinite(sum(capped.values()))


# ----------------------------------------------------------------------------- copies at scale


def _wide(seed: int) -> Change:
    """An adapter of modules wide enough for the probes to see a generic change (64 inputs)."""
    modules = (("q_proj", 48, 64), ("v_proj", 32, 64))
    return Change(lora_tensors(seed, rank=8, modules=modules, scale=0.3), SCALING)


def _moved(x: Change, distance: float, seed: int) -> Change:
    """``x`` with one more rank component in one module, whose weight change has norm
    ``distance``: exactly that far from ``x``, with other factors and another rank."""
    module = next(k for k in sorted(x.tensors) if k.endswith("lora_A.weight"))[
        : -len(".lora_A.weight")
    ]
    g = torch.Generator().manual_seed(seed)
    a = x.tensors[module + ".lora_A.weight"]
    b = x.tensors[module + ".lora_B.weight"]
    extra_a = torch.randn(1, a.shape[1], generator=g)
    extra_b = torch.randn(b.shape[0], 1, generator=g)
    extra_b *= distance / (x.scaling * float(extra_a.norm()) * float(extra_b.norm()))
    tensors = {k: v.repeat(1, 1) for k, v in x.tensors.items()}
    for key in tensors:
        if key.endswith("lora_A.weight"):
            rows = extra_a if key.startswith(module) else torch.zeros(1, tensors[key].shape[1])
            tensors[key] = torch.cat([tensors[key], rows])
        elif key.endswith("lora_B.weight"):
            cols = extra_b if key.startswith(module) else torch.zeros(tensors[key].shape[0], 1)
            tensors[key] = torch.cat([tensors[key], cols], dim=1)
    return Change(tensors, x.scaling)


def _pair_by_pair(candidates: list[Candidate], rtol: float) -> dict[str, str]:
    """The copy rule applied to every pair, in order (a reference for the pruned search)."""
    ordered = sorted(candidates, key=lambda c: c.order)
    found = {}
    for i, item in enumerate(ordered):
        if not item.current:
            continue
        for earlier in ordered[:i]:
            if change_distance(item.load(), earlier.load()) <= rtol * earlier.step:
                found[item.node] = earlier.label
                break
    return found


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    factors=st.lists(st.sampled_from([0.3, 0.97, 1.03, 3.0]), min_size=1, max_size=4),
)
def test_the_bounds_skip_no_copy_that_every_pair_would_find(
    seed: int, factors: list[float]
) -> None:
    start = _wide(seed)
    honest = [plus(start, _wide(seed + 100 + i), 0.5) for i in range(6)]
    steps = [change_distance(h, start) for h in honest]
    items = [
        candidate(10 + i, h, order=i, step=s)
        for i, (h, s) in enumerate(zip(honest, steps, strict=True))
    ]
    for k, factor in enumerate(factors):  # near copies of honest updates, around the tolerance
        target = (seed + k) % len(honest)
        copy = _moved(honest[target], factor * 0.1 * steps[target], seed + k)
        items.append(candidate(50 + k, copy, order=10 + k, step=steps[target]))
    found = find_copies(items, rtol=0.1)
    expected = _pair_by_pair(items, 0.1)
    assert {n: d.split("update ", 1)[1].split(" again")[0] for n, d in found.items()} == expected
    assert {addr(50 + k) for k, f in enumerate(factors) if f < 1} <= set(found)


def test_honest_updates_are_told_apart_by_their_bounds_each_loaded_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = _wide(1)
    loads: dict[int, int] = {}

    def loader(i: int, change: Change) -> Callable[[], Change]:
        def load() -> Change:
            loads[i] = loads.get(i, 0) + 1
            return change

        return load

    items = []
    for i in range(40):
        update = plus(start, _wide(200 + i), 0.5)
        step = change_distance(update, start)
        items.append(Candidate(addr(i), (1, i, 0), loader(i, update), step, f"of {i}", True))
    exact = []
    monkeypatch.setattr(
        "aggregator.screening.change_distance",
        lambda x, y: exact.append(1) or change_distance(x, y),
    )
    assert find_copies(items, rtol=0.1) == {}
    assert exact == []  # 780 pairs, none needed its exact distance
    assert loads == dict.fromkeys(range(40), 1)  # one at a time, once each
