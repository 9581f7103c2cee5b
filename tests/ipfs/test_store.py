"""The storage contract, run on both backends: the embedded store and a real js-ipfs daemon."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ipfs import (
    ContentNotFound,
    ContentStore,
    ContentTooLarge,
    InvalidCid,
    compute_cid,
)
from ipfs.importer import CHUNK_SIZE

ABSENT = "bafkreigks6arfsq3xxfpvqrrwonchxcnu6do76auprhhfomao6c273sixa"  # nobody stores this


@pytest.mark.parametrize(
    "size",
    [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * 1024 * 1024 + 7],
)
def test_put_bytes_returns_the_local_cid_and_get_bytes_returns_the_same_bytes(
    store: ContentStore, size: int
) -> None:
    data = os.urandom(size)
    cid = store.put_bytes(data)
    assert cid == compute_cid(data)
    assert store.get_bytes(cid) == data


def test_put_file_and_get_file_round_trip_a_file_unchanged(
    store: ContentStore, tmp_path: Path
) -> None:
    source = tmp_path / "adapter.safetensors"
    source.write_bytes(os.urandom(2 * 1024 * 1024 + 5))
    cid = store.put_file(source)
    dest = tmp_path / "out" / "adapter.safetensors"
    assert store.get_file(cid, dest) == source.stat().st_size
    assert dest.read_bytes() == source.read_bytes()
    assert cid == compute_cid(source)
    assert [p.name for p in dest.parent.iterdir()] == ["adapter.safetensors"]  # no temp left


def test_same_content_put_twice_gets_the_same_cid(store: ContentStore) -> None:
    data = os.urandom(300_000)
    assert store.put_bytes(data) == store.put_bytes(bytearray(data))


def test_get_refuses_content_over_max_size_and_accepts_exactly_max_size(
    store: ContentStore, tmp_path: Path
) -> None:
    data = os.urandom(CHUNK_SIZE + 10)
    cid = store.put_bytes(data)
    with pytest.raises(ContentTooLarge, match=str(len(data) - 1)):
        store.get_bytes(cid, max_size=len(data) - 1)
    with pytest.raises(ContentTooLarge):
        store.get_file(cid, tmp_path / "big", max_size=len(data) - 1)
    assert not (tmp_path / "big").exists()
    assert store.get_bytes(cid, max_size=len(data)) == data


def test_failed_get_file_leaves_an_existing_destination_untouched(
    store: ContentStore, tmp_path: Path
) -> None:
    (tmp_path / "out").mkdir()
    dest = tmp_path / "out" / "keep.bin"
    dest.write_bytes(b"previous version")
    with pytest.raises(ContentNotFound):
        store.get_file(ABSENT, dest)
    assert dest.read_bytes() == b"previous version"
    assert [p.name for p in dest.parent.iterdir()] == ["keep.bin"]


def test_absent_cid_raises_content_not_found_within_bounded_time(store: ContentStore) -> None:
    started = time.monotonic()
    with pytest.raises(ContentNotFound, match=ABSENT):
        store.get_bytes(ABSENT)
    assert time.monotonic() - started < 15


def test_has_is_true_after_put_and_false_for_absent_content(store: ContentStore) -> None:
    cid = store.put_bytes(b"present")
    assert store.has(cid)
    assert not store.has(ABSENT)


def test_pin_keeps_stored_content_and_refuses_absent_content(store: ContentStore) -> None:
    cid = store.put_bytes(os.urandom(1000))
    store.pin(cid)
    assert store.has(cid)
    with pytest.raises(ContentNotFound):
        store.pin(ABSENT)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "hello",
        "QmNLei78zWmzUdbeRB3CiUfAizWUrbeeZh5K1rhAQKCh51",  # CIDv0
        "bafkreigks6arfsq3xxfpvqrrwonchxcnu6do76auprhhfomao6c273six",  # truncated
        "BAFKREIGKS6ARFSQ3XXFPVQRRWONCHXCNU6DO76AUPRHHFOMAO6C273SIXM",  # not canonical
        "zb2rhkH7YENgBZDCu4DK5oQLHKiHQgbR8z9274uJb8X4gxYsc",  # base58 CIDv1
        "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4",  # blake3, not sha2-256
        "../../etc/passwd",
    ],
)
def test_malformed_cids_raise_invalid_cid_on_every_operation(
    store: ContentStore, bad: str, tmp_path: Path
) -> None:
    for call in (
        lambda: store.get_bytes(bad),
        lambda: store.get_file(bad, tmp_path / "x"),
        lambda: store.has(bad),
        lambda: store.pin(bad),
    ):
        with pytest.raises(InvalidCid):
            call()
    assert not (tmp_path / "x").exists()


def test_negative_max_size_is_refused(store: ContentStore) -> None:
    from ipfs import StorageError

    cid = store.put_bytes(b"x")
    with pytest.raises(StorageError, match="max_size"):
        store.get_bytes(cid, max_size=-1)
