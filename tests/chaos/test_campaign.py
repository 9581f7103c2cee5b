"""Fault campaigns on real processes (``loraledger chaos``): the short, seeded versions CI runs,
one per chain, and the checks that decide a campaign's verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaos.campaign import (
    CampaignConfig,
    CampaignResult,
    Fault,
    RoundOutcome,
    RunResult,
    run_campaign,
)
from chaos.report import render_markdown, write_report
from loraledger.errors import ConfigError
from tests.support.cli import run_cli

NODES = 2
ROUNDS = 2


def _round(r: int, **changes: object) -> RoundOutcome:
    values: dict[str, Any] = dict(
        round=r,
        finalizations=1,
        global_digest="aa" * 32,
        accepted=2,
        rejected=0,
        reward_root="bb" * 32,
        reward_total=100,
        committed=2,
        revealed=2,
        reported=2,
        finalized_after_s=10.0 * r,
    )
    values.update(changes)
    return RoundOutcome(**values)


def _run(label: str = "chaos", **changes: object) -> RunResult:
    values: dict[str, Any] = dict(
        label=label,
        chain="ganache",
        ipfs="embedded",
        faults=[Fault(3.0, "node-kill", "node-0", "killed at: training", 0.4, 5.0)],
        rpc_faults={},
        rounds=[_round(1), _round(2)],
        rewards={"0xA": 60, "0xB": 140},
        paid={"0xA": 60, "0xB": 140},
        double_payments=0,
        updates_lost=0,
        unexpected_exits=[],
        tracebacks=[],
        audit_ok=True,
        audit_tail="",
        wall_s=30.0,
        complete=True,
    )
    values.update(changes)
    return RunResult(**values)


def _config(tmp_path: Path) -> dict[str, object]:
    return json.loads(CampaignConfig(workdir=tmp_path).model_dump_json())


def test_a_clean_campaign_passes_and_every_broken_invariant_is_named(tmp_path: Path) -> None:
    clean = CampaignResult(_config(tmp_path), "loraledger chaos", _run(), _run("baseline"))
    assert clean.ok and clean.problems() == []
    assert "Verdict: **passed**" in render_markdown(clean)

    broken = _run(
        rounds=[_round(1, finalizations=2), _round(2, finalizations=0)],
        updates_lost=1,
        double_payments=1,
        paid={"0xA": 120, "0xB": 140},
        unexpected_exits=["node-1 (exit 1)"],
        tracebacks=["aggregator"],
        audit_ok=False,
        complete=False,
    )
    result = CampaignResult(
        _config(tmp_path), "loraledger chaos", broken, _run("baseline"), ["round 2 differs"]
    )
    problems = "\n".join(result.problems())
    for expected in (
        "did not complete",
        "round 1 finalized 2 times",
        "round 2 finalized 0 times",
        "1 updates lost",
        "1 double payments",
        "0xA was granted 60 and paid 120",
        "node-1 (exit 1) exited on its own",
        "a traceback in aggregator's log",
        "audit verify failed",
        "round 2 differs",
    ):
        assert expected in problems
    markdown, data = write_report(result, tmp_path / "report")
    assert "Verdict: **FAILED**" in markdown.read_text()
    assert json.loads(data.read_text())["ok"] is False


def test_impossible_campaigns_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reorg needs --chain anvil"):
        CampaignConfig(workdir=tmp_path, faults=("reorg",))
    with pytest.raises(ConfigError, match="ipfs-restart needs --ipfs daemon"):
        CampaignConfig(workdir=tmp_path, faults=("ipfs-restart",))
    with pytest.raises(ConfigError, match="nodes must be between"):
        CampaignConfig(workdir=tmp_path, nodes=0)
    with pytest.raises(ConfigError, match="gap between faults"):
        CampaignConfig(workdir=tmp_path, gap_s=(5.0, 1.0))
    assert CampaignConfig(workdir=tmp_path).kinds == (
        "aggregator-kill",
        "node-kill",
        "claim-race",
        "chain-restart",
        "claim-kill",
    )
    assert "reorg" in CampaignConfig(workdir=tmp_path, chain="anvil").kinds


def test_the_command_refuses_unknown_faults(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "chaos", "--faults", "node-kill,meteor")
    assert code == 2 and "unknown fault meteor" in err
    code, _, err = run_cli(capsys, "chaos", "--chain", "ganache", "--faults", "reorg")
    assert code == 1 and "reorg needs --chain anvil" in err


def _check(result: CampaignResult, kinds: set[str]) -> None:
    assert result.ok, result.problems()
    chaos = result.chaos
    injected = {f.kind for f in chaos.faults}
    assert kinds <= injected, injected
    assert sum(f.kind == "claim-kill" for f in chaos.faults) == NODES
    assert len(chaos.rounds) == ROUNDS
    for outcome in chaos.rounds:
        assert (outcome.committed, outcome.revealed, outcome.reported) == (NODES, NODES, NODES)
    assert len(chaos.rewards) == NODES and all(v > 0 for v in chaos.rewards.values())
    assert chaos.paid == chaos.rewards
    assert any(f.recovery_s is not None for f in chaos.faults)
    assert result.baseline is not None and result.baseline.faults == []
    assert [r.result() for r in chaos.rounds] == [r.result() for r in result.baseline.rounds]


@pytest.mark.slow
@pytest.mark.ganache
@pytest.mark.ipfs_daemon
def test_a_campaign_on_ganache_with_the_ipfs_daemon_and_a_flaky_rpc(tmp_path: Path) -> None:
    """Kills of the aggregator, nodes and claims, a claim racing a node's run for its account,
    the js-ipfs daemon and Ganache killed and restarted, 5% of JSON-RPC requests spoiled:
    everything holds and matches the uninterrupted run."""
    config = CampaignConfig(
        chain="ganache",
        ipfs="daemon",
        nodes=NODES,
        rounds=ROUNDS,
        seed=3,
        gap_s=(2.5, 5.0),
        rpc_fault_rate=0.05,
        max_faults=10,  # then quiet: the task must complete (liveness, not a livelock race)
        timeout_s=900,
        workdir=tmp_path,
    )
    result = run_campaign(config, command="test", say=lambda _: None)
    _check(result, {"aggregator-kill", "node-kill", "claim-race", "ipfs-restart", "chain-restart"})
    assert sum(result.chaos.rpc_faults.values()) > 0


@pytest.mark.slow
def test_a_campaign_on_anvil_with_reorganisations(tmp_path: Path) -> None:
    """Reorganisations that drop mined transactions, anvil restarted from its saved state,
    the aggregator and nodes killed, every process waiting for 2 confirmations: everything
    holds and matches the uninterrupted run."""
    config = CampaignConfig(
        chain="anvil",
        nodes=NODES,
        rounds=ROUNDS,
        seed=5,
        faults=("reorg", "aggregator-kill", "node-kill", "chain-restart", "claim-kill"),
        confirmations=2,
        gap_s=(3.0, 6.0),
        max_faults=10,  # then quiet: the task must complete (liveness, not a livelock race)
        timeout_s=900,
        workdir=tmp_path,
    )
    result = run_campaign(config, command="test", say=lambda _: None)
    _check(result, {"reorg", "aggregator-kill", "node-kill", "chain-restart"})
    assert "reorganised away" in " ".join(f.detail for f in result.chaos.faults)
