"""`loraledger bench round`'s measuring: the fetch + verify + aggregate pipeline against
read + sha256."""

from __future__ import annotations

import pytest

from aggregator.device import Compute
from bench.aggregate import QUICK
from bench.round import measure


def test_round_benchmark_accepts_every_update_and_reports_ratios() -> None:
    row = measure(3, QUICK, Compute(), workers=2, repeats=1)
    assert row["mb_each"] > 0 and row["baseline_mbps"] > 0 and row["pipeline_mbps"] > 0
    assert row["ratio"] == pytest.approx(row["pipeline_mbps"] / row["baseline_mbps"])
