"""Flower's deployment engine on loopback, through the CLI a user runs on each machine:
``loraledger flower certs`` makes a CA, the SuperLink's certificate and SuperNode keys;
``loraledger flower superlink`` runs a TLS SuperLink with SuperNode authentication;
``loraledger flower register`` allows two SuperNodes' keys; two ``loraledger flower supernode``
processes connect (a third, unregistered one is turned away); the task's validator runs as its
own party (``loraledger validator run``); ``loraledger flower run`` submits the app (a FAB built
from the repository's pyproject). Two rounds are committed, signed by the validator, finalized
and settled on a real anvil, the audit passes, and no process is left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chain.bindings import Ledger
from chain.events import History
from chain.network import connect
from flower_app.accounts import resolve_account
from flower_app.deployment import Processes, process_env, wait_for_port
from flower_app.federation import FederationPlan, audit, free_port, prepare

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama on disk (through ``from_pretrained`` in every node), built once per module."""
    from fl_node.data import sample_examples
    from fl_node.model import create_tiny_model

    corpus = [m.content for e in sample_examples() for m in e.messages]
    return create_tiny_model(tmp_path_factory.mktemp("tiny") / "model", corpus)


ROOT = Path(__file__).resolve().parents[2]


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _cli(*args: str, group: str = "flower") -> list[str]:
    return [sys.executable, "-m", "scripts.cli", group, *args]


def test_a_tls_superlink_and_two_authenticated_supernodes_finalize_two_audited_rounds(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "LORALEDGER_HOME", str(tmp_path / "home")
    )  # where `run` finds the deployment
    env = process_env(None, {"COLUMNS": "200"})
    plan = FederationPlan(
        nodes=2,
        rounds=2,
        model=str(tiny_model),
        work_dir=tmp_path / "run",
        ranks=(8, 4),
        save_deployment=True,
    )
    federation = prepare(plan)
    certs = tmp_path / "certs"
    made = subprocess.run(
        _cli("certs", "--out", str(certs), "--node-keys", "node-0,node-1,intruder"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert "--ssl-certfile" in made.stdout and "flower register" in made.stdout
    ca = str(certs / "ca.crt")
    with federation, Processes(tmp_path / "logs") as processes:
        link = free_port()
        processes.start(
            "superlink",
            _cli(
                "superlink",
                "--host",
                "127.0.0.1",
                "--port",
                str(link),
                "--ssl-ca-certfile",
                ca,
                "--ssl-certfile",
                str(certs / "server.pem"),
                "--ssl-keyfile",
                str(certs / "server.key"),
                "--enable-supernode-auth",
            ),
            env,
        )
        wait_for_port("127.0.0.1", link, processes)
        address = f"127.0.0.1:{link}"
        for i in range(2):
            registered = subprocess.run(
                _cli(
                    "register",
                    str(certs / "nodes" / f"node-{i}.pub"),
                    "--superlink",
                    address,
                    "--root-certificates",
                    ca,
                ),
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert registered.returncode == 0, registered.stdout + registered.stderr
            assert "registered successfully" in registered.stdout
        for i in range(2):  # each SuperNode: its own port, account, shard, rank and key
            processes.start(
                f"supernode-{i}",
                _cli(
                    "supernode",
                    "--superlink",
                    address,
                    "--account",
                    f"dev:{2 + i}",
                    "--partition",
                    str(i),
                    "--partitions",
                    "2",
                    "--rank",
                    str((8, 4)[i]),
                    "--port",
                    str(free_port()),
                    "--root-certificates",
                    ca,
                    "--auth-supernode-private-key",
                    str(certs / "nodes" / f"node-{i}"),
                    "--network",
                    federation.network,
                    "--ipfs",
                    federation.ipfs,
                ),
                env,
            )
        with Processes(tmp_path / "logs") as refused:  # an unregistered key is turned away
            intruder = refused.start(
                "intruder",
                _cli(
                    "supernode",
                    "--superlink",
                    address,
                    "--account",
                    "dev:9",
                    "--port",
                    str(free_port()),
                    "--root-certificates",
                    ca,
                    "--auth-supernode-private-key",
                    str(certs / "nodes" / "intruder"),
                ),
                env,
            )
            assert intruder.wait(timeout=120) != 0
            assert "Failed to activate SuperNode" in refused.tail("intruder", 4000)

        with Processes(tmp_path / "logs") as validating:  # the task's validator: its own party
            validator = validating.start(
                "validator",
                _cli(
                    "run",
                    "--task",
                    str(federation.task_id),
                    "--network",
                    federation.network,
                    "--ipfs",
                    federation.ipfs,
                    "--account",
                    federation.validator_account,
                    "--strategy",
                    "fedavg",
                    "--rounds",
                    "2",
                    "--poll",
                    "0.5",
                    group="validator",
                ),
                env,
            )
            done = subprocess.run(
                _cli(
                    "run",
                    "--superlink",
                    address,
                    "--root-certificates",
                    ca,
                    "--task",
                    str(federation.task_id),
                    "--rounds",
                    "2",
                    "--network",
                    federation.network,
                    "--ipfs",
                    federation.ipfs,
                    "--account",
                    "dev:1",
                    "--min-nodes",
                    "2",
                    "--model",
                    str(tiny_model),
                    "--steps",
                    "1",
                    "--batch-size",
                    "2",
                    "--max-length",
                    "64",
                ),
                env=env,
                capture_output=True,
                text=True,
                timeout=480,
                check=False,
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            # it signed both rounds, then stopped by itself
            assert validator.wait(timeout=120) == 0, validating.tail("validator", 3000)
        processes.check_alive()  # the SuperLink and SuperNodes served the whole run
        assert f"running on https://127.0.0.1:{link}" in processes.tail(
            "superlink", 10**6
        )  # TLS, not --insecure
        groups = [proc.pid for _, proc, _ in processes.started]
        processes.stop()
        assert not any(_group_alive(pid) for pid in groups)  # nothing left running, detached or not

        chain = connect(federation.network)
        ledger = Ledger(chain, federation.ledger)
        history = History(ledger, federation.from_block)
        nodes = {resolve_account(f"dev:{2 + i}", chain.network).address for i in range(2)}
        finalized = history.finalized(federation.task_id)
        assert [(f.round, f.accepted, f.rejected) for f in finalized] == [(1, 2, 0), (2, 2, 0)]
        assert ledger.is_complete(federation.task_id)  # both rounds settled
        for round_ in (1, 2):
            assert {e.node for e in history.submissions(federation.task_id, round_)} == nodes
        assert "Successfully started run" in done.stdout
        checks = audit(federation)
        assert checks and all(c.ok for c in checks), [c for c in checks if not c.ok]
