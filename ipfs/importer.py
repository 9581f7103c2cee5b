"""Local CID computation with the import parameters every node in the project uses.

``cid-version=1``, ``raw-leaves=true``, ``chunker=size-262144``, balanced layout with at most
174 links per node, sha2-256: the CID Kubo and js-ipfs return for ``ipfs add`` with these
options. The builder is streaming (bytes in any pieces, constant memory besides one
32-byte digest per chunk) and can hash chunks on a thread pool (hashlib releases the GIL).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ipfs.cid import DAG_PB, RAW, Cid
from ipfs.errors import ContentMismatch, StorageError
from ipfs.unixfs import UNIXFS_FILE, UNIXFS_RAW, Link, decode_file_node, encode_file_node

CHUNK_SIZE: Final = 262_144
MAX_LINKS: Final = 174
_PARALLEL_MIN_CHUNKS: Final = 8
_READ_WINDOW: Final = 32 * CHUNK_SIZE


@dataclass(frozen=True)
class ImportParams:
    """The ``ipfs add`` options that fix a CID, as Kubo RPC query parameters."""

    cid_version: int = 1
    raw_leaves: bool = True
    chunk_size: int = CHUNK_SIZE
    layout: str = "balanced"
    hash: str = "sha2-256"

    def as_query(self) -> dict[str, str]:
        return {
            "cid-version": str(self.cid_version),
            "raw-leaves": "true" if self.raw_leaves else "false",
            "chunker": f"size-{self.chunk_size}",
            "trickle": "false" if self.layout == "balanced" else "true",
            "hash": self.hash,
            "cid-base": "base32",
        }


IMPORT_PARAMS: Final = ImportParams()


def _digest(chunk: memoryview) -> bytes:
    return hashlib.sha256(chunk).digest()


def _digest_run(view: memoryview, starts: Sequence[int]) -> list[bytes]:
    return [hashlib.sha256(view[s : s + CHUNK_SIZE]).digest() for s in starts]


class DagBuilder:
    """Builds the UnixFS DAG of a byte stream and returns its root CID.

    ``update`` takes pieces of any size; ``finish`` returns the root. With ``pool`` set, runs of
    full chunks are hashed on that executor (the caller owns it).
    """

    def __init__(self, pool: Executor | None = None, workers: int = 1) -> None:
        self._pool = pool
        self._workers = max(1, workers)
        self._buf = bytearray()
        self._leaves: list[Link] = []
        self._size = 0
        self._finished = False

    @property
    def size(self) -> int:
        """Bytes absorbed so far."""
        return self._size

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Absorb the next piece of the content."""
        if self._finished:
            raise StorageError("DagBuilder.update called after finish")
        view = memoryview(data).cast("B")
        self._size += len(view)
        pos = 0
        if self._buf:
            take = min(CHUNK_SIZE - len(self._buf), len(view))
            self._buf += view[:take]
            pos = take
            if len(self._buf) == CHUNK_SIZE:
                self._add_leaf(_digest(memoryview(self._buf)), CHUNK_SIZE)
                self._buf.clear()
        full = (len(view) - pos) // CHUNK_SIZE
        if full:
            starts = range(pos, pos + full * CHUNK_SIZE, CHUNK_SIZE)
            for digest in self._digests(view, starts):
                self._add_leaf(digest, CHUNK_SIZE)
            pos += full * CHUNK_SIZE
        if pos < len(view):
            self._buf += view[pos:]

    def _digests(self, view: memoryview, starts: range) -> list[bytes]:
        if self._pool is None or self._workers == 1 or len(starts) < _PARALLEL_MIN_CHUNKS:
            return _digest_run(view, starts)
        per = -(-len(starts) // self._workers)
        futures = [
            self._pool.submit(_digest_run, view, starts[i : i + per])
            for i in range(0, len(starts), per)
        ]
        return [digest for future in futures for digest in future.result()]

    def _add_leaf(self, digest: bytes, size: int) -> None:
        self._leaves.append(Link(Cid(RAW, digest), size, size))

    def finish(self) -> Cid:
        """Flush the last chunk and build the tree; returns the root CID."""
        if self._finished:
            raise StorageError("DagBuilder.finish called twice")
        self._finished = True
        if self._buf or not self._leaves:  # empty content is one empty raw leaf
            self._add_leaf(_digest(memoryview(self._buf)), len(self._buf))
            self._buf.clear()
        layer = self._leaves
        if len(layer) == 1:
            return layer[0].cid
        while len(layer) > 1:
            layer = [_node(layer[i : i + MAX_LINKS]) for i in range(0, len(layer), MAX_LINKS)]
        return layer[0].cid


def _node(children: Sequence[Link]) -> Link:
    block = encode_file_node(children)
    return Link(
        Cid.of_block(DAG_PB, block),
        len(block) + sum(child.tsize for child in children),
        sum(child.filesize for child in children),
    )


def compute_cid(content: bytes | bytearray | memoryview | str | os.PathLike[str]) -> str:
    """The CID of ``content`` (bytes, or a path read in a stream) under ``IMPORT_PARAMS``."""
    builder = DagBuilder()
    if isinstance(content, (bytes, bytearray, memoryview)):
        builder.update(content)
        return str(builder.finish())
    path = Path(content)
    try:
        with path.open("rb") as handle:
            buf = bytearray(_READ_WINDOW)
            view = memoryview(buf)
            while n := handle.readinto(buf):
                builder.update(view[:n])
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return str(builder.finish())


def declared_size(cid: Cid, block: bytes) -> int:
    """Content size a verified root block declares (raw: its length; dag-pb: UnixFS filesize)."""
    if cid.codec == RAW:
        return len(block)
    node = decode_file_node(block)
    if node.kind not in (UNIXFS_FILE, UNIXFS_RAW):
        raise ContentMismatch(f"{cid} is not a UnixFS file (UnixFS type {node.kind})")
    return len(node.data) if node.filesize is None else node.filesize
