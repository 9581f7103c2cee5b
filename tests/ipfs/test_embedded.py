"""The embedded store: junk and damage are errors (never data), crashes leave nothing that
reads as valid, and several processes can share one store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipfs import (
    ContentMismatch,
    ContentNotFound,
    EmbeddedConfig,
    EmbeddedStore,
    StorageError,
    StoreCorrupted,
    compute_cid,
)

SMALL = 700_000
LARGE = 17 * 1024 * 1024  # over the size where reads hash on a mapping beside a kernel copy


def _object(store: EmbeddedStore, cid: str) -> Path:
    return store.root / "objects" / cid[-3:-1] / cid


def test_new_directory_becomes_a_store_with_a_versioned_marker(tmp_path: Path) -> None:
    store = EmbeddedStore(EmbeddedConfig(root=tmp_path / "new" / "store"))
    marker = json.loads((store.root / "STORE.json").read_text())
    assert marker["format"] == "loraledger-embedded-store"
    assert marker["version"] == 1
    assert marker["import"]["chunker"] == "size-262144"
    assert EmbeddedStore(EmbeddedConfig(root=store.root)).cids() == []  # reopens


def test_directory_full_of_junk_is_refused_and_left_untouched(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreCorrupted, match="not an embedded store") as caught:
        EmbeddedStore(EmbeddedConfig(root=tmp_path))
    assert caught.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "photos"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "damaged"),
        ('{"format": "other"}', "does not describe"),
        ('{"format": "loraledger-embedded-store", "version": 99}', "format 99"),
    ],
)
def test_damaged_or_foreign_marker_is_refused(tmp_path: Path, content: str, message: str) -> None:
    EmbeddedStore(EmbeddedConfig(root=tmp_path))
    (tmp_path / "STORE.json").write_text(content)
    with pytest.raises(StoreCorrupted, match=message):
        EmbeddedStore(EmbeddedConfig(root=tmp_path))


def test_store_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreCorrupted, match="is a file"):
        EmbeddedStore(EmbeddedConfig(root=tmp_path / "file"))


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["small", "large"])
def test_damaged_object_is_an_error_is_removed_and_a_new_put_heals_it(
    embedded_store: EmbeddedStore, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    cid = embedded_store.put_bytes(data)
    path = _object(embedded_store, cid)
    damaged = bytearray(path.read_bytes())
    damaged[size // 2] ^= 0x01
    path.write_bytes(bytes(damaged))
    with pytest.raises(ContentMismatch, match="damaged"):
        embedded_store.get_file(cid, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()
    assert not embedded_store.has(cid)
    assert embedded_store.put_bytes(data) == cid
    assert embedded_store.get_bytes(cid) == data


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["small", "large"])
def test_truncated_object_is_never_returned_as_data(
    embedded_store: EmbeddedStore, size: int
) -> None:
    data = os.urandom(size)
    cid = embedded_store.put_bytes(data)
    path = _object(embedded_store, cid)
    path.write_bytes(data[: size // 2])  # what a power loss without fsync could leave
    with pytest.raises(ContentMismatch):
        embedded_store.get_bytes(cid)


def test_junk_files_inside_the_store_are_ignored_or_rejected(embedded_store: EmbeddedStore) -> None:
    fake = compute_cid(b"the real content")
    _object(embedded_store, fake).parent.mkdir(parents=True)
    _object(embedded_store, fake).write_bytes(b"something else")
    (embedded_store.root / "objects" / "zz").mkdir()
    (embedded_store.root / "objects" / "zz" / "README").write_text("junk")
    (embedded_store.root / "tmp" / "123-abc.part").write_bytes(b"half")
    assert embedded_store.cids() == [fake]
    with pytest.raises(ContentMismatch):
        embedded_store.get_bytes(fake)


def test_a_writer_killed_mid_put_leaves_only_objects_that_verify(tmp_path: Path) -> None:
    root = tmp_path / "store"
    EmbeddedStore(EmbeddedConfig(root=root))
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import os, sys\n"
                "from ipfs import EmbeddedStore, EmbeddedConfig\n"
                "s = EmbeddedStore(EmbeddedConfig(root=sys.argv[1]))\n"
                "print('ready', flush=True)\n"
                "while True: s.put_bytes(os.urandom(12 * 1024 * 1024 + 5))\n"
            ),
            str(root),
        ],
        stdout=subprocess.PIPE,
    )
    assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
    time.sleep(1.0)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    store = EmbeddedStore(EmbeddedConfig(root=root))
    for cid in store.cids():
        assert compute_cid(store.get_bytes(cid)) == cid


def test_two_processes_putting_and_reading_the_same_store_agree(tmp_path: Path) -> None:
    root = tmp_path / "store"
    script = (
        "import sys, random\n"
        "from ipfs import EmbeddedStore, EmbeddedConfig\n"
        "s = EmbeddedStore(EmbeddedConfig(root=sys.argv[1]))\n"
        "for i in range(12):\n"
        "    data = random.Random(i % 4).randbytes(300_000 + i % 4)\n"
        "    cid = s.put_bytes(data)\n"
        "    assert s.get_bytes(cid) == data\n"
        "    print(cid)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(root)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outputs[0] == outputs[1]
    store = EmbeddedStore(EmbeddedConfig(root=root))
    assert store.cids() == sorted(set(outputs[0]))
    assert list((root / "tmp").iterdir()) == []


def test_fsync_option_stores_and_reads_back(tmp_path: Path) -> None:
    store = EmbeddedStore(EmbeddedConfig(root=tmp_path, fsync=True))
    data = os.urandom(SMALL)
    assert store.get_bytes(store.put_bytes(data)) == data


def test_pins_are_listed_after_pinning(embedded_store: EmbeddedStore) -> None:
    first, second = embedded_store.put_bytes(b"a"), embedded_store.put_bytes(b"b")
    embedded_store.pin(second)
    assert embedded_store.pins() == [second]
    assert embedded_store.cids() == sorted([first, second])


def test_missing_object_is_content_not_found_naming_the_store(
    embedded_store: EmbeddedStore,
) -> None:
    cid = compute_cid(b"never stored")
    with pytest.raises(ContentNotFound, match=str(embedded_store.root)):
        embedded_store.get_bytes(cid)


def test_config_rejects_a_bad_thread_count_naming_it(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="got 0"):
        EmbeddedConfig(root=tmp_path, hash_threads=0)


def test_put_file_of_a_missing_file_is_a_storage_error(
    embedded_store: EmbeddedStore, tmp_path: Path
) -> None:
    with pytest.raises(StorageError, match="cannot read"):
        embedded_store.put_file(tmp_path / "nope")


@pytest.mark.parametrize("size", [0, 100, 8191, 9000])
def test_get_file_writes_small_content_whole(
    embedded_store: EmbeddedStore, tmp_path: Path, size: int
) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    cid = embedded_store.put_bytes(data)
    out = tmp_path / f"out-{size}.bin"
    embedded_store.get_file(cid, out)
    assert out.read_bytes() == data
