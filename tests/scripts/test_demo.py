"""`loraledger demo` end to end: the embedded stack with malicious nodes, and Ganache with the
real IPFS node audited afterwards from another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from chain import local
from ipfs.daemon import DaemonStatus
from scripts.cli import build_command
from tests.support.ipfs import ipfs_daemon  # noqa: F401


def _demo(*args: str) -> tuple[str, dict]:
    result = CliRunner().invoke(
        build_command(), ["demo", "--tiny", *args], catch_exceptions=False, standalone_mode=False
    )
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("--out") + 1])
    return result.output, json.loads((out / "summary.json").read_text())


def _in_another_process(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``loraledger ARGS`` run as another user would: a process of its own, this home."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LORALEDGER_HOME": str(home)},
    )


@pytest.mark.slow
def test_demo_on_the_embedded_stack_pays_honest_nodes_rejects_malicious_ones_and_audits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    output, summary = _demo(
        "--nodes",
        "3",
        "--rounds",
        "2",
        "--malicious",
        "3",
        "--steps",
        "2",
        "--out",
        str(tmp_path / "out"),
    )

    assert summary["audit_ok"] is True and "audit passed" in output
    assert [r["round"] for r in summary["rounds"]] == [1, 2]
    # round 1: the replayer has nothing to copy (updates stay hidden until all commit); the
    # mismatching node is slashed for it and cannot commit in round 2, where the replayer copies
    # a round-1 update
    cheats = [{"digest_mismatch": 1}, {"replayed_update": 1}]
    for r, cheat in zip(summary["rounds"], cheats, strict=True):
        assert (r["submitted"], r["accepted"]) == (5, 3)
        # the poisoned node's reason depends on the verification rules (norm, validation, score)
        assert r["rejected"].items() >= cheat.items() and sum(r["rejected"].values()) == 2
        assert r["global_eval_loss"] is not None and r["gas_used"] > 0
    paid = sum(int(r["paid"]) for r in summary["rounds"])
    earned = {n["kind"]: 0 for n in summary["nodes"]}
    for n in summary["nodes"]:
        earned[n["kind"]] += int(n["earned"])
    assert earned["poison"] == earned["replay"] == earned["mismatch"] == 0
    # every reward was claimed: the honest nodes' and the validators' share (the lying
    # aggregator's result paying itself was never finalized)
    parties = {p["role"]: 0 for p in summary["parties"]}
    for p in summary["parties"]:
        parties[p["role"]] += int(p["earned"])
    assert parties["aggregator"] == 0 and earned["honest"] > 0
    assert earned["honest"] + parties["validator"] == paid
    assert [n["rank"] for n in summary["nodes"] if n["kind"] == "honest"] == [4, 2, 4]
    assert len(list((tmp_path / "out" / "reports").glob("round-*.json"))) == 2
    for title in ("rounds", "nodes", "rejected (reasons)", "earned (LLT)"):
        assert title in output


@pytest.mark.slow
@pytest.mark.ganache
@pytest.mark.ipfs_daemon
def test_demo_on_ganache_and_ipfs_is_audited_by_a_second_process(
    ganache_process: local.ChainProcess,
    ipfs_daemon: DaemonStatus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LORALEDGER_HOME", str(home))
    network, ipfs = f"ganache:{ganache_process.port}", str(ipfs_daemon.api_url)
    _, summary = _demo(
        "--network",
        network,
        "--ipfs",
        ipfs,
        "--nodes",
        "2",
        "--rounds",
        "1",
        "--steps",
        "2",
        "--out",
        str(tmp_path / "out"),
    )
    assert summary["audit_ok"] is True

    task, where = str(summary["task_id"]), ["--network", network, "--ipfs", ipfs, "--json"]
    audit = _in_another_process(home, "audit", "verify", task, *where)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "true" in audit.stdout.lower()

    # a user takes the trained adapter away: checked against the chain, loaded by plain peft
    export = _in_another_process(
        home, "adapter", "export", task, "--out", str(tmp_path / "adapter"), *where
    )
    assert export.returncode == 0, export.stdout + export.stderr
    exported = json.loads(export.stdout)
    assert (exported["round"], exported["settled"], exported["num_updates"]) == (1, True, 2)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "tiny-model")
    peft_model = PeftModel.from_pretrained(base, tmp_path / "adapter")
    assert peft_model.peft_config["default"].r == exported["peft"]["rank"]


@pytest.mark.slow
def test_demo_attacks_print_what_each_attack_earned_and_lost_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(
        build_command(),
        [
            "demo",
            "--tiny",
            "--nodes",
            "2",
            "--rounds",
            "1",
            "--steps",
            "2",
            "--attack",
            "zero,copy",
            "--json",
            "--out",
            str(tmp_path / "out"),
        ],
        catch_exceptions=False,
        standalone_mode=False,
    )

    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    rows = {row["attack"]: row for row in body["attacks"]}
    assert set(rows) == {"zero", "copy"}
    assert rows["zero"]["earned"] == rows["copy"]["earned"] == "0"
    assert int(rows["copy"]["slashed"]) > 0 and rows["zero"]["slashed"] == "0"
    assert int(rows["zero"]["honest_earned"]) > 0 and body["audit_ok"] is True


def test_demo_refuses_an_unknown_attack_before_doing_anything(tmp_path: Path) -> None:
    from loraledger.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown attacks \['bribe'\]") as info:
        CliRunner().invoke(
            build_command(),
            ["demo", "--tiny", "--attack", "bribe", "--out", str(tmp_path)],
            catch_exceptions=False,
            standalone_mode=False,
        )
    assert "inflate" in (info.value.hint or "")
