"""open_store picks the backend from a spec; content moves from the embedded store to a node
unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ipfs import (
    EmbeddedConfig,
    EmbeddedStore,
    InvalidStoreSpec,
    KuboStore,
    compute_cid,
    copy_content,
    open_store,
)
from ipfs.daemon import DaemonStatus


def test_none_and_embedded_open_the_store_under_loraledger_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LORALEDGER_HOME", str(tmp_path))
    for spec in (None, "embedded"):
        store = open_store(spec)
        assert isinstance(store, EmbeddedStore) and store.root == tmp_path / "store"


def test_embedded_with_a_directory_and_a_url_pick_their_backends(tmp_path: Path) -> None:
    store = open_store(f"embedded:{tmp_path / 'elsewhere'}")
    assert isinstance(store, EmbeddedStore) and store.root == tmp_path / "elsewhere"
    with open_store("http://127.0.0.1:5001") as node:
        assert isinstance(node, KuboStore) and node.location == "http://127.0.0.1:5001"


@pytest.mark.parametrize("spec", ["", "embedded:", "ipfs://x", "/tmp/store", "kubo"])
def test_unknown_specs_are_refused_naming_them(spec: str) -> None:
    with pytest.raises(InvalidStoreSpec):
        open_store(spec)


@pytest.mark.ipfs_daemon
def test_content_moves_from_the_embedded_store_to_a_node_with_the_same_cid(
    embedded_store: EmbeddedStore, kubo_store: KuboStore, ipfs_daemon: DaemonStatus, tmp_path: Path
) -> None:
    data = os.urandom(5 * 262_144 + 99)
    cid = embedded_store.put_bytes(data)
    assert (
        copy_content(embedded_store, kubo_store, cid, scratch=tmp_path) == cid == compute_cid(data)
    )
    assert kubo_store.get_bytes(cid) == data
    assert list(tmp_path.glob(".copy-*")) == []
    fresh = EmbeddedStore(EmbeddedConfig(root=tmp_path / "b"))
    back = copy_content(kubo_store, fresh, cid, scratch=tmp_path)
    assert back == cid
