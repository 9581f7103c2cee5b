"""The CLI's logging levels: the tool's own debug lines at -vv, the HTTP and RPC libraries'
only at -vvv."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from scripts.console import setup_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root, urllib3 = logging.getLogger(), logging.getLogger("urllib3")
    levels, handlers = (root.level, urllib3.level), list(root.handlers)
    yield
    root.setLevel(levels[0])
    urllib3.setLevel(levels[1])
    root.handlers[:] = handlers


@pytest.mark.parametrize(
    ("verbose", "tool", "http"),
    [
        (0, logging.WARNING, logging.WARNING),
        (1, logging.INFO, logging.INFO),
        (2, logging.DEBUG, logging.INFO),
        (3, logging.DEBUG, logging.DEBUG),
    ],
)
def test_each_v_adds_a_level_and_library_debug_needs_three(
    verbose: int, tool: int, http: int
) -> None:
    setup_logging(verbose)
    assert logging.getLogger("aggregator.round").getEffectiveLevel() == tool
    assert logging.getLogger("urllib3.connectionpool").getEffectiveLevel() == http
