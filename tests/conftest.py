"""Suite-wide set-up: each pytest-xdist worker keeps its own LoRA Ledger state directory.

`make pytest` runs the suite on two workers (``-n 2``, one test file per worker at a time):
tests that leave ``LORALEDGER_HOME`` alone would otherwise share one deployments record, chain
state and embedded store between two processes.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _worker_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:
        os.environ["LORALEDGER_HOME"] = str(tmp_path_factory.mktemp(f"home-{worker}"))
