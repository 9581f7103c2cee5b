"""A JSON-RPC proxy in front of a real chain that misbehaves like a bad network (the tests and
``loraledger chaos --rpc-fault-rate``).

Each request is forwarded to the chain, or, with probability ``rate`` (seeded), suffers one
fault:

- ``drop``: the connection closes before the request reaches the chain;
- ``lost_reply``: the chain gets the request, the reply is lost (the connection closes);
- ``reset``: the connection is reset (RST) before the request reaches the chain;
- ``duplicate``: the chain gets the request twice; the client gets the second reply (for a
  transaction, "already known" or "nonce too low" though the first was accepted);
- ``late``: the chain gets the request and the reply comes after the client's timeout;
- ``delay``: the reply comes late, but in time.

A request right after a faulty one passes, so a client that retries gets through: the test
is whether it retries *safely*. ``down`` makes every request a ``drop``.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS = ("drop", "lost_reply", "reset", "duplicate", "late", "delay")


class FlakyRpc:
    def __init__(self, upstream: str, *, seed: int, rate: float, late_s: float) -> None:
        self.upstream = upstream
        self.rate = rate
        self.late_s = late_s
        self.down = False
        self.faults: Counter[str] = Counter()
        self.methods: Counter[str] = Counter()  # what reached the chain, by JSON-RPC method
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._last_faulty = False
        self._client = httpx.Client(timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _fault(self) -> str | None:
        with self._lock:
            if self.down:
                return "drop"
            if self._last_faulty or self._random.random() >= self.rate:
                self._last_faulty = False
                return None
            self._last_faulty = True
            return self._random.choice(FAULTS)

    def _forward(self, body: bytes) -> bytes:
        try:
            method = str(json.loads(body).get("method"))
        except (ValueError, AttributeError):
            method = "?"
        with self._lock:
            self.methods[method] += 1
        response = self._client.post(
            self.upstream, content=body, headers={"Content-Type": "application/json"}
        )
        return response.content

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _reply(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _close(self, *, reset: bool = False) -> None:
                if reset:  # RST instead of FIN
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                self.close_connection = True
                self.connection.close()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fault = proxy._fault()
                if fault is not None:
                    with proxy._lock:
                        proxy.faults[fault] += 1
                if fault in ("drop", "reset"):
                    self._close(reset=fault == "reset")
                    return
                try:
                    reply = proxy._forward(body)
                    if fault == "duplicate":
                        reply = proxy._forward(body)
                except httpx.HTTPError:  # the chain itself is down: the client sees a drop
                    self._close()
                    return
                if fault == "lost_reply":
                    self._close()
                    return
                elif fault == "late":
                    time.sleep(proxy.late_s)
                elif fault == "delay":
                    time.sleep(proxy._random.uniform(0.01, 0.1))
                try:
                    self._reply(reply)
                except OSError:  # the client gave up waiting (late): its reply is lost
                    pass

        return Handler

    @contextmanager
    def running(self) -> Iterator[FlakyRpc]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            self._client.close()
