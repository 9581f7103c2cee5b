"""The storage interface the node, aggregator and audit use (backends: embedded, kubo)."""

from __future__ import annotations

import abc
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Final, Self

from ipfs.errors import StorageError

log = logging.getLogger(__name__)

DEFAULT_MAX_SIZE: Final = 2 * 1024**3
"""Largest content a get returns unless the caller says otherwise (2 GiB)."""


class ContentStore(abc.ABC):
    """Content-addressed storage: bytes in, CID out; CID in, verified bytes out.

    Every put returns the CID computed locally with ``ipfs.IMPORT_PARAMS`` (and checked against
    what a node says); every get checks the bytes against the CID before handing them over.
    All failures are ``StorageError`` subclasses.
    """

    location: str
    """Where the content lives, for messages (a directory or a URL)."""

    @abc.abstractmethod
    def put_bytes(self, data: bytes | bytearray | memoryview) -> str:
        """Store ``data``; return its CID."""

    @abc.abstractmethod
    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store a file's content, streamed; return its CID."""

    @abc.abstractmethod
    def get_bytes(self, cid: str, *, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
        """The content under ``cid``, verified; ``ContentTooLarge`` above ``max_size`` bytes."""

    @abc.abstractmethod
    def get_file(
        self, cid: str, dest: str | os.PathLike[str], *, max_size: int = DEFAULT_MAX_SIZE
    ) -> int:
        """Write the content under ``cid`` to ``dest`` (streamed, verified, atomic); return its
        size.

        ``dest`` only ever appears complete and verified; on any error it is left untouched.
        """

    @abc.abstractmethod
    def pin(self, cid: str) -> None:
        """Keep ``cid`` from garbage collection; ``ContentNotFound`` if it is not stored."""

    @abc.abstractmethod
    def has(self, cid: str) -> bool:
        """Whether the store holds ``cid`` locally (without asking the network)."""

    def close(self) -> None:  # noqa: B027 - a no-op default that backends may override
        """Release connections (no-op by default)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


def check_max_size(max_size: int) -> None:
    """Reject a non-positive or non-integer cap (0 is allowed: only empty content fits)."""
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
        raise StorageError(f"max_size must be a non-negative integer, got {max_size!r}")


@contextmanager
def atomic_output(dest: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A temporary file next to ``dest``, renamed over it only if the block exits cleanly."""
    path = Path(dest)
    if path.is_dir():
        raise StorageError(f"destination {path} is a directory; give a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        handle = tmp.open("xb")
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def open_source(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a file a put reads from; one ``StorageError`` naming the file if it cannot be read."""
    src = Path(path)
    try:
        return src.open("rb")
    except OSError as exc:
        raise StorageError(f"cannot read {src}: {exc.strerror or exc}") from exc
