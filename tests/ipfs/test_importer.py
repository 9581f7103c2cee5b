"""Local CID computation agrees with independent implementations at chunk and link boundaries.

Independent implementations: ``aleph-cid`` (a Rust UnixFS hasher) and a real js-ipfs node
(`add` over its RPC API with the same explicit import parameters, called here with plain
httpx so that none of the project's storage code is involved).
"""

from __future__ import annotations

import itertools
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aleph_cid
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfs.daemon import DaemonStatus
from ipfs.importer import CHUNK_SIZE, IMPORT_PARAMS, MAX_LINKS, DagBuilder, compute_cid

KiB256 = CHUNK_SIZE
BOUNDARY_SIZES = [0, 1, KiB256 - 1, KiB256, KiB256 + 1, 2 * KiB256, 5 * KiB256 + 3]
LINK_SIZES = [MAX_LINKS * KiB256, MAX_LINKS * KiB256 + 1, (MAX_LINKS + 1) * KiB256, 50_000_000]


def _aleph(data: bytes) -> str:
    hasher = aleph_cid.CidHasher.for_ipfs_v1_raw_leaves()
    hasher.update(data)
    return hasher.finalize()


def _data(size: int, seed: int = 7) -> bytes:
    return random.Random(seed + size).randbytes(size)


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_cid_matches_aleph_cid_around_the_chunk_boundary(size: int) -> None:
    data = _data(size)
    assert compute_cid(data) == _aleph(data)


@pytest.mark.slow
@pytest.mark.parametrize(
    "size", LINK_SIZES, ids=["174_chunks", "174_chunks+1B", "175_chunks", "50MB"]
)
def test_cid_matches_aleph_cid_around_the_link_boundary_and_at_50mb(size: int) -> None:
    data = _data(size)
    assert compute_cid(data) == _aleph(data)


def test_single_chunk_content_is_a_raw_cid_and_larger_content_a_dag_pb_cid() -> None:
    assert compute_cid(_data(KiB256)).startswith("bafkrei")
    assert compute_cid(_data(KiB256 + 1)).startswith("bafybei")


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(0, 3 * KiB256 + 5), cuts=st.lists(st.integers(0, 3 * KiB256 + 5), max_size=6)
)
def test_cid_does_not_depend_on_how_the_stream_is_split(size: int, cuts: list[int]) -> None:
    data = _data(size)
    builder = DagBuilder()
    points = sorted({0, size, *(c for c in cuts if c <= size)})
    for start, end in itertools.pairwise(points):
        builder.update(data[start:end])
    assert str(builder.finish()) == compute_cid(data)
    assert builder.size == size


def test_parallel_hashing_gives_the_same_cid_as_serial() -> None:
    data = _data(40 * KiB256 + 11)
    with ThreadPoolExecutor(3) as pool:
        builder = DagBuilder(pool, workers=3)
        builder.update(data)
        assert str(builder.finish()) == compute_cid(data)


def test_cid_of_a_file_equals_cid_of_its_bytes(tmp_path: Path) -> None:
    data = _data(9 * 1024 * 1024 + 1)
    (tmp_path / "f").write_bytes(data)
    assert compute_cid(tmp_path / "f") == compute_cid(data) == compute_cid(str(tmp_path / "f"))


def test_unreadable_path_raises_storage_error(tmp_path: Path) -> None:
    from ipfs import StorageError

    with pytest.raises(StorageError, match="cannot read"):
        compute_cid(tmp_path / "missing")


def _js_ipfs_add(api_url: str, data: bytes) -> str:
    params = {**IMPORT_PARAMS.as_query(), "pin": "false"}
    response = httpx.post(
        f"{api_url}/api/v0/add", params=params, files={"file": ("f", data)}, timeout=120
    )
    response.raise_for_status()
    return response.json()["Hash"]


@pytest.mark.ipfs_daemon
@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_cid_matches_a_js_ipfs_node_around_the_chunk_boundary(
    ipfs_daemon: DaemonStatus, size: int
) -> None:
    data = _data(size)
    assert ipfs_daemon.api_url
    assert _js_ipfs_add(ipfs_daemon.api_url, data) == compute_cid(data)


@pytest.mark.slow
@pytest.mark.ipfs_daemon
@pytest.mark.parametrize(
    "size", LINK_SIZES, ids=["174_chunks", "174_chunks+1B", "175_chunks", "50MB"]
)
def test_cid_matches_a_js_ipfs_node_around_the_link_boundary_and_at_50mb(
    ipfs_daemon: DaemonStatus, size: int
) -> None:
    data = _data(size)
    assert ipfs_daemon.api_url
    assert _js_ipfs_add(ipfs_daemon.api_url, data) == compute_cid(data)


def test_import_params_are_the_explicit_options_sent_to_nodes() -> None:
    assert IMPORT_PARAMS.as_query() == {
        "cid-version": "1",
        "raw-leaves": "true",
        "chunker": "size-262144",
        "trickle": "false",
        "hash": "sha2-256",
        "cid-base": "base32",
    }
