"""The committed gas report is current, and finalizing costs the same for any number of nodes:
its gas grows with the validators' signatures only."""

from __future__ import annotations

import itertools
import re

import pytest

from chain.gas import measure
from chain.network import connect
from loraledger.paths import REPO_ROOT
from tests.support.chain import fast_gas_estimates

REPORT = REPO_ROOT / "docs" / "gas-report.md"


def _committed() -> dict[tuple[str, str], int]:
    """The rows of the report's main table (function, scenario, gas)."""
    main = REPORT.read_text().split("\n\n### ", 1)[0]
    rows = {}
    for function, scenario, gas in re.findall(
        r"^\| ([^|]+?) \| ([^|]*?) \| ([\d,]+) \|$", main, re.M
    ):
        rows[(function, scenario)] = int(gas.replace(",", ""))
    return rows


@pytest.mark.slow
def test_gas_report_matches_a_fresh_measurement_and_finalize_is_flat_in_n() -> None:
    chain = connect("embedded")
    fast_gas_estimates(chain)  # estimates only bound the gas a transaction may use
    measured = measure(chain, (1, 3, 10), validator_counts=(1, 3, 7), finalize_nodes=(1,))
    committed = _committed()
    # a signature's bytes depend on the chain id and the contract's address, so calldata with
    # signatures costs a few gas more or less on another chain (4 gas a zero byte, 16 another)
    signed = {"attest", "finalizeRound", "proposeResult + k attest"}
    stale = {
        (r.function, r.scenario): (committed.get((r.function, r.scenario)), r.gas)
        for r in measured
        if (committed_gas := committed.get((r.function, r.scenario))) is None
        or abs(committed_gas - r.gas) > (12 * 8 if r.function in signed else 0)
    }
    assert not stale, (
        f"docs/gas-report.md is out of date (committed, measured): {stale}; "
        "run `loraledger bench gas --sizes 1,3,10,100,1000,3000 --network anvil --write "
        "docs/gas-report.md`"
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


def test_finalization_gas_is_flat_in_nodes_and_grows_with_signatures() -> None:
    committed = _committed()
    for function in ("finalizeRound", "proposeResult + k attest"):
        grid = {
            tuple(int(x) for x in re.findall(r"\d+", s)): g
            for (f, s), g in committed.items()
            if f == function and s.startswith("k=")
        }
        assert set(grid) == {(k, n) for k in (1, 3, 5, 7) for n in (1, 100, 1000)}
        for k in (1, 3, 5, 7):
            by_nodes = [grid[(k, n)] for n in (1, 100, 1000)]
            assert max(by_nodes) - min(by_nodes) < 300, (function, k, by_nodes)
        by_signatures = [grid[(k, 1)] for k in (1, 3, 5, 7)]
        assert by_signatures == sorted(by_signatures)
        # two signatures more per step: one ecrecover and a bit each (plus, for attest, a
        # transaction of its own)
        steps = [(b - a) / 2 for a, b in itertools.pairwise(by_signatures)]
        assert all(5_000 < step < 120_000 for step in steps), (function, steps)
