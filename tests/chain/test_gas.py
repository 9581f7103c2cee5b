"""The committed gas report is current, and finalizing costs the same for any number of nodes."""

from __future__ import annotations

import re

import pytest

from chain.gas import measure
from chain.network import connect
from loraledger.paths import REPO_ROOT

REPORT = REPO_ROOT / "docs" / "gas-report.md"


def _committed() -> dict[tuple[str, str], int]:
    rows = {}
    for function, scenario, gas in re.findall(r"^\| ([^|]+?) \| ([^|]*?) \| ([\d,]+) \|$", REPORT.read_text(), re.M):
        rows[(function, scenario)] = int(gas.replace(",", ""))
    return rows


@pytest.mark.slow
def test_gas_report_matches_a_fresh_measurement_and_finalize_is_flat_in_n() -> None:
    measured = measure(connect("embedded"), (1, 3, 10))
    committed = _committed()
    stale = {(r.function, r.scenario): (committed.get((r.function, r.scenario)), r.gas) for r in measured
             if committed.get((r.function, r.scenario)) != r.gas}  # fmt: skip
    assert not stale, f"docs/gas-report.md is out of date (committed, measured): {stale}; run `loraledger bench gas --write`"
    finals = {s: g for (f, s), g in committed.items() if f == "finalizeRound" and s.endswith("nodes")}
    assert "3000 nodes" in finals and "3 nodes" in finals
    assert abs(finals["3000 nodes"] - finals["3 nodes"]) < 200  # only the root's calldata bytes differ
    claims = {s: g for (f, s), g in committed.items() if f == "claim" and "entry table (proof" in s}
    assert max(claims.values()) - min(claims.values()) < 12 * 1000  # grows by one hash per doubling
