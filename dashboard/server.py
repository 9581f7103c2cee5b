"""The dashboard's HTTP server: the page, and ``/api/history`` as JSON, read-only.

Standard library only (``ThreadingHTTPServer``). Every request for data reads the chain and
the store through :class:`aggregator.audit.Auditor` (reports are cached by CID, so a poll
costs a few RPC calls); one snapshot is shared by the requests of ``min_interval`` seconds.
Only GET and HEAD are answered; the server binds to loopback unless told otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any

from aggregator.audit import Auditor, to_json
from loraledger.errors import LoRALedgerError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8750
POLL_MS = 2000


@dataclass(frozen=True)
class Source:
    """What the page names as its data source."""

    network: str
    chain_id: int
    ledger: str
    store: str


class HistoryFeed:
    """The JSON the page polls: every task with its rounds, submissions and rewards."""

    def __init__(self, auditor: Auditor, source: Source, *, min_interval: float = 1.0) -> None:
        self.auditor = auditor
        self.source = source
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes] | None = None

    def snapshot(self) -> dict[str, Any]:
        """Read the history now (raises :class:`LoRALedgerError` when the chain cannot be read)."""
        auditor = self.auditor
        tasks = [to_json(auditor.history_of(task_id)) for task_id in auditor.task_ids()]
        return {
            "source": to_json(self.source),
            "block": auditor.ledger.chain.w3.eth.block_number,
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "poll_ms": POLL_MS,
            "tasks": tasks,
        }

    def body(self) -> bytes:
        """The snapshot as JSON bytes, shared by requests within ``min_interval`` seconds."""
        with self._lock:  # one reader at a time: web3 providers are not made for concurrent use
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.min_interval:
                return self._cached[1]
            data = json.dumps(self.snapshot(), separators=(",", ":")).encode()
            self._cached = (now, data)
            return data


def page() -> bytes:
    """The page (HTML, CSS and JS in one file, nothing fetched from elsewhere)."""
    return files("dashboard").joinpath("index.html").read_bytes()


def make_server(
    feed: HistoryFeed, host: str = "127.0.0.1", port: int = DEFAULT_PORT
) -> ThreadingHTTPServer:
    """A server for ``feed`` bound to ``host:port`` (port 0: any free port).

    Call ``serve_forever`` on it."""
    index = page()

    class Handler(BaseHTTPRequestHandler):
        server_version = "loraledger-dashboard"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, index, "text/html; charset=utf-8")
            elif path == "/api/history":
                try:
                    body = feed.body()
                except LoRALedgerError as exc:
                    error = {"error": str(exc), "hint": exc.hint}
                    self._send(
                        HTTPStatus.SERVICE_UNAVAILABLE,
                        json.dumps(error).encode(),
                        "application/json",
                    )
                    return
                except Exception as exc:
                    logger.warning("dashboard: cannot read the history: %s", exc)
                    error = {"error": f"cannot read the history: {exc}", "hint": None}
                    self._send(
                        HTTPStatus.SERVICE_UNAVAILABLE,
                        json.dumps(error).encode(),
                        "application/json",
                    )
                    return
                self._send(HTTPStatus.OK, body, "application/json")
            else:
                self._send(HTTPStatus.NOT_FOUND, b'{"error":"not found"}', "application/json")

        def do_HEAD(self) -> None:
            self.do_GET()

        def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header(
                "Content-Security-Policy",
                "default-src 'self'; style-src 'unsafe-inline'; "
                "script-src 'unsafe-inline'; img-src 'self' data:",
            )
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            if logger.isEnabledFor(logging.DEBUG):  # every poll lands here
                logger.debug("dashboard: %s", format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
