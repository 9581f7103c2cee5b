"""Means over seeds and their Student t intervals, against published t quantiles."""

from __future__ import annotations

import math
import statistics

import pytest

from experiments.stats import comparison, mean_interval, t_quantile
from loraledger.errors import ConfigError

# two-sided critical values t(1 - a/2, df) from the standard t table
T_TABLE_95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    9: 2.262,
    10: 2.228,
    20: 2.086,
    30: 2.042,
    60: 2.000,
    120: 1.980,
}
T_TABLE_99 = {1: 63.657, 2: 9.925, 5: 4.032, 10: 3.169, 30: 2.750}


@pytest.mark.parametrize(("df", "expected"), sorted(T_TABLE_95.items()))
def test_t_quantile_matches_the_table_at_95_percent(df: int, expected: float) -> None:
    assert t_quantile(0.95, df) == pytest.approx(expected, abs=5e-4)


@pytest.mark.parametrize(("df", "expected"), sorted(T_TABLE_99.items()))
def test_t_quantile_matches_the_table_at_99_percent(df: int, expected: float) -> None:
    assert t_quantile(0.99, df) == pytest.approx(expected, abs=5e-4)


def test_t_distribution_reaches_the_normal_for_many_degrees_of_freedom() -> None:
    assert t_quantile(0.95, 10_001) == pytest.approx(
        statistics.NormalDist().inv_cdf(0.975), abs=1e-3
    )
    with pytest.raises(ConfigError, match="degrees of freedom"):
        t_quantile(0.95, 0)
    with pytest.raises(ConfigError, match="confidence"):
        t_quantile(1.0, 3)


def test_interval_of_three_seeds_is_mean_plus_minus_t_times_standard_error() -> None:
    interval = mean_interval([1.0, 2.0, 3.0])
    half = 4.302653 * 1.0 / math.sqrt(3)  # t(0.975, 2) x s / sqrt(n), s = 1
    assert interval.mean == 2.0 and interval.n == 3
    assert interval.low == pytest.approx(2.0 - half, abs=1e-5)
    assert interval.high == pytest.approx(2.0 + half, abs=1e-5)
    assert interval.cell() == f"2.0000 ± {half:.4f}"


def test_one_seed_gives_no_interval_and_says_so() -> None:
    interval = mean_interval([2.5])
    assert not interval.available and interval.low is None and interval.high is None
    assert interval.cell() == "2.5000 (no CI: 1 seed)"
    assert interval.separated_from(mean_interval([9.0])) is None
    assert "no interval" in comparison(interval, mean_interval([9.0]), "a", "b")
    with pytest.raises(ConfigError, match="at least one value"):
        mean_interval([])


def test_comparison_says_whether_the_intervals_separate() -> None:
    low, high = mean_interval([1.0, 1.1, 0.9]), mean_interval([2.0, 2.1, 1.9])
    assert comparison(low, high, "federated", "local") == (
        "federated lower, intervals separate: significant at 95%"
    )
    wide = mean_interval([0.5, 3.0, 2.0])
    assert comparison(high, wide, "federated", "local") == (
        "local lower, intervals overlap: not significant at 95%"
    )
