"""``loraledger deploy`` and ``loraledger deployments`` on a real Ganache: a recorded ledger
that is still on the chain is never silently replaced, and an earlier one can be made current
again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain import local
from tests.support.cli import run_cli


def test_deploying_again_asks_for_replace_and_an_earlier_ledger_comes_back(
    ganache_process: local.ChainProcess,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    network = f"ganache:{ganache_process.port}"

    def listed() -> list[dict]:
        code, out, err = run_cli(capsys, "deployments", "list", "--network", network, "--json")
        assert code == 0, err
        return json.loads(out)["deployments"]

    code, out, err = run_cli(capsys, "deploy", "--network", network, "--dev-tokens", "0")
    assert code == 0, err
    (first,) = listed()
    assert first["current"] and first["on_chain"] and first["tasks"] == 0
    # with a deployment recorded, the dev accounts show their LedgerToken too
    code, out, err = run_cli(capsys, "chain", "accounts", "--network", network)
    assert code == 0, err
    dev0 = next(line for line in out.splitlines() if "dev:0 " in line)
    assert "LLT" in out and dev0.split()[-1] == "1,000,000,000"  # whole tokens, grouped
    # dev:0 paid gas for the deployment: its ether is cut to 6 decimals, marked, or exact
    ether = dev0.split()[-2]
    assert ether.endswith("…") and len(ether.split(".")[1]) == 7
    code, out, err = run_cli(capsys, "--exact-amounts", "chain", "accounts", "--network", network)
    assert code == 0, err
    exact = next(line for line in out.splitlines() if "dev:0 " in line).split()[-2]
    assert exact.startswith(ether.removesuffix("…")) and len(exact) > len(ether)

    code, out, err = run_cli(capsys, "deploy", "--network", network, "--dev-tokens", "0")
    assert code == 1 and out == ""
    assert f"already has a recorded deployment: LoRALedger at {first['ledger']}" in " ".join(
        err.split()
    )
    assert "--replace" in err and "Traceback" not in err
    assert [d["ledger"] for d in listed()] == [first["ledger"]]

    code, out, err = run_cli(
        capsys, "deploy", "--network", network, "--dev-tokens", "0", "--replace"
    )
    assert code == 0, err
    assert f"the earlier deployment (LoRALedger {first['ledger']}) stays" in " ".join(out.split())
    earlier, second = listed()
    assert (earlier["ledger"], earlier["current"], second["current"]) == (
        first["ledger"],
        False,
        True,
    )

    code, out, err = run_cli(capsys, "deployments", "use", first["ledger"], "--network", network)
    assert code == 0, err
    assert [d["current"] for d in listed()] == [True, False]
    code, out, _ = run_cli(capsys, "deployments", "list", "--network", network)
    assert first["ledger"] in out and second["ledger"] in out and "current" in out

    code, _, err = run_cli(capsys, "deployments", "use", "0x" + "ab" * 20, "--network", network)
    assert code == 1 and "no deployment of LoRALedger at 0x" in err
    # the hint's command pastes as-is: it carries this command line's --network
    assert f"`loraledger deployments list --network {network}`" in " ".join(err.split())
