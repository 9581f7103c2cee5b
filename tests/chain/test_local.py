"""Real Ganache and anvil processes: start, answer, keep state across restarts, stop cleanly."""

from __future__ import annotations

import os
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
