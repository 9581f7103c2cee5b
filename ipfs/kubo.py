"""A store backed by an IPFS node's Kubo RPC API (Kubo, or the js-ipfs daemon ``ipfs up`` starts).

Plain HTTP POSTs to ``/api/v0/...`` with httpx. Every add sends the project's import
parameters explicitly and its CID is compared with the one computed locally from the same
bytes as they are uploaded; every read fetches the root block first (verified; it gives the
size, so oversized content is refused before the transfer) and then streams the content,
recomputing the CID as it arrives. Transport failures are retried a bounded number of times
with exponential backoff; a node that answers with other bytes is an error at once.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, ClassVar, Final, TypeVar, cast
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationInfo, field_validator

from ipfs.cid import RAW, Cid, parse_cid
from ipfs.errors import (
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    InvalidStoreSpec,
    StorageError,
    StorageUnavailable,
)
from ipfs.importer import IMPORT_PARAMS, DagBuilder, declared_size
from ipfs.store import DEFAULT_MAX_SIZE, ContentStore, atomic_output, check_max_size, open_source
from loraledger.errors import LoRALedgerError
from loraledger.settings import Settings

log = logging.getLogger(__name__)

_MAX_ROOT_BLOCK: Final = 2 * 1024 * 1024  # a root is a <=256 KiB leaf or a few-KiB node
_UPLOAD_READ: Final = 1024 * 1024
_NOT_FOUND_MARKERS: Final = (
    "timed out",
    "timeout",
    "deadline exceeded",
    "not found",
    "could not find",
)
_RETRYABLE_STATUS: Final = (502, 503, 504)
T = TypeVar("T")


class KuboConfig(Settings):
    """How to reach a Kubo RPC API and how long to wait for it.

    ``timeout_s``: longest silence on a connection; ``lookup_timeout_s``: how long the node may
    search for a CID before answering "not found"; ``has_timeout_s`` the same for ``has``;
    ``retries``: extra attempts after a transport failure, ``backoff_s`` doubling between them.
    A bad value raises :class:`~ipfs.errors.InvalidStoreSpec` (a storage error, as every
    failure of this layer).
    """

    error_type: ClassVar[type[LoRALedgerError]] = InvalidStoreSpec

    api_url: str
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    lookup_timeout_s: float = 10.0
    has_timeout_s: float = 1.0
    retries: int = 4
    backoff_s: float = 0.5

    @field_validator("api_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"IPFS API URL must look like http://host:5001, got {value!r}")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(
                f"give the API's base URL without a path, e.g. http://{parts.netloc}, got {value!r}"
            )
        return value

    @field_validator("timeout_s", "connect_timeout_s", "lookup_timeout_s", "has_timeout_s")
    @classmethod
    def _positive(cls, value: float, info: ValidationInfo) -> float:
        if not value > 0:
            raise ValueError(f"{info.field_name} must be positive, got {value!r}")
        return value

    @field_validator("retries")
    @classmethod
    def _bounded_retries(cls, value: int) -> int:
        if not 0 <= value <= 10:
            raise ValueError(f"retries must be between 0 and 10, got {value!r}")
        return value

    @field_validator("backoff_s")
    @classmethod
    def _backoff_not_negative(cls, value: float) -> float:
        if not value >= 0:
            raise ValueError(f"backoff_s must not be negative, got {value!r}")
        return value

    @property
    def base_url(self) -> str:
        return self.api_url.rstrip("/")


def _seconds(value: float) -> str:
    return f"{max(value, 0.001):.3f}s"


class _HashingReader(io.RawIOBase):
    """A file-like view of the upload that feeds a ``DagBuilder`` with each byte sent.

    httpx asks for the length (``seek(0, SEEK_END)``), rewinds with ``seek(0)`` and reads;
    a rewind starts a new builder, so the CID always covers exactly the bytes sent.
    """

    def __init__(self, read_at: Callable[[int, int], bytes], length: int) -> None:
        super().__init__()
        self._read_at = read_at
        self._length = length
        self._pos = 0
        self.builder = DagBuilder()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            self._pos = self._length + offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = offset
        if self._pos == 0:
            self.builder = DagBuilder()
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if self._pos != self.builder.size:
            raise StorageError("upload reader was read out of order")
        want = self._length - self._pos if size < 0 else max(size, _UPLOAD_READ)
        data = self._read_at(self._pos, min(want, self._length - self._pos))
        self._pos += len(data)
        self.builder.update(data)
        return data


class KuboStore(ContentStore):
    """Content on an IPFS node, through its Kubo RPC API (see the module docstring)."""

    def __init__(self, config: KuboConfig) -> None:
        self.config = config
        self.location = config.base_url
        self._client = httpx.Client(
            base_url=f"{config.base_url}/api/v0",
            timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
        )

    def close(self) -> None:
        self._client.close()

    # -- plumbing ------------------------------------------------------------------------
    def _unavailable(self, what: str, exc: BaseException | str) -> StorageUnavailable:
        return StorageUnavailable(
            f"IPFS node at {self.location} failed during {what}: {exc}",
            hint="start a local node with `loraledger ipfs up`, or point --ipfs at a running one",
        )

    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        """Run ``attempt``; on a transport failure retry with doubling backoff, then give up."""
        last: BaseException | str = "no attempt"
        for tries in range(self.config.retries + 1):
            if tries:
                delay = self.config.backoff_s * 2 ** (tries - 1)
                log.info("retrying %s on %s in %.2fs (%s)", what, self.location, delay, last)
                time.sleep(delay)
            try:
                return attempt()
            except httpx.TimeoutException as exc:  # a stalled node: do not wait again
                raise self._unavailable(what, f"no answer within the timeout ({exc})") from exc
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except _RetryableStatus as exc:
                last = str(exc)
        raise self._unavailable(what, f"{last} (after {self.config.retries + 1} attempts)")

    def _check(self, response: httpx.Response, what: str, cid: str | None = None) -> None:
        if response.status_code == 200:
            return
        if response.status_code in _RETRYABLE_STATUS:
            raise _RetryableStatus(f"HTTP {response.status_code}")
        message = _error_message(response)
        if cid is not None and any(m in message.lower() for m in _NOT_FOUND_MARKERS):
            raise ContentNotFound(
                f"{cid} was not found on {self.location} within "
                f"{self.config.lookup_timeout_s:g}s ({message})"
            )
        raise StorageError(f"IPFS node at {self.location} refused {what}: {message}")

    @contextmanager
    def _stream(self, endpoint: str, params: dict[str, str]) -> Iterator[httpx.Response]:
        with self._client.stream("POST", endpoint, params=params) as response:
            if response.status_code != 200:
                response.read()
            yield response

    # -- information ----------------------------------------------------------------------
    def version(self) -> str:
        """The node's version string (also a cheap liveness check)."""

        def attempt() -> str:
            response = self._client.post("/version")
            self._check(response, "version")
            return str(response.json().get("Version", "?"))

        return self._retrying("version", attempt)

    # -- put ------------------------------------------------------------------------------
    def put_bytes(self, data: bytes | bytearray | memoryview) -> str:
        view = memoryview(data).cast("B")
        return self._add(lambda pos, n: bytes(view[pos : pos + n]), len(view), "bytes")

    def put_file(self, path: str | os.PathLike[str]) -> str:
        src = Path(path)
        handle = open_source(src)
        with handle:
            fd = handle.fileno()
            before = os.fstat(fd)
            cid = self._add(lambda pos, n: os.pread(fd, n, pos), before.st_size, src.name)
            after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise StorageError(f"{src} changed while it was being stored; store it again")
        return cid

    def _add(self, read_at: Callable[[int, int], bytes], length: int, name: str) -> str:
        params = {**IMPORT_PARAMS.as_query(), "pin": "true", "progress": "false"}

        def attempt() -> tuple[str, Cid]:
            reader = _HashingReader(read_at, length)
            files = {"file": ("blob", cast(IO[bytes], reader), "application/octet-stream")}
            response = self._client.post("/add", params=params, files=files)
            self._check(response, "add")
            if reader.builder.size != length:
                raise StorageError(f"uploaded {reader.builder.size} of {length} bytes of {name}")
            return _added_cid(response, self.location), reader.builder.finish()

        node_cid, local = self._retrying("add", attempt)
        if node_cid != str(local):
            raise ContentMismatch(
                f"{self.location} stored {name} as {node_cid}, but its CID is {local}",
                hint="the node ignores the import parameters (CIDv1, raw leaves, "
                "256 KiB chunks, balanced); use Kubo >= 0.5 or `loraledger ipfs up`",
            )
        log.debug("added %s (%d bytes) to %s", node_cid, length, self.location)
        return node_cid

    # -- get ------------------------------------------------------------------------------
    def _root(self, cid: Cid, text: str) -> bytes:
        params = {"arg": text, "timeout": _seconds(self.config.lookup_timeout_s)}

        def attempt() -> bytes:
            with self._stream("/block/get", params) as response:
                self._check(response, "block/get", text)
                block = bytearray()
                for piece in response.iter_bytes():
                    block += piece
                    if len(block) > _MAX_ROOT_BLOCK:
                        raise ContentMismatch(
                            f"{self.location} sent an oversized root block for {text}"
                        )
                return bytes(block)

        block = self._retrying("block/get", attempt)
        if not cid.matches(block):
            raise ContentMismatch(f"{self.location} returned a block for {text} with other bytes")
        return block

    def _fetch(self, text: str, max_size: int, sink: _Sink) -> int:
        cid = parse_cid(text)
        check_max_size(max_size)
        root = self._root(cid, text)
        size = declared_size(cid, root)
        if size > max_size:
            raise ContentTooLarge(f"{text} is {size} bytes, over the limit of {max_size}")
        if cid.codec == RAW:  # a single leaf: the verified root block is the content
            sink.reset()
            sink.write(root)
            return size
        params = {"arg": text, "timeout": _seconds(self.config.lookup_timeout_s + size / 1e6)}

        def attempt() -> Cid:
            sink.reset()
            builder = DagBuilder()
            with self._stream("/cat", params) as response:
                self._check(response, "cat", text)
                for piece in response.iter_bytes():
                    if builder.size + len(piece) > size:
                        raise ContentMismatch(
                            f"{self.location} sent more than the {size} bytes {text} holds"
                        )
                    builder.update(piece)
                    sink.write(piece)
            if builder.size != size:
                raise ContentMismatch(
                    f"{self.location} sent {builder.size} of the {size} bytes of {text} "
                    "(truncated response)"
                )
            return builder.finish()

        found = self._retrying("cat", attempt)
        if found != cid:
            raise ContentMismatch(
                f"{self.location} returned other bytes for {text} (they hash to {found})"
            )
        return size

    def get_bytes(self, cid: str, *, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
        sink = _BytesSink()
        self._fetch(cid, max_size, sink)
        return sink.value()

    def get_file(
        self, cid: str, dest: str | os.PathLike[str], *, max_size: int = DEFAULT_MAX_SIZE
    ) -> int:
        parse_cid(cid)  # fail on a bad CID before touching the destination
        with atomic_output(dest) as out:
            return self._fetch(cid, max_size, _FileSink(out))

    # -- pins and presence ------------------------------------------------------------------
    def pin(self, cid: str) -> None:
        parse_cid(cid)
        params = {
            "arg": cid,
            "recursive": "true",
            "timeout": _seconds(self.config.lookup_timeout_s),
        }

        def attempt() -> None:
            self._check(self._client.post("/pin/add", params=params), "pin/add", cid)

        self._retrying("pin/add", attempt)

    def has(self, cid: str) -> bool:
        parse_cid(cid)
        params = {"arg": cid, "offline": "true", "timeout": _seconds(self.config.has_timeout_s)}

        def attempt() -> bool:
            response = self._client.post("/block/stat", params=params)
            try:
                self._check(response, "block/stat", cid)
            except ContentNotFound:
                return False
            return True

        return self._retrying("block/stat", attempt)


class _RetryableStatus(Exception):
    """A gateway-style HTTP status (502/503/504): the node may be restarting."""


class _Sink:
    def reset(self) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError


class _BytesSink(_Sink):
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def reset(self) -> None:
        self._parts.clear()

    def write(self, data: bytes) -> None:
        self._parts.append(data)

    def value(self) -> bytes:
        return b"".join(self._parts)


class _FileSink(_Sink):
    def __init__(self, out: IO[bytes]) -> None:
        self._out = out

    def reset(self) -> None:
        self._out.seek(0)
        self._out.truncate()

    def write(self, data: bytes) -> None:
        self._out.write(data)


def _error_message(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return f"HTTP {response.status_code}: {response.text[:200]!r}"
    if isinstance(body, dict) and "Message" in body:
        return str(body["Message"])
    return f"HTTP {response.status_code}: {str(body)[:200]}"


def _added_cid(response: httpx.Response, location: str) -> str:
    """The root CID from an ``add`` answer (NDJSON, the file's entry last)."""
    entries = []
    for line in response.text.splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                raise StorageError(
                    f"{location} answered add with something not JSON: {line[:100]!r}"
                ) from None
    hashes = [e["Hash"] for e in entries if isinstance(e, dict) and "Hash" in e]
    if not hashes:
        raise StorageError(f"{location} answered add without a CID: {response.text[:200]!r}")
    text = str(hashes[-1])
    parse_cid(text)
    return text
