"""Starting and stopping the local js-ipfs daemon: idempotent, offline, no leftovers."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from ipfs import DaemonError, KuboStore
from ipfs.daemon import DaemonConfig, offline_config, start, status, stop
from tests.support.ipfs import free_port, kubo_config

pytestmark = [pytest.mark.ipfs_daemon, pytest.mark.slow]


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def test_up_is_idempotent_offline_and_down_leaves_no_process(tmp_path: Path) -> None:
    config = DaemonConfig(state_dir=tmp_path, api_port=free_port())
    first = start(config)
    try:
        assert first.running and first.pid and first.api_url
        assert start(config).pid == first.pid  # second `up` keeps the running daemon
        repo = json.loads((config.repo_dir / "config").read_text())
        assert repo["Bootstrap"] == [] and repo["Addresses"]["Swarm"] == []
        assert repo["Addresses"]["API"] == f"/ip4/127.0.0.1/tcp/{config.api_port}"
        peers = httpx.post(f"{first.api_url}/api/v0/swarm/peers", timeout=10)
        assert peers.json().get("Peers") in (None, [])
        with KuboStore(kubo_config(first.api_url)) as store:
            cid = store.put_bytes(b"survives a restart")
    finally:
        assert stop(config)
    assert not _group_alive(first.pid)
    assert not status(config).running
    assert not stop(config)  # nothing left to stop

    again = start(config)  # same repository: the content is still there
    try:
        with KuboStore(kubo_config(str(again.api_url))) as store:
            assert store.get_bytes(cid) == b"survives a restart"
    finally:
        stop(config)


def test_up_after_a_crash_clears_the_stale_pid_file_and_repo_lock(tmp_path: Path) -> None:
    config = DaemonConfig(state_dir=tmp_path, api_port=free_port())
    crashed = start(config)
    assert crashed.pid
    os.killpg(crashed.pid, signal.SIGKILL)
    os.waitpid(crashed.pid, 0)  # started by this process: reap it
    assert status(config).pid is None
    assert (config.repo_dir / "repo.lock").exists()  # what js-ipfs leaves behind
    restarted = start(config)
    try:
        assert restarted.running and restarted.pid != crashed.pid
    finally:
        stop(config)


def test_up_refuses_a_port_in_use_with_a_hint(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = DaemonConfig(state_dir=tmp_path, api_port=busy.getsockname()[1])
        with pytest.raises(DaemonError, match="already in use") as caught:
            start(config)
    assert caught.value.hint and "--port" in caught.value.hint


def test_up_without_the_npm_install_says_how_to_install(tmp_path: Path) -> None:
    config = DaemonConfig(state_dir=tmp_path, api_port=free_port(), npm_dir=tmp_path / "none")
    with pytest.raises(DaemonError, match="not installed") as caught:
        start(config)
    assert caught.value.hint and "loraledger ipfs install" in caught.value.hint


def test_offline_config_binds_only_the_api_on_loopback() -> None:
    addresses = offline_config(5001)["Addresses"]
    assert addresses == {
        "API": "/ip4/127.0.0.1/tcp/5001",
        "Gateway": "",
        "RPC": "",
        "Swarm": [],
        "Announce": [],
        "NoAnnounce": [],
        "Delegates": [],
    }


def test_config_rejects_a_bad_port_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DaemonError, match="got 70000"):
        DaemonConfig(state_dir=tmp_path, api_port=70000)
