"""Fixtures of the storage tests: the same suite runs on the embedded store and a real daemon."""

from __future__ import annotations

import pytest

from ipfs import ContentStore
from tests.support.ipfs import embedded_store, ipfs_daemon, kubo_store  # noqa: F401


@pytest.fixture(params=["embedded", pytest.param("daemon", marks=pytest.mark.ipfs_daemon)])
def store(request: pytest.FixtureRequest) -> ContentStore:
    """Each backend in turn: the embedded store, then the js-ipfs daemon's RPC API."""
    name = "embedded_store" if request.param == "embedded" else "kubo_store"
    return request.getfixturevalue(name)
