"""The embedded store: content on local disk under its CID, no daemon needed.

Layout (format version 1, recorded in ``STORE.json``)::

    STORE.json                 format name, version and import parameters
    objects/<xy>/<cid>         the content of <cid>, whole (xy = next-to-last two characters)
    pins/<cid>                 empty marker: <cid> is pinned
    tmp/                       files being written (renamed into objects/ when complete)

Each object is the file's bytes; its UnixFS DAG (256 KiB raw leaves, balanced) is recomputed
from them, so the CID is the one Kubo gives and every read is verified against it.
Writes go to ``tmp/`` and are renamed into place only after the CID is computed: a crash
leaves at most a stray temp file, never a partial object under a CID; a damaged object (disk
fault, power loss without ``fsync``) fails verification on read, is removed, and is reported.
Renames are atomic and objects immutable, so several processes may share one store.
"""

from __future__ import annotations

import errno
import json
import logging
import mmap
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, ClassVar, Final

from pydantic import field_validator

from ipfs.cid import Cid, parse_cid
from ipfs.errors import (
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    StorageError,
    StoreCorrupted,
)
from ipfs.importer import CHUNK_SIZE, IMPORT_PARAMS, DagBuilder
from ipfs.store import DEFAULT_MAX_SIZE, ContentStore, atomic_output, check_max_size, open_source
from loraledger.errors import LoRALedgerError
from loraledger.settings import Settings

log = logging.getLogger(__name__)

FORMAT: Final = "loraledger-embedded-store"
FORMAT_VERSION: Final = 1
_WINDOW: Final = 32 * CHUNK_SIZE  # 8 MiB
_THREADED_MIN: Final = 2 * _WINDOW
_LAYOUT: Final = ("objects", "pins", "tmp")


class EmbeddedConfig(Settings):
    """Where the store lives and how it writes.

    ``hash_threads``: threads hashing chunks (hashlib releases the GIL), besides one writer.
    ``fsync``: flush each object to disk before it becomes visible (slower; reads verify anyway).
    A bad value raises :class:`~ipfs.errors.StorageError`.
    """

    error_type: ClassVar[type[LoRALedgerError]] = StorageError

    root: Path
    hash_threads: int = 1
    fsync: bool = False

    @field_validator("hash_threads")
    @classmethod
    def _threads_bounded(cls, value: int) -> int:
        if not 1 <= value <= 64:
            raise ValueError(f"hash_threads must be between 1 and 64, got {value}")
        return value


def _marker() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "import": {k: v for k, v in IMPORT_PARAMS.as_query().items() if k != "cid-base"},
    }


class EmbeddedStore(ContentStore):
    """A content-addressed store in a local directory (see the module docstring)."""

    def __init__(self, config: EmbeddedConfig) -> None:
        self.config = config
        self.root = config.root
        self.location = str(config.root)
        self._open_layout()

    # -- layout -------------------------------------------------------------------------
    def _open_layout(self) -> None:
        root = self.root
        marker = root / "STORE.json"
        if root.exists() and not root.is_dir():
            raise StoreCorrupted(f"store path {root} is a file, not a directory")
        try:
            if marker.is_file():
                self._check_marker(marker)
                for name in _LAYOUT:
                    (root / name).mkdir(exist_ok=True)
                return
            if root.is_dir():
                stray = sorted(p.name for p in root.iterdir() if p.name not in _LAYOUT)
                if stray:
                    raise StoreCorrupted(
                        f"{root} is not an embedded store: no STORE.json, and it holds {stray[:3]}",
                        hint="point the store at an empty or new directory",
                    )
            for name in _LAYOUT:
                (root / name).mkdir(parents=True, exist_ok=True)
            tmp = root / "tmp" / f"STORE.json.{os.getpid()}.{secrets.token_hex(4)}"
            tmp.write_text(json.dumps(_marker(), indent=2) + "\n")
            os.replace(tmp, marker)
        except OSError as exc:
            raise StorageError(f"cannot open store {root}: {exc.strerror or exc}") from exc
        log.info("created embedded store in %s", root)

    def _check_marker(self, marker: Path) -> None:
        try:
            found = json.loads(marker.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreCorrupted(
                f"{marker} is damaged ({exc})", hint="restore it or move the store aside"
            ) from exc
        if not isinstance(found, dict) or found.get("format") != FORMAT:
            raise StoreCorrupted(f"{marker} does not describe an embedded store")
        if found.get("version") != FORMAT_VERSION:
            raise StoreCorrupted(
                f"{self.root} is store format {found.get('version')!r}; this version reads "
                f"format {FORMAT_VERSION}"
            )
        if found.get("import") != _marker()["import"]:
            raise StoreCorrupted(
                f"{self.root} was written with import parameters {found.get('import')}, not "
                f"{_marker()['import']}"
            )

    def _object_path(self, cid: str) -> Path:
        return self.root / "objects" / cid[-3:-1] / cid

    def _temp(self) -> Path:
        return self.root / "tmp" / f"{os.getpid()}-{secrets.token_hex(8)}.part"

    # -- put ----------------------------------------------------------------------------
    def put_bytes(self, data: bytes | bytearray | memoryview) -> str:
        view = memoryview(data).cast("B")
        windows = (view[i : i + _WINDOW] for i in range(0, len(view), _WINDOW))
        return self._ingest(windows, len(view))

    def put_file(self, path: str | os.PathLike[str]) -> str:
        src = Path(path)
        handle = open_source(src)
        tmp = self._temp()
        try:
            with handle, tmp.open("xb") as out:
                before = os.fstat(handle.fileno())
                cid = _copy_and_hash(handle, out, before.st_size, self.config.hash_threads)
                after = os.fstat(handle.fileno())
                if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                    raise StorageError(f"{src} changed while it was being stored; store it again")
                if self.config.fsync:
                    os.fsync(out.fileno())
            final = self._object_path(str(cid))
            final.parent.mkdir(exist_ok=True)
            os.replace(tmp, final)
        except OSError as exc:
            raise StorageError(f"cannot store {src} in {self.root}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        log.debug("stored %s from %s", cid, src)
        return str(cid)

    def _ingest(self, windows: Iterator[memoryview], size_hint: int) -> str:
        tmp = self._temp()
        try:
            with tmp.open("xb") as out:
                cid = _hash_and_write(windows, out, self.config.hash_threads, size_hint)
                if self.config.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            final = self._object_path(str(cid))
            final.parent.mkdir(exist_ok=True)
            os.replace(tmp, final)
        except OSError as exc:
            raise StorageError(f"cannot write to store {self.root}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        log.debug("stored %s in %s", cid, self.root)
        return str(cid)

    # -- get ----------------------------------------------------------------------------
    def _open_object(self, cid: str, max_size: int) -> tuple[Cid, Path, IO[bytes], int]:
        parsed = parse_cid(cid)
        check_max_size(max_size)
        path = self._object_path(cid)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise ContentNotFound(f"{cid} is not in the store {self.root}") from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        size = os.fstat(handle.fileno()).st_size
        if size > max_size:
            handle.close()
            raise ContentTooLarge(f"{cid} is {size} bytes, over the limit of {max_size}")
        return parsed, path, handle, size

    def _verify(self, cid: Cid, found: Cid, path: Path, handle: IO[bytes]) -> None:
        if found == cid:
            return
        # a damaged object: drop it so a new put heals the store, unless another process
        # already replaced it with a good copy since we opened it
        opened = os.fstat(handle.fileno())
        try:
            current = os.stat(path)
            if (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
                path.unlink()
        except FileNotFoundError:
            pass
        raise ContentMismatch(
            f"the store's copy of {cid} is damaged (its bytes hash to {found}); removed it",
            hint="put the content again, or fetch it from a node that has it",
        )

    def get_bytes(self, cid: str, *, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
        parsed, path, handle, size = self._open_object(cid, max_size)
        with handle:
            if size < _THREADED_MIN:
                data = handle.read(size + 1)
                if len(data) != size:
                    raise ContentMismatch(f"{path} changed size while read")
                found = _cid_of(memoryview(data), 1)
            else:  # read (kernel copy, GIL released) while hashing the same file mapped
                with ThreadPoolExecutor(1, thread_name_prefix="store-read") as reader:
                    pending = reader.submit(handle.read, size)
                    found = _hash_mapped(handle, size, self.config.hash_threads)
                    data = pending.result()
                if len(data) != size:
                    raise ContentMismatch(f"{path} changed size while read")
            self._verify(parsed, found, path, handle)
        return data

    def get_file(
        self, cid: str, dest: str | os.PathLike[str], *, max_size: int = DEFAULT_MAX_SIZE
    ) -> int:
        parsed, path, handle, size = self._open_object(cid, max_size)
        with handle, atomic_output(dest) as out:
            found = _copy_and_hash(handle, out, size, self.config.hash_threads)
            if os.fstat(out.fileno()).st_size != size:
                raise ContentMismatch(f"{path} changed size while read")
            self._verify(parsed, found, path, handle)
        return size

    # -- pins and presence ---------------------------------------------------------------
    def has(self, cid: str) -> bool:
        parse_cid(cid)
        return self._object_path(cid).is_file()

    def pin(self, cid: str) -> None:
        if not self.has(cid):
            raise ContentNotFound(f"cannot pin {cid}: it is not in the store {self.root}")
        try:
            (self.root / "pins" / cid).touch()
        except OSError as exc:
            raise StorageError(f"cannot pin {cid}: {exc.strerror or exc}") from exc

    def pins(self) -> list[str]:
        """Pinned CIDs, sorted."""
        return sorted(p.name for p in (self.root / "pins").iterdir() if _is_cid(p.name))

    def cids(self) -> list[str]:
        """Every CID the store holds an object for, sorted (junk file names are skipped)."""
        return sorted(
            p.name for p in (self.root / "objects").glob("*/*") if p.is_file() and _is_cid(p.name)
        )


def _is_cid(name: str) -> bool:
    try:
        parse_cid(name)
    except StorageError:
        return False
    return True


def _cid_of(view: memoryview, hash_threads: int) -> Cid:
    builder, pool = _builder(hash_threads, len(view))
    with pool or ExitStack():
        builder.update(view)
        return builder.finish()


def _hash_mapped(handle: IO[bytes], size: int, hash_threads: int) -> Cid:
    """The CID of a file's first ``size`` bytes, hashed from a read-only mapping (no copy)."""
    if size == 0:
        return _cid_of(memoryview(b""), 1)
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    with mmap.mmap(handle.fileno(), size, flags=flags, prot=mmap.PROT_READ) as mapped:
        view = memoryview(mapped)
        try:
            return _cid_of(view, hash_threads)
        finally:
            view.release()


def _kernel_copy(src: IO[bytes], dst: IO[bytes], size: int) -> None:
    """Copy ``size`` bytes from the start of ``src`` to ``dst`` inside the kernel."""
    infd, outfd = src.fileno(), dst.fileno()
    offset = 0
    try:
        while offset < size:
            n = os.copy_file_range(infd, outfd, size - offset, offset, offset)
            if n == 0:
                break
            offset += n
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
        while offset < size:  # another file system or an old kernel: plain reads and writes
            chunk = os.pread(infd, min(_WINDOW, size - offset), offset)
            if not chunk:
                break
            os.pwrite(outfd, chunk, offset)
            offset += len(chunk)
    if offset != size:
        raise ContentMismatch(f"source ended after {offset} of {size} bytes")


def _copy_and_hash(src: IO[bytes], dst: IO[bytes], size: int, hash_threads: int) -> Cid:
    """Copy ``src`` to ``dst`` in the kernel while hashing ``src`` mapped; return its CID."""
    if size < _THREADED_MIN:
        data = src.read(size + 1)
        if len(data) != size:
            raise ContentMismatch(f"source changed size while read ({len(data)} of {size} bytes)")
        dst.write(data)
        dst.flush()  # the caller checks the written size through the file system
        return _cid_of(memoryview(data), 1)
    with ThreadPoolExecutor(1, thread_name_prefix="store-copy") as copier:
        pending = copier.submit(_kernel_copy, src, dst, size)
        found = _hash_mapped(src, size, hash_threads)
        pending.result()
    return found


def _builder(hash_threads: int, size: int) -> tuple[DagBuilder, ThreadPoolExecutor | None]:
    if hash_threads < 2 or size < _THREADED_MIN:
        return DagBuilder(), None
    pool = ThreadPoolExecutor(hash_threads, thread_name_prefix="cid-hash")
    return DagBuilder(pool, hash_threads), pool


def _hash_and_write(
    windows: Iterator[memoryview], out: IO[bytes], hash_threads: int, size_hint: int
) -> Cid:
    """Write each window to ``out`` while its chunks are hashed; return the root CID."""
    builder, pool = _builder(hash_threads, size_hint)
    if pool is None:
        for window in windows:
            out.write(window)
            builder.update(window)
        return builder.finish()
    with pool, ThreadPoolExecutor(1, thread_name_prefix="store-write") as writer:
        write: Callable[[memoryview], object] = out.write
        for window in windows:
            pending = writer.submit(write, window)
            builder.update(window)
            pending.result()  # the window's buffer is reused by the next read
        return builder.finish()
