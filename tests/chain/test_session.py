"""One session for every role and entry point: network + recorded deployment (or an explicit
ledger) + store + account, opened once; read-only sessions refuse to sign."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain import local
from chain.deployments import deploy
from chain.network import connect, dev_account
from chain.session import open_session
from ipfs import EmbeddedStore
from loraledger.errors import ChainError, ConfigError


@pytest.mark.ganache
def test_open_session_finds_the_recorded_deployment_loads_the_account_and_keeps_state_per_role(
    ganache_process: local.ChainProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path / "home"))
    network = f"ganache:{ganache_process.port}"
    chain = connect(network)
    deployment = deploy(
        chain, dev_account(chain.network, 0), aggregator=dev_account(chain.network, 1).address
    )

    node = open_session(network, account="dev:2", ipfs=f"embedded:{tmp_path / 'store'}")
    assert node.ledger.address == deployment.ledger and node.history.from_block == deployment.block
    assert node.address == dev_account(chain.network, 2).address
    assert isinstance(node.store, EmbeddedStore) and node.store.location == str(tmp_path / "store")
    assert node.state_dir("nodes", 3) == (
        tmp_path / "home" / "nodes" / "1337" / deployment.ledger / node.address / "task-3"
    )
    assert node.state_dir("aggregator", 3) == (
        tmp_path / "home" / "aggregator" / "1337" / deployment.ledger / "task-3"
    )

    reader = open_session(
        network, ledger=deployment.ledger, from_block=5, state_root=tmp_path / "s"
    )
    assert reader.account is None and reader.history.from_block == 5
    with pytest.raises(ConfigError, match="no account to sign with"):
        _ = reader.signer
    assert reader.state_root == tmp_path / "s"

    # an address alone: a read-only session that looks at that account (its status), never signs
    someone = dev_account(chain.network, 7).address
    watcher = open_session(network, account=someone.lower(), ledger=deployment.ledger)
    assert (watcher.account, watcher.address) == (None, someone)
    with pytest.raises(ConfigError, match="without its key: it can be looked at, not sign"):
        _ = watcher.signer


def test_open_session_without_a_deployment_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path))
    with pytest.raises(ChainError, match="lives inside one process"):
        open_session("embedded", account="dev:0")
