"""Fixtures of the dashboard tests: a real Ganache (the dashboard reads a live chain)."""

from __future__ import annotations

from tests.support.chain import ganache_env, ganache_process  # noqa: F401
