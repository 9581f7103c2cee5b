"""Pick a store from a spec string, and move content between stores."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from ipfs.embedded import EmbeddedConfig, EmbeddedStore
from ipfs.errors import ContentMismatch, InvalidStoreSpec
from ipfs.kubo import KuboConfig, KuboStore
from ipfs.store import DEFAULT_MAX_SIZE, ContentStore
from loraledger.paths import home

log = logging.getLogger(__name__)


def open_store(spec: str | None) -> ContentStore:
    """Open a store from a spec string.

    - ``None`` or ``"embedded"``: the embedded store in ``loraledger.paths.home()/"store"``;
    - ``"embedded:/some/dir"``: an embedded store in that directory;
    - ``"http://host:5001"`` (or https): a node serving the Kubo RPC API (Kubo or js-ipfs).
    """
    if spec is None or spec == "embedded":
        return EmbeddedStore(EmbeddedConfig(root=home() / "store"))
    if not isinstance(spec, str):
        raise InvalidStoreSpec(f"a store spec is a string, got {type(spec).__name__}")
    if spec.startswith("embedded:"):
        directory = spec.removeprefix("embedded:")
        if not directory:
            raise InvalidStoreSpec("'embedded:' needs a directory, e.g. 'embedded:/data/store'")
        return EmbeddedStore(EmbeddedConfig(root=Path(directory).expanduser()))
    if spec.startswith(("http://", "https://")):
        return KuboStore(KuboConfig(api_url=spec))
    raise InvalidStoreSpec(
        f"unknown store {spec!r}",
        hint="use 'embedded', 'embedded:/dir' or a Kubo RPC API URL such as http://127.0.0.1:5001",
    )


def copy_content(
    source: ContentStore,
    target: ContentStore,
    cid: str,
    *,
    scratch: str | os.PathLike[str],
    max_size: int = DEFAULT_MAX_SIZE,
) -> str:
    """Copy ``cid`` from ``source`` to ``target`` by re-adding it with the same import parameters.

    The copy is verified on the way out of ``source`` and the target's put checks that the node
    computed the same CID; the content is then pinned on the target. ``scratch`` is a directory
    for the temporary verified copy (removed afterwards).
    """
    tmp = Path(scratch) / f".copy-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        source.get_file(cid, tmp, max_size=max_size)
        copied = target.put_file(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    if copied != cid:
        raise ContentMismatch(f"{target.location} stored {cid} under another CID, {copied}")
    target.pin(copied)
    log.info("copied %s from %s to %s", cid, source.location, target.location)
    return copied
