"""Shared IPFS fixtures: a real js-ipfs daemon per test session, and stores over it.

CI installs the daemon with ``npm ci`` in ``ipfs/daemon`` (see docs/storage.md); the
fixture starts it offline on a free loopback port in a temporary directory and stops it
(whole process group) at the end of the session.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipfs import EmbeddedConfig, EmbeddedStore, KuboConfig, KuboStore
from ipfs.daemon import DaemonConfig, DaemonStatus, start, stop


def free_port() -> int:
    """A TCP port nothing listens on right now (127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_DAEMON = pytest.StashKey[DaemonStatus]()


@pytest.fixture(scope="session")
def ipfs_daemon(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> DaemonStatus:
    """A running js-ipfs daemon (Kubo RPC API), one per test session.

    Several test directories import this fixture; the daemon is kept in the session's stash so
    they all share one, and it is stopped (whole process group) when the session ends.
    """
    stash = request.config.stash
    if _DAEMON not in stash:
        config = DaemonConfig(
            state_dir=tmp_path_factory.mktemp("ipfs-daemon"), api_port=free_port()
        )
        stash[_DAEMON] = start(config)
        request.config.add_cleanup(lambda: stop(config))
    return stash[_DAEMON]


def kubo_config(api_url: str) -> KuboConfig:
    """Short timeouts for tests: absent content answers within ~2 s, few retries."""
    return KuboConfig(api_url=api_url, lookup_timeout_s=2.0, retries=2, backoff_s=0.1)


@pytest.fixture
def kubo_store(ipfs_daemon: DaemonStatus) -> Iterator[KuboStore]:
    assert ipfs_daemon.api_url is not None
    with KuboStore(kubo_config(ipfs_daemon.api_url)) as store:
        yield store


@pytest.fixture
def embedded_store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(EmbeddedConfig(root=tmp_path / "store"))
