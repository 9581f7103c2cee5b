"""The CLI's logging levels: the tool's own debug lines at -vv, the HTTP and RPC libraries'
only at -vvv."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from scripts.console import setup_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    loggers = [logging.getLogger(n) for n in ("", "urllib3", "bitsandbytes", "transformers")]
    levels, handlers = [x.level for x in loggers], list(logging.getLogger().handlers)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
    logging.getLogger().handlers[:] = handlers


@pytest.mark.parametrize(
    ("verbose", "tool", "http", "libraries"),
    [
        (0, logging.WARNING, logging.WARNING, logging.ERROR),
        (1, logging.INFO, logging.INFO, logging.INFO),
        (2, logging.DEBUG, logging.INFO, logging.DEBUG),
        (3, logging.DEBUG, logging.DEBUG, logging.DEBUG),
    ],
)
def test_each_v_adds_a_level_and_library_debug_needs_three(
    verbose: int, tool: int, http: int, libraries: int
) -> None:
    setup_logging(0)  # a level set by an earlier call does not stick
    setup_logging(verbose)
    assert logging.getLogger("aggregator.round").getEffectiveLevel() == tool
    assert logging.getLogger("urllib3.connectionpool").getEffectiveLevel() == http
    # bitsandbytes' warning that an optional CPU kernel is missing: shown from -v on
    assert logging.getLogger("bitsandbytes.backends.cpu.ops").getEffectiveLevel() == libraries
