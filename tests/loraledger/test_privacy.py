"""The privacy accountant against exact references: the full-batch Gaussian mechanism's exact
(epsilon, delta) and Opacus's own RDP analysis; and every impossible input as one clear error."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from loraledger.errors import ConfigError
from loraledger.privacy import (
    Stretch,
    accountant_named,
    epsilon,
    epsilon_by_round,
    gaussian_epsilon,
    noise_multiplier,
)

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
