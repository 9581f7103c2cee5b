"""Fixtures of the node tests: models and data (tests/support/models.py) and the embedded chain."""

from __future__ import annotations

from tests.support.chain import embedded, embedded_env  # noqa: F401 (chain fixtures for test_node.py)
from tests.support.models import ai_data, sample, smollm2_dir, tiny, tiny_dir  # noqa: F401
