"""Where the tool keeps its state: ``$LORALEDGER_HOME`` (default ``~/.loraledger``)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """The state directory (deployments, chain data, embedded store, caches)."""
    return Path(os.environ.get("LORALEDGER_HOME", Path.home() / ".loraledger")).expanduser()


def node_modules() -> Path:
    """The project's npm packages (solc, OpenZeppelin, ganache, anvil)."""
    return Path(os.environ.get("LORALEDGER_NODE_MODULES", REPO_ROOT / "node_modules"))


def write_json_atomic(path: Path, body: Any) -> None:
    """Write ``body`` as JSON so that a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as handle:
        json.dump(body, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
