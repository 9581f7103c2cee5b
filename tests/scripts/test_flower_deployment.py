"""Flower's deployment engine on loopback: a SuperLink and two SuperNodes as real processes,
the app submitted with ``flwr run`` (built into a FAB from the repository's pyproject), two rounds
committed and finalized on a real anvil, an audit that passes, and no process left behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from chain.bindings import Ledger
from chain.events import History
from chain.network import connect
from scripts.flower.accounts import resolve_account
from scripts.flower.deployment import (
    Processes,
    process_env,
    run_command,
    superlink_command,
    supernode_command,
    wait_for_port,
    write_connection,
)
from scripts.flower.federation import FederationPlan, audit, free_port, prepare

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


def test_a_superlink_and_two_supernodes_on_loopback_finalize_two_audited_rounds(
    tiny_model: Path, tmp_path: Path
) -> None:
    plan = FederationPlan(
        nodes=2, rounds=2, model=str(tiny_model), work_dir=tmp_path / "run", ranks=(8, 4)
    )
    flwr_home = tmp_path / "flwr-home"
    env = process_env(flwr_home)
    with prepare(plan) as federation:
        with Processes(tmp_path / "logs") as processes:
            link = free_port()
            processes.start("superlink", superlink_command(port=link), env)
            wait_for_port("127.0.0.1", link, processes)
            for i in range(2):  # each SuperNode: its own port, account and shard
                node_config = {
                    "account": f"dev:{2 + i}",
                    "partition-id": i,
                    "num-partitions": 2,
                    "rank": (8, 4)[i],
                }
                processes.start(
                    f"supernode-{i}",
                    supernode_command(f"127.0.0.1:{link}", free_port(), node_config),
                    env,
                )
            write_connection(flwr_home, f"127.0.0.1:{link}")
            run_config = federation.run_config(
                **{"account-offset": -1, "steps": 1, "batch-size": 2, "max-length": 64}
            )
            done = subprocess.run(run_command(ROOT, run_config), env=env, capture_output=True, text=True,
                                  timeout=480, check=False)  # fmt: skip
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            processes.check_alive()  # the SuperLink and SuperNodes served the whole run
            groups = [proc.pid for _, proc, _ in processes.started]
        assert not any(_group_alive(pid) for pid in groups)  # nothing left running, detached or not

        chain = connect(federation.network)
        ledger = Ledger(chain, federation.ledger)
        history = History(ledger, federation.from_block)
        nodes = {resolve_account(f"dev:{2 + i}", chain.network).address for i in range(2)}
        finalized = history.finalized(federation.task_id)
        assert [(f.round, f.accepted, f.rejected) for f in finalized] == [(1, 2, 0), (2, 2, 0)]
        for round_ in (1, 2):
            assert {e.node for e in history.submissions(federation.task_id, round_)} == nodes
        assert "Successfully started run" in done.stdout
        checks = audit(federation)
        assert checks and all(c.ok for c in checks), [c for c in checks if not c.ok]
