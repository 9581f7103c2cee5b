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
    write_bytes_atomic(path, json.dumps(body).encode())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a synced temporary file in the same folder, renamed
    over it: a crash, a full disk or a read-only folder leaves the old file as it was (and no
    temporary file behind); those failures are one :class:`StorageError` naming the path."""
    from loraledger.errors import StorageError

    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise StorageError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint=f"free disk space or make {path.parent} writable, then run the command again "
            "(what was there before is unchanged)",
        ) from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
