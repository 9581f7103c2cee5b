"""Fixtures of the benchmark tests: the js-ipfs daemon for the storage rows."""

from __future__ import annotations

from tests.support.ipfs import ipfs_daemon  # noqa: F401
