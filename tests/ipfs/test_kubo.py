"""The Kubo RPC backend under faults: a down node, a stalled node, a node restarting mid-transfer,
and a node that lies (other bytes, other CIDs, truncated or padded answers).

``LyingNode`` is a test double, named as such: a small HTTP proxy in front of the real js-ipfs
daemon that tampers with answers, because a real node cannot be made to lie on demand.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from ipfs import (
    ContentMismatch,
    ContentTooLarge,
    InvalidStoreSpec,
    KuboConfig,
    KuboStore,
    StorageUnavailable,
    compute_cid,
)
from ipfs.daemon import DaemonStatus
from tests.support.ipfs import free_port, kubo_config

pytestmark = pytest.mark.ipfs_daemon

DATA_SIZE = 3 * 262_144 + 17  # a dag-pb root over four raw leaves


class LyingNode:
    """Test double: proxies the Kubo RPC API of a real node, tampering per ``mode``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "honest"
        self.cat_requests = 0
        node = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length) if length else b""
                headers = {"Content-Type": self.headers.get("Content-Type", "")}
                answer = httpx.post(
                    f"{node.upstream}{self.path}", content=body, headers=headers, timeout=30
                )
                content = answer.content
                endpoint = self.path.split("?")[0]
                if endpoint.endswith("/cat"):
                    node.cat_requests += 1
                    content = node.tamper_cat(content, self)
                    if content is None:
                        return
                elif endpoint.endswith("/add") and node.mode == "other_cid":
                    content = b'{"Name":"blob","Hash":"' + compute_cid(b"other").encode() + b'"}\n'
                elif endpoint.endswith("/block/get") and node.mode == "wrong_block":
                    content = bytes([content[0] ^ 1]) + content[1:]
                self.send_response(answer.status_code)
                self.send_header(
                    "Content-Type", answer.headers.get("Content-Type", "application/json")
                )
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def tamper_cat(self, content: bytes, handler: BaseHTTPRequestHandler) -> bytes | None:
        mode = self.mode
        if (mode == "drop_once" and self.cat_requests == 1) or mode == "drop_always":
            # promise everything, send half, then the connection dies (a restarting daemon)
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(content)))
            handler.end_headers()
            handler.wfile.write(content[: len(content) // 2])
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)
            handler.close_connection = True
            return None
        if mode == "flip":
            return content[:100] + bytes([content[100] ^ 0xFF]) + content[101:]
        if mode == "short":
            return content[:-1000]
        if mode == "padded":
            return content + b"extra"
        return content


@pytest.fixture
def liar(ipfs_daemon: DaemonStatus) -> Iterator[LyingNode]:
    assert ipfs_daemon.api_url
    node = LyingNode(ipfs_daemon.api_url)
    node.thread.start()
    try:
        yield node
    finally:
        node.server.shutdown()
        node.server.server_close()


@pytest.fixture
def stored(kubo_store: KuboStore) -> tuple[str, bytes]:
    data = os.urandom(DATA_SIZE)
    return kubo_store.put_bytes(data), data


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("flip", "other bytes"),
        ("short", "truncated"),
        ("padded", "more than"),
        ("wrong_block", "other bytes"),
    ],
)
def test_a_node_returning_other_bytes_is_an_error_and_nothing_is_written(
    liar: LyingNode, stored: tuple[str, bytes], tmp_path: Path, mode: str, message: str
) -> None:
    cid, _ = stored
    liar.mode = mode
    with KuboStore(kubo_config(liar.url)) as store:
        with pytest.raises(ContentMismatch, match=message):
            store.get_bytes(cid)
        with pytest.raises(ContentMismatch):
            store.get_file(cid, tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []


def test_a_node_claiming_another_cid_on_add_is_an_error(liar: LyingNode) -> None:
    liar.mode = "other_cid"
    with KuboStore(kubo_config(liar.url)) as store, pytest.raises(ContentMismatch, match="stored"):
        store.put_bytes(os.urandom(1000))


def test_a_transfer_cut_once_mid_way_is_retried_and_verified(
    liar: LyingNode, stored: tuple[str, bytes], tmp_path: Path
) -> None:
    cid, data = stored
    liar.mode = "drop_once"
    with KuboStore(kubo_config(liar.url)) as store:
        assert store.get_file(cid, tmp_path / "out.bin") == len(data)
    assert (tmp_path / "out.bin").read_bytes() == data
    assert liar.cat_requests == 2


def test_a_transfer_cut_every_time_gives_up_after_the_bounded_retries(
    liar: LyingNode, stored: tuple[str, bytes], tmp_path: Path
) -> None:
    cid, _ = stored
    liar.mode = "drop_always"
    with (
        KuboStore(kubo_config(liar.url)) as store,
        pytest.raises(StorageUnavailable, match="3 attempts"),
    ):
        store.get_file(cid, tmp_path / "out.bin")
    assert liar.cat_requests == 3
    assert list(tmp_path.iterdir()) == []


def test_oversized_content_is_refused_before_the_transfer(
    liar: LyingNode, stored: tuple[str, bytes]
) -> None:
    cid, _ = stored
    with KuboStore(kubo_config(liar.url)) as store, pytest.raises(ContentTooLarge):
        store.get_bytes(cid, max_size=DATA_SIZE - 1)
    assert liar.cat_requests == 0


def test_a_node_that_is_down_fails_fast_with_a_hint() -> None:
    started = time.monotonic()
    store = KuboStore(kubo_config(f"http://127.0.0.1:{free_port()}"))
    with store, pytest.raises(StorageUnavailable, match="ConnectError") as caught:
        store.put_bytes(b"x")
    assert time.monotonic() - started < 5
    assert caught.value.hint and "ipfs up" in caught.value.hint


def test_a_node_that_accepts_but_never_answers_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = KuboConfig(api_url=url, timeout_s=1.0, retries=1, backoff_s=0.1)
        started = time.monotonic()
        with KuboStore(config) as store, pytest.raises(StorageUnavailable, match="timeout"):
            store.get_bytes(compute_cid(b"x"))
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "url", ["ftp://host:5001", "http://", "http://h:5001/api/v0", "localhost:5001"]
)
def test_config_rejects_bad_api_urls_naming_them(url: str) -> None:
    with pytest.raises(InvalidStoreSpec, match=r"5001|http"):
        KuboConfig(api_url=url)


def test_config_rejects_nonsense_timeouts_and_retries() -> None:
    with pytest.raises(InvalidStoreSpec, match="timeout_s must be positive, got 0"):
        KuboConfig(api_url="http://h:1", timeout_s=0)
    with pytest.raises(InvalidStoreSpec, match="retries"):
        KuboConfig(api_url="http://h:1", retries=-1)


def test_version_reports_the_js_ipfs_node(kubo_store: KuboStore) -> None:
    assert kubo_store.version() == "0.18.1"
