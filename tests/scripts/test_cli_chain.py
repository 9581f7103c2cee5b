"""The `loraledger` command as a user runs it: chain up, deploy, tasks, chain down, and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chain.network import GANACHE_MNEMONIC, _mnemonic_key
from tests.support.chain import free_port


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LORALEDGER_HOME=str(home), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "scripts.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


@pytest.mark.slow
def test_chain_up_deploy_task_and_down_against_ganache(tmp_path: Path) -> None:
    port = str(free_port())
    network = f"ganache:{port}"
    up = run(tmp_path, "chain", "up", "--port", port)
    try:
        assert up.returncode == 0, up.stderr
        deployed = run(tmp_path, "deploy", "--network", network)
        assert deployed.returncode == 0, deployed.stderr
        assert "LoRALedger" in deployed.stdout and "recorded in" in deployed.stdout
        digest = "ab" * 32
        created = run(
            tmp_path,
            "task",
            "create",
            "--network",
            network,
            "--base-model",
            "tiny",
            "--initial-cid",
            "bafy-init",
            "--initial-digest",
            digest,
            "--fund",
            "250",
            "--max-rounds",
            "2",
        )
        assert created.returncode == 0, created.stderr
        listed = run(tmp_path, "task", "list", "--network", network, "--json")
        (task,) = json.loads(listed.stdout)
        assert (task["task_id"], task["funded"], task["max_rounds"], task["global_digest"]) == (
            1,
            str(250 * 10**18),
            2,
            digest,
        )
        unknown = run(tmp_path, "task", "show", "7", "--network", network)
        assert unknown.returncode == 1
        assert unknown.stderr.strip().splitlines()[0] == "error: LedgerUnknownTask(taskId=7)"
        assert "Traceback" not in unknown.stderr
    finally:
        down = run(tmp_path, "chain", "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    # no dev private key in anything the tool wrote or printed
    secrets = [_mnemonic_key(GANACHE_MNEMONIC, i).hex() for i in range(10)]
    written = [p.read_text(errors="ignore") for p in tmp_path.rglob("*.json")]
    written += [up.stdout, deployed.stdout, deployed.stderr, created.stdout]
    assert not any(secret in text for secret in secrets for text in written)


def test_commands_without_a_chain_or_deployment_fail_with_one_line_and_a_hint(
    tmp_path: Path,
) -> None:
    down = run(tmp_path, "deploy", "--network", f"anvil:{free_port()}")
    assert down.returncode == 1
    assert down.stderr.startswith("error: no chain answers at http://127.0.0.1:")
    assert "hint:" in down.stderr and "Traceback" not in down.stderr
    embedded = run(tmp_path, "task", "list")
    assert embedded.returncode == 1 and "lives inside one process" in embedded.stderr
    bad_network = run(tmp_path, "deploy", "--network", "mainnet")
    assert bad_network.returncode == 1 and "unknown network 'mainnet'" in bad_network.stderr
    bad_account = run(tmp_path, "deploy", "--account", "env:LORALEDGER_TEST_UNSET")
    assert bad_account.returncode == 1 and "LORALEDGER_TEST_UNSET is not set" in bad_account.stderr


def test_deploy_on_the_embedded_chain_works_and_says_it_is_ephemeral(tmp_path: Path) -> None:
    result = run(tmp_path, "deploy")
    assert result.returncode == 0, result.stderr
    assert "LoRALedger" in result.stdout and "ends with this process" in result.stdout.replace(
        "\n", " "
    )


def test_chain_status_and_down_reach_a_chain_another_home_started(tmp_path: Path) -> None:
    port = str(free_port())
    other, mine = tmp_path / "other", tmp_path / "mine"
    assert run(other, "chain", "up", "--kind", "anvil", "--port", port).returncode == 0
    try:
        status = run(mine, "chain", "status")
        assert status.returncode == 0, status.stderr
        (row,) = [line for line in status.stdout.splitlines() if f":{port}" in line]
        assert "anvil" in row and "up" in row and str(other) in row
        assert "chain down --port PORT" in status.stdout
        down = run(mine, "chain", "down", "--port", port)
        assert down.returncode == 0, down.stderr
        assert (
            f"anvil on port {port} stopped (state in {other / 'chains' / 'anvil'})" in down.stdout
        )
    finally:
        run(other, "chain", "down", "--kind", "anvil")
    after = run(other, "chain", "status")
    assert f":{port}" not in after.stdout
    again = run(mine, "chain", "down", "--port", port)
    assert again.returncode == 0 and f"nothing listens on port {port}" in again.stdout
