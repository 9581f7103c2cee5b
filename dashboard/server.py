"""The dashboard's HTTP server: the page, ``/api/history`` as JSON, and read-only views of one
transaction (``/api/tx/<hash>``) or block (``/api/block/<n>``) that the page links to.

Standard library only (``ThreadingHTTPServer``). Every request for data reads the chain and
the store through :class:`aggregator.audit.Auditor` (reports are cached by CID, so a poll
costs a few RPC calls); one snapshot is shared by the requests of ``min_interval`` seconds.
The snapshot adds to the audit's views what the page shows beside them: the chain's latest block
and time, the token's symbol and decimals (read once from the token contract), the transaction of
every event the page links (:mod:`dashboard.transactions`) and, per task, what its round waits for
in the CLI's words (:func:`chain.progress.awaiting`), its privacy policy in words and each round's
epsilon as ``loraledger audit rounds`` shows it. It names the store without local paths.
Only GET and HEAD are answered; the server binds to loopback unless told otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from aggregator.audit import Auditor, TaskView, to_json
from chain.bindings import Ledger, Token
from chain.progress import awaiting
from chain.round_state import RoundState
from dashboard.transactions import (
    Decoder,
    KnownContract,
    Landings,
    describe_block,
    describe_transaction,
    parse_block_number,
    parse_tx_hash,
)
from loraledger.display import relative
from loraledger.errors import LoRALedgerError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8750
POLL_MS = 2000


@dataclass(frozen=True)
class Source:
    """What the page names as its data source (``store``: the store's location; the page shows
    only what :func:`public_store` keeps of it)."""

    network: str
    chain_id: int
    ledger: str
    store: str


@dataclass(frozen=True)
class TokenInfo:
    """A task's reward token as its contract describes itself."""

    address: str
    symbol: str
    decimals: int


def public_store(location: str) -> str:
    """What the page says of a store at ``location``: an IPFS node's API as scheme, host and
    port (no credentials, no path), anything else as ``embedded store`` (never a local path)."""
    url = urlsplit(location)
    if url.scheme in ("http", "https") and url.hostname:
        host = url.hostname if ":" not in url.hostname else f"[{url.hostname}]"
        return f"{url.scheme}://{host}" + (f":{url.port}" if url.port else "")
    return "embedded store"


def live_round(ledger: Ledger, task: TaskView, now: int) -> dict[str, Any]:
    """What ``task``'s current round waits for at chain time ``now``, worded as the CLI words it
    (:func:`chain.progress.awaiting`), with the deadline it names (``until``: how far away)."""
    if task.cancelled:
        return {"round": None, "state": "cancelled", "text": "task cancelled", "deadline": None}
    if task.complete:
        text = f"task complete: {task.rounds_finalized} of {task.max_rounds} rounds finalized"
        return {"round": None, "state": "complete", "text": text, "deadline": None}
    n = task.rounds_opened
    state = ledger.round_state(task.task_id, n) if n else RoundState.UNOPENED
    if n == 0 or (
        state in (RoundState.SETTLED, RoundState.ABANDONED) and n < task.max_rounds
    ):  # the next round is what the task waits for
        n, state = n + 1, RoundState.UNOPENED
    info = ledger.round(task.task_id, n)
    deadline = {
        RoundState.OPEN: info.deadline,
        RoundState.REVEALING: info.reveal_deadline,
        RoundState.FINALIZED: info.finalized_at + task.challenge_window,
    }.get(state)
    text = awaiting(info, state, now, quorum=task.quorum, challenge_window=task.challenge_window)
    live: dict[str, Any] = {
        "round": n,
        "state": state.name.lower(),
        "text": text,
        "deadline": deadline,
    }
    if deadline is not None:
        live["until"] = relative(deadline - now)  # the text's "(in 26 s)", counted down live
    return live


def _with_transactions(entry: dict[str, Any], landings: Landings) -> None:
    """Add to ``entry`` (a task's history as JSON) where each event it shows landed: ``tx``
    fields of ``{"tx": hash, "block": n}`` (None where the event is not found)."""

    def at(event: str, *key: object) -> Any:
        found = landings.get(event, *key)
        return None if found is None else to_json(found)

    entry["tx"] = {"created": at("TaskCreated"), "cancelled": at("TaskCancelled")}
    for detail in entry["rounds"]:
        r = detail["round"]
        n = r["round"]
        detail["tx"] = {
            "opened": at("RoundOpened", n),
            "finalized": at("RoundFinalized", n, r["result_hash"]) if r["result_hash"] else None,
            "abandoned": at("RoundAbandoned", n) if r["state"] == "abandoned" else None,
            # commitments not revealed (yet): the page lists them beside the submissions
            "commits": {node: at("UpdateCommitted", n, node.lower()) for node in r["unrevealed"]},
        }
        for s in detail["submissions"]:
            node = s["node"].lower()
            s["tx"] = {
                "commit": at("UpdateCommitted", n, node),
                "reveal": at("UpdateRevealed", n, node),
                "claim": at("RewardClaimed", n, node) if s["claimed"] else None,
            }
        for v in r["validators"]:
            validator = v["validator"].lower()
            v["tx"] = {
                "sheet": at("ScoresPosted", n, validator),
                "claim": at("RewardClaimed", n, validator) if v["claimed"] else None,
            }
        for void in r["voids"]:
            void["tx"] = at("RoundVoided", n, void["result_hash"])
        for slash in r["proposal_slashes"]:
            slash["tx"] = at("ProposalSlashed", n, slash["result_hash"])
        for slash in r["bond_slashes"]:
            slash["tx"] = at("BondSlashed", n, slash["account"].lower())


class HistoryFeed:
    """The JSON the page polls: every task with its rounds, submissions and rewards."""

    def __init__(self, auditor: Auditor, source: Source, *, min_interval: float = 1.0) -> None:
        self.auditor = auditor
        self.source = source
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes] | None = None
        self._tokens: dict[str, tuple[TokenInfo, Token]] = {}
        self._tasks_seen = 0  # tasks whose token is known (their transfers are decoded)

    def snapshot(self) -> dict[str, Any]:
        """Read the history now (raises :class:`LoRALedgerError` when the chain cannot be read)."""
        auditor = self.auditor
        latest = auditor.ledger.chain.w3.eth.get_block("latest")
        now = int(latest["timestamp"])
        tasks = [self._task(task_id, now) for task_id in auditor.task_ids()]
        return {
            "source": to_json(self.source) | {"store": public_store(self.source.store)},
            "block": int(latest["number"]),
            "chain_time": now,  # the latest block's timestamp: deadlines are counted from it
            "token": tasks[0]["token"] if tasks else None,
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

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        """The transaction ``tx_hash`` with its receipt and decoded events (None: unknown)."""
        with self._lock:
            return describe_transaction(self.auditor.ledger.chain.w3, tx_hash, self._decoder())

    def block(self, number: int) -> dict[str, Any] | None:
        """Block ``number`` with its transactions (None: not mined yet)."""
        with self._lock:
            return describe_block(self.auditor.ledger.chain.w3, number, self._decoder())

    def token(self, address: str) -> TokenInfo:
        """The token at ``address``: its symbol and decimals, read once (they never change)."""
        key = address.lower()
        if key not in self._tokens:
            chain = self.auditor.ledger.chain
            token = Token(chain, address)
            try:
                symbol = token.symbol()
                decimals = token.decimals()
            except LoRALedgerError as exc:  # an ERC-20 without the optional metadata: base units
                logger.warning("dashboard: token %s has no symbol or decimals: %s", address, exc)
                return TokenInfo(token.address, "units", 0)
            self._tokens[key] = (TokenInfo(token.address, symbol, decimals), token)
        return self._tokens[key][0]

    def _task(self, task_id: int, now: int) -> dict[str, Any]:
        auditor = self.auditor
        history = auditor.history_of(task_id)
        entry: dict[str, Any] = to_json(history)
        _with_transactions(
            entry, Landings.read(auditor.ledger, auditor.history.from_block, task_id)
        )
        entry["token"] = to_json(self.token(history.task.token))
        entry["live"] = live_round(auditor.ledger, history.task, now)
        # the task's privacy policy in words, and each round's epsilon as `audit rounds` shows it
        entry["privacy"] = {
            "line": history.task.privacy.describe(),
            "epsilon_shown": history.epsilon_shown,
        }
        for detail, shown in zip(entry["rounds"], history.rounds, strict=True):
            detail["epsilon"] = history.epsilon(shown.round)
        return entry

    def _decoder(self) -> Decoder:
        ledger = self.auditor.ledger
        count = ledger.task_count()
        for task_id in range(self._tasks_seen + 1, count + 1):
            self.token(ledger.task(task_id).token)
        self._tasks_seen = count
        known = [KnownContract("ledger", ledger.contract)]
        known += [KnownContract(f"token {i.symbol}", t.contract) for i, t in self._tokens.values()]
        return Decoder(known)


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
                self._answer(feed.body, "")
            elif path.startswith("/api/tx/"):
                tx_hash = parse_tx_hash(path.removeprefix("/api/tx/"))
                if tx_hash is None:
                    self._error(
                        HTTPStatus.BAD_REQUEST, "a transaction hash is 0x and 64 hex digits"
                    )
                    return
                self._answer(lambda: _json(feed.transaction(tx_hash)), f"no transaction {tx_hash}")
            elif path.startswith("/api/block/"):
                number = parse_block_number(path.removeprefix("/api/block/"))
                if number is None:
                    self._error(HTTPStatus.BAD_REQUEST, "a block number is a decimal integer")
                    return
                self._answer(lambda: _json(feed.block(number)), f"no block {number} yet")
            else:
                self._error(HTTPStatus.NOT_FOUND, "not found")

        def do_HEAD(self) -> None:
            self.do_GET()

        def _answer(self, read: Callable[[], bytes | None], missing: str) -> None:
            """200 with what ``read`` returns, 404 (``missing``) for None, 503 when the chain or
            the store cannot be read."""
            try:
                body = read()
            except LoRALedgerError as exc:
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), exc.hint)
                return
            except Exception as exc:
                logger.warning("dashboard: cannot read %s: %s", self.path, exc)
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"cannot read {self.path}: {exc}")
                return
            if body is None:
                self._error(HTTPStatus.NOT_FOUND, missing)
            else:
                self._send(HTTPStatus.OK, body, "application/json")

        def _error(self, status: HTTPStatus, message: str, hint: str | None = None) -> None:
            body = json.dumps({"error": message, "hint": hint}).encode()
            self._send(status, body, "application/json")

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


def _json(value: dict[str, Any] | None) -> bytes | None:
    return None if value is None else json.dumps(value, separators=(",", ":")).encode()
