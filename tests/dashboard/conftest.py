"""Fixtures of the dashboard tests: a real Ganache (the dashboard reads a live chain), and the
embedded chain for the feed's views of rare events (challenges, conflicting proposals)."""

from __future__ import annotations

from tests.support.chain import (  # noqa: F401
    embedded,
    embedded_env,
    ganache_env,
    ganache_process,
)
