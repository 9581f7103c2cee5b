"""Storage errors: every failure of the storage layer is one of these (all ``StorageError``)."""

from __future__ import annotations

from loraledger.errors import ServiceUnavailable, StorageError

__all__ = [
    "ContentMismatch",
    "ContentNotFound",
    "ContentTooLarge",
    "DaemonError",
    "InvalidCid",
    "InvalidStoreSpec",
    "StorageError",
    "StorageUnavailable",
    "StoreCorrupted",
]


class StorageUnavailable(StorageError, ServiceUnavailable):
    """The IPFS node cannot be reached, or kept failing after the bounded retries."""


class ContentNotFound(StorageError):
    """No content under that CID (within the lookup timeout)."""


class ContentMismatch(StorageError):
    """Bytes do not hash to the CID they were asked for (or a node returned another CID)."""


class ContentTooLarge(StorageError):
    """Content is larger than the caller's ``max_size``."""


class InvalidCid(StorageError):
    """A string is not a CID this project can verify (CIDv1, sha2-256, raw or dag-pb file)."""


class InvalidStoreSpec(StorageError):
    """``open_store`` was given something that names no store."""


class StoreCorrupted(StorageError):
    """An embedded store directory is not a store of this project, or its metadata is damaged."""


class DaemonError(StorageError):
    """The local IPFS daemon could not be installed, started or stopped."""
