"""Where the tool keeps its state: ``$LORALEDGER_HOME`` (default ``~/.loraledger``)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """The state directory (deployments, chain data, embedded store, caches)."""
    return Path(os.environ.get("LORALEDGER_HOME", Path.home() / ".loraledger")).expanduser()


def node_modules() -> Path:
    """The project's npm packages (solc, OpenZeppelin, ganache, anvil)."""
    return Path(os.environ.get("LORALEDGER_NODE_MODULES", REPO_ROOT / "node_modules"))
