"""The privacy accountant against exact references: the full-batch Gaussian mechanism's exact
(epsilon, delta) and Opacus's own RDP analysis; and every impossible input as one clear error."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import pytest

from loraledger.errors import ConfigError
from loraledger.privacy import (
    NO_PRIVACY,
    Stretch,
    TaskPrivacy,
    accountant_named,
    change_norm,
    clip_allowance,
    clip_and_noise,
    epsilon,
    epsilon_by_round,
    example_breach,
    gaussian_epsilon,
    global_epsilon,
    noise_multiplier,
    publishes,
    schedule_epsilon,
)
from loraledger.update import PrivacyRecord

DELTA = 1e-5


@pytest.mark.parametrize(("sigma", "steps"), [(0.8, 1), (1.0, 10), (2.0, 100), (5.0, 100)])
def test_prv_matches_the_exact_gaussian_mechanism_and_rdp_bounds_it_from_above(
    sigma: float, steps: int
) -> None:
    exact = gaussian_epsilon(sigma, steps, DELTA)
    prv = epsilon([Stretch(sigma, 1.0, steps)], DELTA, "prv")
    rdp = epsilon([Stretch(sigma, 1.0, steps)], DELTA, "rdp")
    assert exact > 0
    assert prv == pytest.approx(exact, rel=0.01)  # PRV is numerically tight
    assert exact <= rdp <= exact * 1.5  # RDP is a valid, looser bound


def test_the_exact_gaussian_epsilon_solves_the_analytic_delta() -> None:
    from scipy.stats import norm

    mu = math.sqrt(10) / 1.0
    eps = gaussian_epsilon(1.0, 10, DELTA)
    delta = norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2)
    assert delta == pytest.approx(DELTA, rel=1e-6)


def test_rdp_is_opacus_own_analysis_of_the_sampled_gaussian() -> None:
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
    from opacus.accountants.rdp import RDPAccountant

    orders = RDPAccountant.DEFAULT_ALPHAS
    rdp = compute_rdp(q=0.01, noise_multiplier=1.1, steps=1000, orders=orders)
    reference, _ = get_privacy_spent(orders=orders, rdp=rdp, delta=DELTA)
    assert epsilon([Stretch(1.1, 0.01, 1000)], DELTA, "rdp") == pytest.approx(reference)


def test_stretches_compose_and_rounds_accumulate() -> None:
    # two stretches of 50 steps spend what one of 100 does; more steps, rate or less noise
    # spend more
    one = epsilon([Stretch(1.1, 0.02, 100)], DELTA)
    assert epsilon([Stretch(1.1, 0.02, 50), Stretch(1.1, 0.02, 50)], DELTA) == pytest.approx(one)
    assert epsilon([Stretch(1.1, 0.02, 200)], DELTA) > one
    assert epsilon([Stretch(1.1, 0.04, 100)], DELTA) > one
    assert epsilon([Stretch(2.2, 0.02, 100)], DELTA) < one
    assert epsilon([Stretch(1.1, 0.02, 0)], DELTA) == epsilon([], DELTA) == 0.0
    rounds = epsilon_by_round(1.1, 0.02, 25, 4, DELTA)
    assert rounds == sorted(rounds) and len(set(rounds)) == 4
    assert rounds[-1] == pytest.approx(one)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
@pytest.mark.parametrize(("target", "rate", "steps"), [(1.0, 0.01, 1000), (8.0, 1.0, 20)])
def test_the_noise_for_a_target_spends_at_most_it_and_little_less(
    accountant: str, target: float, rate: float, steps: int
) -> None:
    named = accountant_named(accountant)
    sigma = noise_multiplier(target, DELTA, rate, steps, named)
    spent = epsilon([Stretch(sigma, rate, steps)], DELTA, named)
    assert spent <= target
    assert epsilon([Stretch(sigma * 0.95, rate, steps)], DELTA, named) > target * 0.98


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Stretch(0.0, 0.1, 1), "noise multiplier must be positive"),
        (lambda: Stretch(math.nan, 0.1, 1), "noise multiplier must be positive"),
        (lambda: Stretch(1.0, 0.0, 1), "sample rate must be in (0, 1]"),
        (lambda: Stretch(1.0, 1.5, 1), "sample rate must be in (0, 1]"),
        (lambda: Stretch(1.0, 0.1, -1), "steps must be >= 0"),
        (lambda: epsilon([Stretch(1.0, 0.1, 1)], 0.0), "delta must be in (0, 1)"),
        (lambda: epsilon([Stretch(1.0, 0.1, 1)], 1.0), "delta must be in (0, 1)"),
        (lambda: accountant_named("gdp"), "unknown accountant 'gdp'"),
        (lambda: noise_multiplier(0.0, DELTA, 0.1, 10), "target epsilon must be positive"),
        (lambda: noise_multiplier(math.inf, DELTA, 0.1, 10), "target epsilon must be positive"),
        (lambda: noise_multiplier(1.0, DELTA, 0.1, 0), "no steps spend no privacy"),
        (lambda: epsilon_by_round(1.0, 0.1, 1, 0, DELTA), "rounds and steps per round"),
        (lambda: gaussian_epsilon(1.0, 1, 2.0), "delta must be in (0, 1)"),
    ],
)
def test_impossible_inputs_are_one_config_error(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value)


# --------------------------------------------------------------------------- a task's policy

NODE = TaskPrivacy("node", 1.2, 0.5, 8.0, DELTA, "prv", 4)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TaskPrivacy("none", noise_multiplier=1.0), "takes no privacy settings"),
        (lambda: TaskPrivacy("example", 0.0, 1.0, 3.0, DELTA), "positive noise multiplier"),
        (lambda: TaskPrivacy("example", 1.0, -1.0, 3.0, DELTA), "positive clipping bound"),
        (lambda: TaskPrivacy("example", 1.0, 1.0, math.inf, DELTA), "positive target epsilon"),
        (lambda: TaskPrivacy("example", 1.0, 1.0, 3.0, 1.0), "delta must be in"),
        (lambda: TaskPrivacy("example", 1.0, 1.0, 3.0, DELTA, min_nodes=2), "no minimum"),
        (lambda: TaskPrivacy("node", 1.0, 1.0, 3.0, DELTA), "at least 1 node"),
        (lambda: TaskPrivacy(cast(Any, "central"), 1.0, 1.0, 3.0, DELTA), "unknown privacy mode"),
    ],
)
def test_an_impossible_policy_is_one_config_error(
    build: Callable[[], TaskPrivacy], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_node_level_rounds_spend_the_gaussian_mechanism_of_their_summed_noise_shares() -> None:
    # min_nodes updates each carry z / sqrt(4): their sum carries z, the full noise
    assert NODE.share_multiplier == pytest.approx(0.6)
    three = global_epsilon(NODE, [4, 4, 4])
    assert three == pytest.approx(gaussian_epsilon(1.2, 3, DELTA), rel=0.01)
    assert schedule_epsilon(NODE, 3) == three
    # more updates carry more noise shares and spend less; a round that kept the adapter nothing
    assert global_epsilon(NODE, [16]) == pytest.approx(gaussian_epsilon(2.4, 1, DELTA), rel=0.01)
    assert global_epsilon(NODE, [4, 0, 4, 0]) == global_epsilon(NODE, [4, 4])
    assert global_epsilon(NODE, [0]) == 0.0
    assert (publishes(NODE, 3), publishes(NODE, 4), publishes(NO_PRIVACY, 1)) == (False, True, True)
    with pytest.raises(ConfigError, match="no node-level rounds"):
        global_epsilon(TaskPrivacy("example", 1.0, 1.0, 3.0, DELTA), [1])


def test_the_clipping_allowance_holds_honest_noise_and_is_tight_at_its_tail() -> None:
    import torch

    weights = 5000
    start = {"a": torch.zeros(50, 50), "b": torch.zeros(2500)}
    change = {"a": torch.ones(50, 50), "b": torch.ones(2500)}  # norm 70.7, far past the bound
    generator = torch.Generator().manual_seed(0)
    norms = []
    for _ in range(200):
        noised = clip_and_noise(change, start, NODE, generator)
        norms.append(change_norm(noised, start))
    assert max(norms) <= clip_allowance(NODE, weights)  # but for a chance of 1e-9 each
    # at tail 0.5 the allowance is about the median norm (the clipped change adds <= 0.5)
    median = sorted(norms)[100]
    assert clip_allowance(NODE, weights, tail=0.5) == pytest.approx(median, rel=0.03)
    # the noise alone: a change of norm 0 is the share's chi distribution
    quiet = TaskPrivacy("node", 1e-6, 0.5, 8.0, DELTA, "prv", 4)
    clipped = clip_and_noise(change, start, quiet, generator)
    assert change_norm(clipped, start) == pytest.approx(0.5, rel=1e-4)
    flat = torch.cat([clipped["a"].flatten(), clipped["b"]])
    assert torch.allclose(flat, torch.full_like(flat, 0.5 / weights**0.5), rtol=1e-3)
    with pytest.raises(ConfigError, match="same tensors"):
        change_norm({"a": start["a"]}, start)
    with pytest.raises(ConfigError, match="shape"):
        change_norm({"a": torch.zeros(2), "b": start["b"]}, start)


def test_an_example_level_policy_holds_an_updates_record_to_it() -> None:
    policy = TaskPrivacy("example", 1.0, 1.0, 3.0, DELTA)
    spent = epsilon([Stretch(1.1, 0.05, 20)], DELTA)

    def record(
        noise: float = 1.1, steps: int = 20, delta: float = DELTA, **over: object
    ) -> PrivacyRecord:
        stated = epsilon([Stretch(noise, 0.05, steps)], delta)
        values: dict[str, object] = dict(
            noise_multiplier=noise,
            clip_norm=1.0,
            sample_rate=0.05,
            steps=steps,
            delta=delta,
            epsilon=stated,
        )
        values.update(over)
        return PrivacyRecord.model_validate(values)

    assert example_breach(policy, record()) is None
    assert example_breach(policy, record(clip_norm=7.0)) is None  # any bound: same epsilon
    assert example_breach(NO_PRIVACY, None) is None
    assert "without DP-SGD" in str(example_breach(policy, None))
    assert "node-level" in str(example_breach(policy, record(mode="node")))
    assert "below the task's 1" in str(example_breach(policy, record(noise=0.9)))
    assert "delta" in str(example_breach(policy, record(delta=1e-4)))
    assert "prv" in str(example_breach(policy, record(accountant="prv")))
    assert "states epsilon" in str(example_breach(policy, record(epsilon=spent / 2)))
    assert "past the task's 3" in str(example_breach(policy, record(steps=2000)))
