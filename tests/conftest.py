"""Suite-wide set-up: each pytest-xdist worker keeps its own LoRA Ledger state directory.

`make pytest` runs the suite on two workers (``-n 2``, one test file per worker at a time):
tests that leave ``LORALEDGER_HOME`` alone would otherwise share one deployments record, chain
state and embedded store between two processes.
"""

from __future__ import annotations

import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER") is not None:
    # an xdist worker starts with COLUMNS=80 in its environment, and rich's Console fixes its
    # width from COLUMNS when it is built (at import): tests that set COLUMNS would still get
    # output wrapped at 80 columns. Without it the width is read afresh on every print.
    os.environ.pop("COLUMNS", None)


@pytest.fixture(autouse=True, scope="session")
def _worker_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:
        os.environ["LORALEDGER_HOME"] = str(tmp_path_factory.mktemp(f"home-{worker}"))
