"""Means over seeds and their Student t confidence intervals: pure maths, no I/O.

An experiment runs once per seed; every figure it reports is the mean over the seeds with a
two-sided confidence interval ``mean +- t(1 - (1 - confidence) / 2, n - 1) * s / sqrt(n)``
(``s`` the sample standard deviation of the per-seed values). One seed gives no interval:
:attr:`Interval.available` is then false and nothing pretends otherwise.

The t quantile is scipy's (``scipy.stats.t``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import t as student_t

from loraledger.errors import ConfigError

CONFIDENCE = 0.95
"""The confidence level of every interval an experiment reports."""


def t_quantile(confidence: float, df: int) -> float:
    """The two-sided critical value: ``t`` with ``P(|T| <= t) = confidence`` at ``df``."""
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if df < 1:
        raise ConfigError(f"degrees of freedom must be positive, got {df}")
    return float(student_t.ppf(1 - (1 - confidence) / 2, df))


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` per-seed values and its confidence interval (``None`` for one seed)."""

    mean: float
    n: int
    low: float | None
    high: float | None
    confidence: float = CONFIDENCE

    @property
    def available(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def half_width(self) -> float | None:
        return None if self.high is None else self.high - self.mean

    def separated_from(self, other: Interval) -> bool | None:
        """Whether the two intervals do not overlap (``None`` when either has no interval)."""
        if self.low is None or self.high is None or other.low is None or other.high is None:
            return None
        return self.high < other.low or other.high < self.low

    def cell(self) -> str:
        """``mean +- half width`` for a table; ``mean (no CI: 1 seed)`` without an interval."""
        if self.half_width is None:
            return f"{self.mean:.4f} (no CI: 1 seed)"
        return f"{self.mean:.4f} ± {self.half_width:.4f}"

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "n": self.n,
            "ci_low": self.low,
            "ci_high": self.high,
            "confidence": self.confidence,
        }


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of per-seed ``values`` with its Student t interval (none for one value)."""
    if not values:
        raise ConfigError("an interval needs at least one value")
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"a per-seed value is not finite: {list(values)}")
    mean = statistics.fmean(values)
    n = len(values)
    if n == 1:
        return Interval(mean, 1, None, None, confidence)
    half = t_quantile(confidence, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, n, mean - half, mean + half, confidence)


def comparison(a: Interval, b: Interval, a_name: str, b_name: str) -> str:
    """Which mean is lower, and whether the intervals say so at their confidence.

    e.g. ``federated lower, intervals overlap: not significant at 95%``.
    """
    if a.mean == b.mean:
        order = f"{a_name} and {b_name} equal"
    else:
        order = f"{a_name if a.mean < b.mean else b_name} lower"
    separated = a.separated_from(b)
    level = f"{a.confidence:.0%}"
    if separated is None:
        return f"{order}, one seed: no interval, significance unknown"
    if separated:
        return f"{order}, intervals separate: significant at {level}"
    return f"{order}, intervals overlap: not significant at {level}"
