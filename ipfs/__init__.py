"""Content-addressed storage: the embedded store and IPFS nodes, with identical, verified CIDs.

``open_store(spec)`` gives a ``ContentStore``; ``compute_cid`` computes locally the CID any
node returns for the project's import parameters (``IMPORT_PARAMS``). Errors are
``loraledger.errors.StorageError`` subclasses from ``ipfs.errors``.
"""

from ipfs.embedded import EmbeddedConfig, EmbeddedStore
from ipfs.errors import (
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    DaemonError,
    InvalidCid,
    InvalidStoreSpec,
    StorageError,
    StorageUnavailable,
    StoreCorrupted,
)
from ipfs.factory import copy_content, open_store
from ipfs.importer import IMPORT_PARAMS, ImportParams, compute_cid
from ipfs.kubo import KuboConfig, KuboStore
from ipfs.store import DEFAULT_MAX_SIZE, ContentStore

__all__ = [
    "DEFAULT_MAX_SIZE",
    "IMPORT_PARAMS",
    "ContentMismatch",
    "ContentNotFound",
    "ContentStore",
    "ContentTooLarge",
    "DaemonError",
    "EmbeddedConfig",
    "EmbeddedStore",
    "ImportParams",
    "InvalidCid",
    "InvalidStoreSpec",
    "KuboConfig",
    "KuboStore",
    "StorageError",
    "StorageUnavailable",
    "StoreCorrupted",
    "compute_cid",
    "copy_content",
    "open_store",
]
