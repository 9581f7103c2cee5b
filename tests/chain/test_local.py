"""Real Ganache and anvil processes: start, answer, keep state across restarts, stop cleanly."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from chain import local
from chain.deployments import deploy, load_deployment
from chain.network import connect, dev_account
from loraledger.errors import ChainError
from tests.support.chain import free_port


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ganache", "anvil"])
def test_chain_keeps_its_deployment_across_a_restart(kind: str, tmp_path: Path) -> None:
    port = free_port()
    process = local.start(kind, port=port, root=tmp_path)
    try:
        assert local.start(kind, root=tmp_path).pid == process.pid
        chain = connect(f"{kind}:{port}")
        deployment = deploy(chain, dev_account(chain.network, 0), root=tmp_path)
    finally:
        assert local.stop(kind, root=tmp_path)
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)
    assert local.status(kind, root=tmp_path) is None

    local.start(kind, port=port, root=tmp_path)
    try:
        again = load_deployment(connect(f"{kind}:{port}"), root=tmp_path)
        assert again.ledger == deployment.ledger
    finally:
        local.stop(kind, root=tmp_path)


@pytest.mark.slow
def test_fresh_start_forgets_state_and_the_stale_record_is_reported(tmp_path: Path) -> None:
    port = free_port()
    local.start("ganache", port=port, root=tmp_path)
    try:
        chain = connect(f"ganache:{port}")
        deploy(chain, dev_account(chain.network, 0), root=tmp_path)
    finally:
        local.stop("ganache", root=tmp_path)
    local.start("ganache", port=port, root=tmp_path, fresh=True)
    try:
        with pytest.raises(ChainError, match="the chain was reset"):
            load_deployment(connect(f"ganache:{port}"), root=tmp_path)
    finally:
        local.stop("ganache", root=tmp_path)


def test_stop_when_nothing_runs_says_so(tmp_path: Path) -> None:
    assert local.stop("anvil", root=tmp_path) is False
    assert local.status("anvil", root=tmp_path) is None


def test_start_refuses_a_port_taken_by_another_chain(tmp_path: Path) -> None:
    port = free_port()
    local.start("anvil", port=port, root=tmp_path / "a")
    try:
        with pytest.raises(ChainError, match="already answers JSON-RPC"):
            local.start("anvil", port=port, root=tmp_path / "b")
    finally:
        local.stop("anvil", root=tmp_path / "a")


def test_a_chain_of_another_home_is_found_and_stopped_by_its_port(tmp_path: Path) -> None:
    port = free_port()
    process = local.start("anvil", port=port, root=tmp_path / "a")
    try:
        found = [c for c in local.running() if c.port == port]
        assert found == [
            local.ListeningChain(
                kind="anvil",
                pid=process.pid,
                port=port,
                url=f"http://127.0.0.1:{port}",
                state_dir=str(tmp_path / "a" / "anvil"),
            )
        ]
        assert local.stop_port(port) == found[0]
    finally:
        local.stop("anvil", root=tmp_path / "a")
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)
    assert not (tmp_path / "a" / "anvil" / "process.json").exists()  # its home's record
    assert (tmp_path / "a" / "anvil" / "state.json").exists()  # its state stays
    assert local.stop_port(port) is None


def test_stop_port_leaves_any_other_program_alone() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(
            ChainError,
            match=rf"port {port} is held by python\S* \(pid {os.getpid()}\), not by Ganache",
        ):
            local.stop_port(port)
        assert port not in {c.port for c in local.running()}
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # still listening
