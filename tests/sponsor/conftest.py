"""Fixtures of the sponsor tests: the embedded chain and the tiny model (tests/support)."""

from __future__ import annotations

from tests.support.chain import embedded, embedded_env  # noqa: F401
from tests.support.models import sample, tiny, tiny_dir  # noqa: F401
