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
    for function, scenario, gas in re.findall(
        r"^\| ([^|]+?) \| ([^|]*?) \| ([\d,]+) \|$", REPORT.read_text(), re.M
    ):
        rows[(function, scenario)] = int(gas.replace(",", ""))
    return rows


@pytest.mark.slow
def test_gas_report_matches_a_fresh_measurement_and_finalize_is_flat_in_n() -> None:
    measured = measure(connect("embedded"), (1, 3, 10))
    committed = _committed()
    stale = {
        (r.function, r.scenario): (committed.get((r.function, r.scenario)), r.gas)
        for r in measured
        if committed.get((r.function, r.scenario)) != r.gas
    }
    assert not stale, (
        f"docs/gas-report.md is out of date (committed, measured): {stale}; "
        "run `loraledger bench gas --write`"
    )
    finals = {
        s: g for (f, s), g in committed.items() if f == "finalizeRound" and s.startswith("N=")
    }
    assert "N=3000" in finals and "N=3" in finals
    assert abs(finals["N=3000"] - finals["N=3"]) < 200  # only the root's calldata bytes differ
    claims = sorted(
        (int(m.group(1)), g)
        for (f, s), g in committed.items()
        if f == "claim" and (m := re.search(r"proof of (\d+)", s))
    )
    assert claims[-1][0] == 12  # 3000 entries: ceil(log2 3000) hashes
    per_hash = (claims[-1][1] - claims[0][1]) / (claims[-1][0] - claims[0][0])
    assert 0 < per_hash < 1500  # a claim grows by one keccak + calldata word per doubling of N
